"""Video input and output: the only module that touches OpenCV's video IO.

A :class:`FrameSource` yields :class:`Frame` objects (RGB pixels plus a
timestamp in milliseconds). Two implementations share that protocol: a video
file (mp4, avi, GRID's MPEG-1 ``.mpg``, ...) and a webcam. Everything
downstream -- landmarks, features, the segmenter, the app -- only sees frames,
so a file can stand in for the camera in tests and replays.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import cv2
import numpy as np

from features.files import atomic_output


class VideoError(RuntimeError):
    """A video file or camera that cannot be read; the message names it."""


@dataclass(frozen=True)
class Frame:
    """One video frame: ``rgb`` is (H, W, 3) uint8; ``timestamp_ms`` increases."""

    index: int
    timestamp_ms: int
    rgb: np.ndarray


class FrameSource(Protocol):
    """Anything that yields frames in time order and can be closed."""

    fps: float

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _open_capture(path: Path) -> cv2.VideoCapture:
    if path.is_dir():
        raise VideoError(f"{path}: is a folder; give a video file inside it")
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty; record or copy it again")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{path}: not a readable video (OpenCV could not open it); "
                         "convert it to mp4 (H.264) and try again")
    return capture


class VideoFileSource:
    """Frames of a video file, timestamped from the file's frame rate.

    ``realtime`` paces frames at the file's own rate (a file used as a live
    camera); ``loop`` starts again at the end, with timestamps that keep
    increasing, as MediaPipe's VIDEO mode requires.
    """

    def __init__(self, path: str | os.PathLike, *, realtime: bool = False,
                 loop: bool = False, default_fps: float = 25.0):
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        probe = _open_capture(self.path)
        fps = probe.get(cv2.CAP_PROP_FPS)
        self.frame_count = int(probe.get(cv2.CAP_PROP_FRAME_COUNT))
        probe.release()
        self.fps = fps if 1.0 <= fps <= 240.0 else default_fps
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        period_ms = 1000.0 / self.fps
        index, offset_ms = 0, 0.0
        start = time.monotonic()
        while not self._closed:
            capture = _open_capture(self.path)
            frames_this_pass = 0
            try:
                while not self._closed:
                    ok, bgr = capture.read()
                    if not ok:
                        break
                    timestamp = offset_ms + frames_this_pass * period_ms
                    if self.realtime:
                        delay = start + timestamp / 1000.0 - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    yield Frame(index, int(round(timestamp)),
                                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    index += 1
                    frames_this_pass += 1
            finally:
                capture.release()
            if frames_this_pass == 0 and index == 0:
                raise VideoError(f"{self.path}: no frame could be decoded; "
                                 "the file is truncated or not a video")
            if not self.loop or frames_this_pass == 0:
                return
            offset_ms += frames_this_pass * period_ms

    def close(self) -> None:
        self._closed = True


class CameraSource:
    """Frames of a webcam by OpenCV index, timestamped by a monotonic clock."""

    def __init__(self, index: int = 0, *, width: int = 640, height: int = 480):
        self.index = index
        # OpenCV logs several lines per failed open; the VideoError below says it once.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            self._capture = cv2.VideoCapture(index)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self._capture.isOpened():
            self._capture.release()
            raise VideoError(f"camera {index}: cannot be opened; check it is plugged "
                             "in and not used by another program, or use --source FILE")
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        index, last_ms = 0, -1
        while not self._closed:
            ok, bgr = self._capture.read()
            if not ok:
                raise VideoError(f"camera {self.index}: stopped delivering frames")
            now_ms = max(int((time.monotonic() - start) * 1000), last_ms + 1)
            yield Frame(index, now_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index, last_ms = index + 1, now_ms

    def close(self) -> None:
        self._closed = True
        self._capture.release()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as JPEG bytes, a 1-D uint8 array, without chroma
    subsampling: at 95 about a fifteenth of the pixels' size, off by under one grey level
    on average, half what the mp4 a clip is saved as loses anyway."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality,
                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise VideoError(f"OpenCV cannot encode a {rgb.shape} frame as JPEG")
    return data.ravel()


def decode_jpeg(data: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 RGB frame of :func:`encode_jpeg`'s bytes."""
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError("not a JPEG image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: str | os.PathLike) -> list[Frame]:
    """All frames of a video file, in order."""
    return list(VideoFileSource(path))


def write_video(path: str | os.PathLike, frames_rgb: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB frames to an mp4 atomically (temporary name, then rename).

    ``frames_rgb`` may be any iterable, a generator included: frames are written
    as they come, never held together.
    """
    path = Path(path)
    frames = iter(frames_rgb)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"{path}: refusing to write a video with no frames")
    height, width = first.shape[:2]
    with atomic_output(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise VideoError(f"{path}: OpenCV cannot write mp4 here")
        try:
            for rgb in itertools.chain([first], frames):
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path
