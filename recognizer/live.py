"""The live recogniser: per-frame features in, one :class:`FrameResult` per frame out.

:class:`LiveRecognizer` is the Qt-free core of the app. The same code runs on
camera frames and on frames read from a file: it keeps a ring buffer of recent
:class:`~features.frame_features.FrameFeatures`, feeds the utterance segmenter
and, when an utterance ends, cuts it (with a margin) out of the buffer and asks
the current :class:`~recognizer.predictor.Predictor`. A GUI worker thread calls
:meth:`LiveRecognizer.process` and hands the result to the window, which only
paints it.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Sequence

import numpy as np

from features.frame_features import FrameFeatures
from features.mouth_image import CropConfig, mouth_crop_box
from features.topology import INNER_LIP, OUTER_LIP
from recognizer.predictor import Prediction, Predictor, utterance_clip
from recognizer.segmenter import SegmenterConfig, SegmenterState, Utterance, UtteranceSegmenter

PLOT_NAMES = ("inner_mar", "outer_mar", "inner_area", "teeth_ratio", "tongue_ratio", "jawOpen")
_OUTER = np.array(OUTER_LIP)
_INNER = np.array(INNER_LIP)


class LiveState(StrEnum):
    """The state the window shows for a frame (its badge, the app state).

    ``RESTING`` and ``MOUTHING`` are the segmenter's (:class:`SegmenterState`,
    a pause inside an utterance showing as mouthing); ``RECOGNISED``: resting
    within ``LiveConfig.recognised_hold_ms`` of a prediction.
    """

    RESTING = SegmenterState.RESTING.value
    MOUTHING = SegmenterState.MOUTHING.value
    RECOGNISED = "recognised"


@dataclass(frozen=True)
class LiveConfig:
    """Parameters of :class:`LiveRecognizer`.

    ``margin_frames``: frames kept before and after a detected utterance (the
    GRID word clips were trained with 4 of padding); ``confidence_threshold``:
    a prediction at least this probable is ``sure``; ``recognised_hold_ms``:
    how long the state reads :attr:`LiveState.RECOGNISED` after a prediction;
    ``history_length``: frames a :class:`PlotHistory` keeps (10 s at 25 fps);
    ``crop``: must be the pipeline's crop settings, for the drawn crop box.
    """

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    margin_frames: int = 4
    confidence_threshold: float = 0.5
    recognised_hold_ms: int = 1000
    history_length: int = 250
    crop: CropConfig = field(default_factory=CropConfig)

    def buffer_length(self) -> int:
        """Frames the ring buffer needs: the longest utterance, both margins and the emit delay."""
        seg = self.segmenter
        return seg.max_frames + 2 * self.margin_frames + seg.max_pause + seg.smoothing_radius + 2


@dataclass(frozen=True)
class Recognition:
    """One recognised utterance.

    ``start_ms`` / ``end_ms``: its first and last active frame (stream time);
    ``sure``: ``prediction.confidence >= threshold``; ``latency_ms``: from the
    last active frame to the prediction being ready -- stream time until the
    segmenter decided the utterance was over, plus the predictor's wall time.
    """

    utterance: Utterance
    prediction: Prediction
    sure: bool
    latency_ms: float

    @property
    def start_ms(self) -> int | None:
        return self.utterance.start_ms

    @property
    def end_ms(self) -> int | None:
        return self.utterance.end_ms


@dataclass(frozen=True)
class FrameResult:
    """Everything the window draws for one frame.

    ``outer_lip`` / ``inner_lip``: (20, 2) float32 pixel rings (None without a
    face); ``crop_box``: (4, 2) float32 pixel corners of the mouth crop;
    ``state``: the :class:`LiveState`; ``values``:
    one float per :data:`PLOT_NAMES` (NaN without a face); ``utterance``: the
    utterance that ended with this frame, if any; ``recognition``: its
    prediction (None without a predictor); ``error``: why the prediction failed.
    """

    index: int
    timestamp_ms: int
    outer_lip: np.ndarray | None
    inner_lip: np.ndarray | None
    crop_box: np.ndarray | None
    state: LiveState
    values: tuple[float, ...]
    utterance: Utterance | None = None
    recognition: Recognition | None = None
    error: str | None = None

    @property
    def has_face(self) -> bool:
        return self.outer_lip is not None

    def value(self, name: str) -> float:
        """The plotted value ``name`` (one of :data:`PLOT_NAMES`)."""
        return self.values[PLOT_NAMES.index(name)]


def plot_values(features: np.ndarray | None, columns: Sequence[int]) -> tuple[float, ...]:
    """The plotted channels of one (F,) feature row; all NaN without a face."""
    if features is None:
        return (math.nan,) * len(columns)
    return tuple(float(features[c]) for c in columns)


def display_state(segmenter_state: SegmenterState, timestamp_ms: int,
                  recognised_at_ms: int | None, hold_ms: int) -> LiveState:
    """The state shown: mouthing inside an utterance, else recognised for ``hold_ms`` after one."""
    if segmenter_state != SegmenterState.RESTING:
        return LiveState.MOUTHING
    if recognised_at_ms is not None and timestamp_ms - recognised_at_ms < hold_ms:
        return LiveState.RECOGNISED
    return LiveState.RESTING


class LiveRecognizer:
    """Frame-by-frame segmentation and recognition of a stream of :class:`FrameFeatures`.

    ``names``: the feature names of the rows (``FEATURE_NAMES``);
    ``predictor``: None only segments. Call :meth:`process` for each frame in
    order and :meth:`finish` at the end of a file.
    """

    def __init__(self, names: Sequence[str], predictor: Predictor | None = None,
                 config: LiveConfig = LiveConfig()):
        names = list(names)
        missing = [n for n in PLOT_NAMES if n not in names]
        if missing:
            raise ValueError(f"feature names lack the plotted channels {missing}")
        self.config = config
        self._columns = [names.index(n) for n in PLOT_NAMES]
        self._segmenter = UtteranceSegmenter(names, config.segmenter)
        self._predictor = predictor
        self._buffer: deque[FrameFeatures] = deque(maxlen=config.buffer_length())
        self._recognised_at: int | None = None

    @property
    def predictor(self) -> Predictor | None:
        return self._predictor

    def set_predictor(self, predictor: Predictor | None) -> None:
        """Use ``predictor`` from the next utterance on (a reference swap, safe across threads)."""
        self._predictor = predictor

    def reset(self) -> None:
        """Forget the buffer and the segmenter's state (a new source)."""
        self._segmenter.reset()
        self._buffer.clear()
        self._recognised_at = None

    def process(self, row: FrameFeatures) -> FrameResult:
        """Take one frame's features; returns what to draw, with a recognition when one ended."""
        self._buffer.append(row)
        ended = self._segmenter.update(row.index, row.features, row.features is not None,
                                       row.timestamp_ms)
        utterance = ended[-1] if ended else None
        recognition, error = self._recognise(utterance, row.timestamp_ms)
        state = display_state(self._segmenter.state, row.timestamp_ms, self._recognised_at,
                              self.config.recognised_hold_ms)
        return self._result(row, state, utterance, recognition, error)

    def finish(self) -> list[Recognition]:
        """End of stream: close any open utterance and return its recognitions."""
        last = self._buffer[-1].timestamp_ms if self._buffer else 0
        done = [self._recognise(u, last)[0] for u in self._segmenter.flush()]
        return [recognition for recognition in done if recognition is not None]

    def _recognise(self, utterance: Utterance | None, now_ms: int
                   ) -> tuple[Recognition | None, str | None]:
        predictor = self._predictor
        if utterance is None or predictor is None:
            return None, None
        try:
            clip = utterance_clip(list(self._buffer), None, utterance, self.config.margin_frames)
            prediction = predictor.predict(clip)
        except ValueError as error:
            return None, f"utterance at {utterance.start_ms} ms not recognised: {error}"
        self._recognised_at = now_ms
        waited = now_ms - (utterance.end_ms if utterance.end_ms is not None else now_ms)
        sure = prediction.confidence >= self.config.confidence_threshold
        return Recognition(utterance, prediction, sure, waited + prediction.latency_ms), None

    def _result(self, row: FrameFeatures, state: LiveState, utterance: Utterance | None,
                recognition: Recognition | None, error: str | None) -> FrameResult:
        outer = inner = box = None
        if row.face is not None:
            points = row.face.points
            outer, inner = points[_OUTER, :2].copy(), points[_INNER, :2].copy()
            box = mouth_crop_box(points, self.config.crop)
        return FrameResult(row.index, row.timestamp_ms, outer, inner, box, state,
                           plot_values(row.features, self._columns), utterance, recognition, error)


class PlotHistory:
    """The last ``length`` frames' plotted values, for scrolling plots (not thread-safe).

    :meth:`series` gives times (N,) in seconds and values (N, len(PLOT_NAMES)),
    oldest first; NaN where there was no face, so a plot shows a gap.
    """

    def __init__(self, length: int = LiveConfig().history_length):
        if length < 1:
            raise ValueError(f"history length {length}: must be at least 1 frame")
        self._times = np.full(length, np.nan)
        self._values = np.full((length, len(PLOT_NAMES)), np.nan)
        self._count = 0

    def append(self, result: FrameResult) -> None:
        slot = self._count % len(self._times)
        self._times[slot] = result.timestamp_ms / 1000.0
        self._values[slot] = result.values
        self._count += 1

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        length = len(self._times)
        if self._count <= length:
            return self._times[:self._count].copy(), self._values[:self._count].copy()
        order = np.roll(np.arange(length), -(self._count % length))
        return self._times[order], self._values[order]

    def clear(self) -> None:
        self._times[:] = np.nan
        self._values[:] = np.nan
        self._count = 0
