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

import ctypes
import math
import os
from collections import deque
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Sequence

import numpy as np

from features.cache import ClipFeatures
from features.frame_features import FrameFeatures
from features.mouth_image import COLOUR_NAMES, CropConfig, mouth_crop_box
from features.topology import INNER_LIP, OUTER_LIP
from recognizer.predictor import Prediction, Predictor, is_sure, utterance_clip
from recognizer.segmenter import SegmenterConfig, SegmenterState, Utterance, UtteranceSegmenter

PLOT_NAMES = ("inner_mar", "outer_mar", "inner_area", "teeth_ratio", "tongue_ratio", "jawOpen")
# The least rest-to-speech span a plot scales a channel to, in the channel's own unit: a
# person at rest for a whole window shows a flat line, not their jitter blown up to full scale.
PLOT_MIN_SPANS = {"inner_mar": 0.1, "outer_mar": 0.08, "inner_area": 0.015,
                  "teeth_ratio": 0.05, "tongue_ratio": 0.05, "jawOpen": 0.08}
_OUTER = np.array(OUTER_LIP)
_INNER = np.array(INNER_LIP)
# The files torch's CUDA code is mapped from: the nvidia-* wheels and torch's own CUDA parts.
GPU_LIBRARIES = ("/nvidia/", "libtorch_cuda", "libc10_cuda", "libcudnn", "libnccl", "triton")
_MADV_DONTNEED = 4


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
    ``crop``: must be the pipeline's crop settings, for the drawn crop box;
    ``tentative_max_ms``: tentative readings stop once two readings in a row
    took this long (a slow video model on a CPU reads each utterance once, at
    its end; one slow first reading, warming up, does not count).
    """

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    margin_frames: int = 4
    confidence_threshold: float = 0.5
    recognised_hold_ms: int = 1000
    history_length: int = 250
    crop: CropConfig = field(default_factory=CropConfig)
    tentative_max_ms: float = 100.0

    def buffer_length(self) -> int:
        """Frames the ring buffer needs: the longest utterance, both margins and the emit delay."""
        seg = self.segmenter
        return seg.max_frames + 2 * self.margin_frames + seg.max_pause + seg.smoothing_radius + 2


@dataclass(frozen=True)
class Recognition:
    """One recognised utterance.

    ``start_ms`` / ``end_ms``: its first and last active frame (stream time);
    ``sure``: :func:`~recognizer.predictor.is_sure` at the threshold; ``latency_ms``: from the
    last active frame to the words being ready -- stream time until the
    segmenter offered the utterance, plus the predictor's wall time; ``final``:
    False for a tentative reading (the lips paused ``read_after`` frames and
    may go on), True once the segmenter has confirmed the end. A final reading
    of the same frames by the same predictor repeats the tentative one, with
    its latency: the words were on screen then. ``clip``: the features the
    predictor read (the utterance with its margins), what a confirmation enrols.
    """

    utterance: Utterance
    prediction: Prediction
    sure: bool
    latency_ms: float
    final: bool = True
    clip: ClipFeatures | None = field(default=None, repr=False, compare=False)

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
    one float per :data:`PLOT_NAMES` (NaN without a face, and NaN for a channel
    not measured on this frame, e.g. teeth / tongue with the colour gate closed);
    ``utterance``: the utterance that ended with this frame, if any;
    ``recognition``: its prediction (None without a predictor); ``error``: why
    the prediction failed; ``activity``: the segmenter's activity of its last
    decided frame (``smoothing_radius`` frames back), in threshold units, NaN
    without a face.
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
    activity: float = math.nan

    @property
    def has_face(self) -> bool:
        return self.outer_lip is not None

    def measured(self, name: str) -> bool:
        """Whether the plotted value ``name`` was measured: a face and a finite value."""
        return self.has_face and math.isfinite(self.value(name))

    def value(self, name: str) -> float:
        """The plotted value ``name`` (one of :data:`PLOT_NAMES`)."""
        return self.values[PLOT_NAMES.index(name)]


def plot_values(features: np.ndarray | None, columns: Sequence[int],
                measured: Sequence[bool] | None = None) -> tuple[float, ...]:
    """The plotted channels of one (F,) feature row; all NaN without a face.

    ``measured``: one bool per column, False for a channel not measured on this
    frame (NaN, whatever the row holds); a NaN in the row reads the same.
    """
    if features is None:
        return (math.nan,) * len(columns)
    if measured is None:
        measured = (True,) * len(columns)
    return tuple(float(features[c]) if m else math.nan for c, m in zip(columns, measured, strict=True))


def personal_range(values: np.ndarray, min_spans: Sequence[float],
                   quantiles: tuple[float, float] = (0.05, 0.95)) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's rest and speech level over a window of frames.

    ``values``: (N, C), NaN where not measured; ``min_spans``: (C,) the least
    speech-minus-rest span, in each channel's unit. Returns ``rest`` (C,), the
    low quantile (the segmenter's rest statistic), and ``speech`` (C,), the high
    quantile but at least ``rest + min_span``; both NaN for a channel with no value.
    """
    values = np.asarray(values, dtype=float)
    known = np.isfinite(values).any(axis=0)
    rest, speech = np.full((2, values.shape[1]), np.nan)
    if known.any():
        rest[known], speech[known] = np.nanquantile(values[:, known], quantiles, axis=0)
    return rest, np.maximum(speech, rest + np.asarray(min_spans, dtype=float))


def scale_to_range(values: np.ndarray, rest: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """(N, C) values mapped so each channel's ``rest`` is 0 and its ``speech`` level 1."""
    return (np.asarray(values, dtype=float) - rest) / (speech - rest)


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
        # The open utterance's tentative reading, and the predictor that made it.
        self._tentative: tuple[Recognition, Predictor] | None = None
        self._read_ms: deque[float] = deque(maxlen=2)   # how long the last readings took

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
        self._tentative = None

    def process(self, row: FrameFeatures) -> FrameResult:
        """Take one frame's features; returns what to draw, with a recognition when an
        utterance ended (``final``) or paused long enough to be read (tentative)."""
        self._buffer.append(row)
        ended = self._segmenter.update(row.index, row.features, row.features is not None,
                                       row.timestamp_ms)
        utterance = ended[-1] if ended else None
        if utterance is not None:
            recognition, error = self._recognise(utterance, row.timestamp_ms)
        else:
            recognition, error = self._read_tentatively(self._segmenter.tentative, row.timestamp_ms)
        state = display_state(self._segmenter.state, row.timestamp_ms, self._recognised_at,
                              self.config.recognised_hold_ms)
        return self._result(row, state, utterance, recognition, error)

    def finish(self) -> list[Recognition]:
        """End of stream: close any open utterance and return its recognitions."""
        last = self._buffer[-1].timestamp_ms if self._buffer else 0
        done = [self._recognise(u, last)[0] for u in self._segmenter.flush()]
        return [recognition for recognition in done if recognition is not None]

    def _read_tentatively(self, utterance: Utterance | None, now_ms: int
                          ) -> tuple[Recognition | None, str | None]:
        slow = len(self._read_ms) == self._read_ms.maxlen and min(self._read_ms) >= (
            self.config.tentative_max_ms)
        if utterance is None or slow:
            return None, None
        recognition, error = self._recognise(utterance, now_ms, final=False)
        if recognition is not None:
            self._tentative = recognition, self._predictor
        return recognition, error

    def _recognise(self, utterance: Utterance, now_ms: int, final: bool = True
                   ) -> tuple[Recognition | None, str | None]:
        predictor = self._predictor
        if predictor is None:
            return None, None
        tentative, self._tentative = self._tentative, None
        if final and tentative is not None:
            reading, read_by = tentative
            if reading.utterance == utterance and read_by is predictor:
                return replace(reading, final=True), None
        try:
            clip = utterance_clip(list(self._buffer), None, utterance, self.config.margin_frames)
            prediction = predictor.predict(clip)
        except ValueError as error:
            return None, f"utterance at {utterance.start_ms} ms not recognised: {error}"
        self._read_ms.append(prediction.latency_ms)
        self._recognised_at = now_ms
        waited = now_ms - (utterance.end_ms if utterance.end_ms is not None else now_ms)
        sure = is_sure(prediction, self.config.confidence_threshold)
        return Recognition(utterance, prediction, sure, waited + prediction.latency_ms, final,
                           clip), None

    def clip_between(self, first: int, last: int) -> ClipFeatures | None:
        """The buffered features of frames ``first`` to ``last`` (indices) as one clip (a
        recorded take's), or None when the buffer no longer holds them all."""
        rows = [row for row in self._buffer if first <= row.index <= last]
        if not rows or rows[0].index != first or rows[-1].index != last:
            return None
        return utterance_clip(rows)

    def _measured(self, row: FrameFeatures) -> list[bool]:
        """Per plotted channel: False for the teeth and tongue ratios when the mouth was too
        closed, or too small in the image, to measure colour on this frame."""
        return [row.colour_measured or name not in COLOUR_NAMES for name in PLOT_NAMES]

    def _result(self, row: FrameFeatures, state: LiveState, utterance: Utterance | None,
                recognition: Recognition | None, error: str | None) -> FrameResult:
        outer = inner = box = None
        if row.face is not None:
            points = row.face.points
            outer, inner = points[_OUTER, :2].copy(), points[_INNER, :2].copy()
            box = mouth_crop_box(points, self.config.crop)
        activity = self._segmenter.activity
        return FrameResult(row.index, row.timestamp_ms, outer, inner, box, state,
                           plot_values(row.features, self._columns, self._measured(row)),
                           utterance, recognition, error,
                           math.nan if activity is None else activity)


@dataclass(frozen=True)
class PlotSeries:
    """A :class:`PlotHistory` window, oldest first: ``times`` (N,) seconds; ``values``
    (N, len(PLOT_NAMES)); ``activity`` (N,) the segmenter's activity; ``face`` (N,) bool.
    NaN where there was no face or a channel was not measured."""

    times: np.ndarray
    values: np.ndarray
    activity: np.ndarray
    face: np.ndarray


class PlotHistory:
    """The last ``length`` frames' plotted values, for scrolling plots (not thread-safe).

    :meth:`series` gives times (N,) in seconds and values (N, len(PLOT_NAMES)),
    oldest first; NaN where there was no face, so a plot shows a gap.
    :meth:`window` adds the segmenter's activity and which frames had a face.
    """

    def __init__(self, length: int = LiveConfig().history_length):
        if length < 1:
            raise ValueError(f"history length {length}: must be at least 1 frame")
        self._times = np.full(length, np.nan)
        self._values = np.full((length, len(PLOT_NAMES)), np.nan)
        self._activity = np.full(length, np.nan)
        self._face = np.zeros(length, dtype=bool)
        self._count = 0

    def append(self, result: FrameResult) -> None:
        slot = self._count % len(self._times)
        self._times[slot] = result.timestamp_ms / 1000.0
        self._values[slot] = result.values
        self._activity[slot] = result.activity
        self._face[slot] = result.has_face
        self._count += 1

    def _order(self) -> slice | np.ndarray:
        length = len(self._times)
        if self._count <= length:
            return slice(0, self._count)
        return np.roll(np.arange(length), -(self._count % length))

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        order = self._order()
        return self._times[order].copy(), self._values[order].copy()

    def window(self) -> PlotSeries:
        order = self._order()
        return PlotSeries(self._times[order].copy(), self._values[order].copy(),
                          self._activity[order].copy(), self._face[order].copy())

    def clear(self) -> None:
        self._times[:] = np.nan
        self._values[:] = np.nan
        self._activity[:] = np.nan
        self._face[:] = False
        self._count = 0


def file_mappings(parts: tuple[str, ...] = GPU_LIBRARIES) -> list[dict]:
    """This process's mappings of files whose path holds one of ``parts``, from
    ``/proc/self/smaps``: ``start`` and ``end`` addresses, ``perms`` (``r-xp``...), ``path``
    and its sizes in kB (``Rss``, ``Private_Dirty``, ``Anonymous``...)."""
    mappings, current = [], {}
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                path = head[5] if len(head) > 5 else ""
                start, end = (int(x, 16) for x in head[0].split("-"))
                current = {"start": start, "end": end, "perms": head[1], "path": path}
                if any(part in path for part in parts):
                    mappings.append(current)
            elif head[0].endswith(":") and len(head) > 1 and head[1].isdigit():
                current[head[0][:-1]] = int(head[1])
    return mappings


def release_unused_gpu_code() -> int:
    """Unmap torch's CUDA code where no GPU can run it; the bytes of mappings released.

    torch's Linux wheel loads its CUDA libraries with itself, GPU or not, and a kernel that
    reads files in large folios maps whole folios of them as they load: about 290 MB of a
    live window's 1.15 GB resident, and program code the system is slow to reclaim. Without
    a GPU none of it runs, so the process drops every clean mapping of them (the file's own
    bytes, nothing written): should anything touch one again it comes back from the file
    unchanged. Linux only; elsewhere, or with a GPU, nothing is done.
    """
    import torch

    if torch.cuda.is_available() or not os.path.exists("/proc/self/smaps"):
        return 0
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    released = 0
    for mapping in file_mappings(GPU_LIBRARIES):
        written = sum(mapping.get(size, 0) for size in ("Shared_Dirty", "Private_Dirty",
                                                         "Anonymous", "Swap"))
        if "w" in mapping["perms"] or written:
            continue
        if madvise(mapping["start"], mapping["end"] - mapping["start"], _MADV_DONTNEED) == 0:
            released += mapping["end"] - mapping["start"]
    return released
