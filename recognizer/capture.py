"""Frames from a camera or file on their own thread, newest first, drops counted.

:class:`LatestFrameCapture` reads a :class:`~features.video.FrameSource` on a
background thread at the source's own pace and keeps only the newest frame:
when a frame arrives before the previous one was taken, the previous one is
dropped and counted, never queued, so a slow consumer sees the present rather
than a growing backlog. A source that cannot be opened, or stops delivering
(a camera unplugged mid-session), is reported through ``on_status`` and
opened again after ``retry_s``; a file that ends without looping just ends.
Each (re)opened source is a new *generation*, so the consumer knows to reset
stream state such as MediaPipe's timestamps. Qt-free; the GUI worker uses it.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from features.video import Frame, FrameSource, VideoError

SourceFactory = Callable[[], FrameSource]
StatusSink = Callable[[str, str], None]      # (level: "info" | "error", message)


@dataclass(frozen=True)
class CapturedFrame:
    """A frame with the monotonic time (s) it arrived and the source generation it came from."""

    frame: Frame
    arrived: float
    generation: int
    fps: float


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds."""

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


class LatestFrameCapture:
    """Reads ``open_source()`` on a thread; :meth:`take` returns the newest unseen frame.

    ``retry`` reopens a source that failed (cameras); without it a failure
    ends the capture (files). :attr:`dropped` counts frames replaced before
    they were taken; :attr:`finished` is set when capture has ended for good.
    """

    def __init__(self, open_source: SourceFactory, *, retry: bool, retry_s: float = 2.0,
                 on_status: StatusSink | None = None):
        self._open_source = open_source
        self._retry = retry
        self._retry_s = retry_s
        self._on_status = on_status or (lambda level, message: None)
        self._condition = threading.Condition()
        self._latest: CapturedFrame | None = None
        self._stop = threading.Event()
        self._source: FrameSource | None = None
        self._thread = threading.Thread(target=self._run, name="frame-capture", daemon=True)
        self.dropped = 0
        self.captured = 0
        self.finished = threading.Event()

    def start(self) -> LatestFrameCapture:
        self._thread.start()
        return self

    def take(self, timeout: float | None = None) -> CapturedFrame | None:
        """The newest frame not yet taken; waits up to ``timeout`` s, None if none came."""
        with self._condition:
            if self._latest is None:
                self._condition.wait_for(lambda: self._latest is not None or self.finished.is_set(),
                                         timeout)
            latest, self._latest = self._latest, None
            return latest

    def stop(self, timeout: float = 5.0) -> None:
        """End capture and wait for the thread (at most ``timeout`` s), which closes the source.

        The source is closed by the capture thread itself: releasing a camera
        while another thread is inside its ``read`` is not safe in OpenCV.
        """
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _put(self, captured: CapturedFrame) -> None:
        with self._condition:
            if self._latest is not None:
                self.dropped += 1
            self._latest = captured
            self.captured += 1
            self._condition.notify_all()

    def _run(self) -> None:
        generation = 0
        try:
            while not self._stop.is_set():
                generation += 1
                ended_cleanly = self._read_one_source(generation)
                if ended_cleanly or not self._retry or self._stop.wait(self._retry_s):
                    return
        finally:
            self.finished.set()
            with self._condition:
                self._condition.notify_all()

    def _read_one_source(self, generation: int) -> bool:
        """Read a source to its end; True when it ended by itself, False after a failure."""
        try:
            self._source = self._open_source()
            if generation > 1:
                self._on_status("info", "video source is back")
            for frame in self._source:
                if self._stop.is_set():
                    return True
                self._put(CapturedFrame(frame, time.monotonic(), generation, self._source.fps))
        except VideoError as error:
            again = f"; trying again every {self._retry_s:g} s" if self._retry else ""
            self._on_status("error", f"{error}{again}")
            return False
        finally:
            if self._source is not None:
                self._source.close()
                self._source = None
        if not self._stop.is_set():
            self._on_status("info", "the video file has ended")
        return True
