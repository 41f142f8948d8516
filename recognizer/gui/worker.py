"""The live worker: capture, landmarks, features, segmentation and inference off the GUI thread.

:class:`LiveWorker` is a ``QThread`` (napari's ``StatusChecker`` pattern). It
takes the newest frame from a :class:`~recognizer.capture.LatestFrameCapture`
(frames that came while it was busy are dropped and counted there), runs the
:class:`~features.frame_features.FeaturePipeline` and the
:class:`~recognizer.live.LiveRecognizer`, feeds the :class:`Recorder`, and
emits one :class:`LiveFrame` per processed frame. Slots in the window only
paint what it carries. Requests from the GUI (a new predictor, start or cancel
a recording) are queued and applied between frames, on the worker's thread.
"""
from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QThread, Signal

from features.frame_features import FEATURE_NAMES, FeaturePipeline
from recognizer.capture import LatestFrameCapture, RateMeter, SourceFactory
from recognizer.confirmations import FrameKeeper, HeardUtterance
from recognizer.live import (FrameResult, LiveConfig, LiveRecognizer, Recognition,
                             release_unused_gpu_code)
from recognizer.predictor import Predictor
from recognizer.recording import Recorder, RecorderStatus, RecordingConfig


@dataclass(frozen=True)
class LiveFrame:
    """One processed frame for the window.

    ``rgb``: (H, W, 3) uint8; ``arrived`` / ``processed``: monotonic seconds
    when the frame came from the source and when its result was ready;
    ``fps``: frames processed per second; ``dropped``: frames skipped so far;
    ``recorder``: the record panel's status after this frame.
    """

    rgb: np.ndarray
    result: FrameResult
    arrived: float
    processed: float
    fps: float
    dropped: int
    captured: int
    recorder: RecorderStatus


@dataclass(frozen=True)
class LiveRecognition:
    """A recognised utterance; ``arrived``: monotonic time the frame that ended it came in;
    ``predictor``: the one that read it (the window drops readings of a replaced one);
    ``heard``: a final reading's frames, kept in memory to save only if confirmed."""

    recognition: Recognition
    arrived: float
    predictor: Predictor | None = None
    heard: HeardUtterance | None = None


class LiveWorker(QThread):
    """Runs the live pipeline on its own thread until :meth:`stop`."""

    frame_ready = Signal(object)        # LiveFrame
    recognised = Signal(object)         # LiveRecognition
    take_ready = Signal(object)         # recognizer.recording.Take
    status = Signal(str, str)           # level ("info" | "error"), message
    source_finished = Signal()

    def __init__(self, open_source: SourceFactory, *, retry: bool,
                 predictor: Predictor | None = None, config: LiveConfig = LiveConfig(),
                 retry_s: float = 2.0, parent=None):
        super().__init__(parent)
        release_unused_gpu_code()
        self._capture = LatestFrameCapture(open_source, retry=retry, retry_s=retry_s,
                                           on_status=self.status.emit)
        self._recognizer = LiveRecognizer(FEATURE_NAMES, predictor, config)
        self._requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._recorder = Recorder()
        self._kept: FrameKeeper | None = None      # made at the first frame, at the source's rate
        self._fps = 0.0
        self._running = True
        self._pipeline: FeaturePipeline | None = None
        self._last_ms = 0

    @property
    def dropped(self) -> int:
        return self._capture.dropped

    def set_predictor(self, predictor: Predictor | None) -> None:
        """Recognise with ``predictor`` from the next frame on."""
        self._requests.put(lambda: self._use_predictor(predictor))

    def start_recording(self, config: RecordingConfig) -> None:
        """Count down, then record until the next utterance ends; emits :attr:`take_ready`."""
        def start():
            self._recorder = Recorder(config)
            self._recorder.start(self._last_ms)
        self._requests.put(start)

    def cancel_recording(self) -> None:
        self._requests.put(lambda: self._recorder.cancel())

    def stop(self, timeout_ms: int = 5000) -> None:
        """End capture and the loop, and wait for the thread."""
        self._running = False
        self._capture.stop()
        self.wait(timeout_ms)

    def _use_predictor(self, predictor: Predictor | None) -> None:
        self._recognizer.set_predictor(predictor)
        if self._pipeline is not None:
            self._pipeline.crops = bool(predictor is not None and predictor.needs_crops)
        release_unused_gpu_code()      # what loading its model mapped (the video model: triton)

    def _apply_requests(self) -> None:
        while True:
            try:
                self._requests.get_nowait()()
            except queue.Empty:
                return

    def run(self) -> None:
        rate = RateMeter()
        generation = None
        with FeaturePipeline(crops=False) as pipeline:
            self._pipeline = pipeline
            self._use_predictor(self._recognizer.predictor)     # crops only for the video model
            self._capture.start()
            while self._running:
                self._apply_requests()
                captured = self._capture.take(timeout=0.1)
                if captured is None:
                    if self._capture.finished.is_set():
                        self._finish()
                        break
                    continue
                if captured.generation != generation:
                    generation = captured.generation
                    pipeline.reset()
                    self._recognizer.reset()
                    self._kept = FrameKeeper(captured.fps or 30.0)
                frame = captured.frame
                self._kept.add(frame)
                self._fps = captured.fps
                result = self._recognizer.process(pipeline.process(frame))
                self._last_ms = frame.timestamp_ms
                if result.error:
                    self.status.emit("error", result.error)
                if result.recognition is not None:
                    self._emit_recognition(result.recognition, captured.arrived, captured.fps)
                take = self._recorder.feed(frame, result, captured.fps)
                if take is not None:
                    self.take_ready.emit(replace(take, clip=self._recognizer.clip_between(*take.indices)))
                self.frame_ready.emit(LiveFrame(
                    frame.rgb, result, captured.arrived, time.monotonic(), rate.tick(),
                    self._capture.dropped, self._capture.captured, self._recorder.status(frame.timestamp_ms)))
            self._pipeline = None

    def _emit_recognition(self, recognition: Recognition, arrived: float, fps: float) -> None:
        """Emit a reading; a final one with its frames, should it be confirmed."""
        heard = None
        frames = (self._kept.cut(recognition.utterance, self._recognizer.config.margin_frames)
                  if recognition.final and self._kept is not None else None)
        if frames:
            prediction = recognition.prediction
            heard = HeardUtterance(frames, fps or 30.0, recognition.clip, prediction.phrase,
                                   prediction.confidence, prediction.entry)
        self.recognised.emit(LiveRecognition(recognition, arrived, self._recognizer.predictor, heard))

    def _finish(self) -> None:
        for recognition in self._recognizer.finish():
            self._emit_recognition(recognition, time.monotonic(), self._fps)
        self.source_finished.emit()
