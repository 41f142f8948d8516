"""Streaming utterance segmentation from per-frame lip features.

One :class:`UtteranceSegmenter` is fed one frame at a time, from the camera or
from a file (:func:`segment_clip` runs it over a whole clip), and emits an
:class:`Utterance` once the person has stopped mouthing.

Each frame gets an *activity*, in units of the thresholds:

- opening: the opening feature (``inner_mar`` by default) above the person's
  rest baseline, divided by ``opening_scale``;
- motion: the mean speed of the 40 lip points in the face-normalised frame
  (inter-ocular distances per frame) above its rest baseline, divided by
  ``motion_scale``.

A baseline is a running low quantile of its own measure over the last
``baseline_window`` frames with a face, so it follows the person (a mouth that
rests half open, a jittery landmarker) without needing to know when they speak:
speech keeps closing the lips, so its low quantile stays near rest.

The activity is smoothed by a centred moving average; decisions therefore lag
the newest frame by ``smoothing_radius`` frames. Hysteresis: an utterance is a
run of frames whose smoothed activity stays above ``off_threshold`` and that
reaches ``on_threshold``; runs separated by at most ``max_pause`` quiet frames
are merged, utterances shorter than ``min_frames`` are dropped, and one that
reaches ``max_frames`` is emitted there (what follows starts a new one once it
crosses ``on_threshold`` again). Lips held still for ``hold_frames`` frames in a
row (lip speed under ``still_threshold``), however open, leave only their last
``hold_lead`` frames in the run before an utterance: someone who parts their lips,
to breathe in or to get ready, and waits has not started mouthing yet, but the
sound (or the tongue, behind lips held still) starts just before the lips move.
Inside an utterance only frames whose lips move (motion of at least ``end_motion``)
count as mouthing, so a mouth left parted, or slowly relaxing, after the phrase
does not stretch its end. An utterance whose lips barely moved (fewer than
``min_articulated`` frames of ``articulation``) is a breath, not speech, and is
dropped. ``read_after`` quiet frames after the last active one the open
utterance is offered for a tentative reading (:attr:`UtteranceSegmenter.tentative`):
the live app shows its words then, 160 ms after the lips stop, and the
``max_pause`` that merges pauses costs the patient no wait.

Each clip of the 300 GRID speaker-1 sentences alone
(``tests/benchmarks/segmentation_grid.py``): 299 give exactly one utterance
(the other has no face for half its frames), the end of speech is found within
4 frames of the acoustic alignment in 97 %, the start a median 1 frame before
the sound -- the lips move first -- and more than 4 frames after it in 5.7 %.
Streamed back to back as the live app sees them, the 600 training sentences of
the sentence benchmark's split (cached features), on which ``on_threshold``,
``max_pause`` and the articulation rule were chosen, give exactly one
utterance each, and so do 260 of them played as one video through the whole
live path (``tests/benchmarks/live_sentences.py --split train``; a
``max_pause`` of 8 merged one pair there). Of the 200 test sentences, 198 do
and none gives nothing; ``bgig6n`` pauses 280 ms between "in" and "g", longer
than ``max_pause``, and is read in two parts. The thresholds of 1.0 and 8 frames
used before left quiet sentences unread (``bbaf3s``, played in a loop, never)
and merged sentences whose pause was short. Cross-validated, learned detectors
(gradient-boosted trees, a dilated 1D CNN, trees trained on the start alone,
with or without the mouth crops: ``tests/benchmarks/segmentation_learned_onset.py``)
placed at most 90 % of acoustic starts within 4 frames; they learn one
speaker's voiced-speech breathing, which a voiceless patient does not have, so
they are not used.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


MAX_DROPPED = 3      # dropped frames between two kept ones across which lip speed is still measured


class SegmenterState(StrEnum):
    """Where the segmenter is, as of its last decided frame.

    ``RESTING``: between utterances; ``MOUTHING``: inside one, lips moving;
    ``PAUSING``: inside one, lips still (a pause that may yet be merged).
    Members are their lower-case names as ``str``, so they compare equal to
    and serialise as plain text.
    """

    RESTING = "resting"
    MOUTHING = "mouthing"
    PAUSING = "pausing"


@dataclass(frozen=True)
class SegmenterConfig:
    """Parameters of :class:`UtteranceSegmenter`; defaults tuned on GRID speaker 1 (25 fps).

    Lengths are in frames (at 25 fps a frame is 40 ms). ``opening_scale`` is
    in the unit of ``opening_feature`` (``inner_mar``: inner lip height over
    inner width); ``motion_scale`` in inter-ocular distances per frame. An
    activity of 1 is thus an inner opening 0.4 above rest, or lip points moving
    0.02 inter-ocular distances per frame faster than at rest.

    The high ``on_threshold`` / low ``off_threshold`` pair (hysteresis factor
    3.5) starts an utterance only on clear mouthing, yet places the start where
    the activity first left rest; the smaller openings people make to breathe
    in before speaking are told from speech by their lips barely moving
    (``articulation``, below).
    ``smoothing_radius`` is 0 because averaging lowers the short peaks that
    mark an onset; hysteresis and ``min_frames`` already reject jitter.
    ``baseline_window`` (10 s) sets how fast the rest level adapts.
    ``still_threshold`` is in activity units of motion (0.1: lip points 0.002
    inter-ocular distances per frame above rest; the median in GRID speech is
    0.22); of ``hold_frames`` (6 frames, 240 ms) of such stillness before the
    onset, only the last ``hold_lead`` (4, 160 ms) stay in the utterance.
    ``end_motion`` (0.06, in the same units) is the least motion of a frame that
    keeps an utterance going; a still frame inside one counts towards ``max_pause``.

    ``read_after`` quiet frames after the last active one, the open utterance
    is offered for a tentative reading (:attr:`UtteranceSegmenter.tentative`),
    so words can be on screen before ``max_pause`` confirms the end; it must
    not exceed ``max_pause``. An utterance needs ``min_articulated`` frames
    whose lips move at least ``articulation`` (motion units): a breath taken
    with the mouth opening and then held still, or a mouth that rests more
    open than before, moves the lips too little to be speech.
    """

    opening_feature: str = "inner_mar"
    opening_scale: float = 0.4
    motion_scale: float = 0.02
    on_threshold: float = 0.7
    off_threshold: float = 0.2
    smoothing_radius: int = 0
    min_frames: int = 6
    max_frames: int = 250
    max_pause: int = 6
    read_after: int = 4
    articulation: float = 0.25
    min_articulated: int = 3
    baseline_quantile: float = 0.05
    baseline_window: int = 250
    still_threshold: float = 0.1
    hold_frames: int = 6
    hold_lead: int = 4
    end_motion: float = 0.06


@dataclass(frozen=True)
class Utterance:
    """One detected utterance: inclusive frame indices and their timestamps (ms, or None)."""

    start: int
    end: int
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def lip_speed(points: np.ndarray, previous: np.ndarray | None) -> float:
    """Mean displacement of the lip points between two frames.

    ``points``, ``previous``: (N, 2) in the face-normalised frame
    (inter-ocular distances). 0 without a previous frame.
    """
    if previous is None:
        return 0.0
    return float(np.linalg.norm(points - previous, axis=1).mean())


def running_low_quantile(history: Sequence[float], quantile: float) -> float:
    """The ``quantile`` of the values in ``history`` (the rest level of a measure)."""
    return float(np.quantile(np.fromiter(history, dtype=float), quantile))


def frame_activity(opening: float, speed: float, opening_rest: float, speed_rest: float,
                   config: SegmenterConfig) -> tuple[float, float]:
    """(activity, motion) of one frame: opening plus lip speed above their rest levels, and
    the lip-speed part alone, both in threshold units."""
    motion = max(speed - speed_rest, 0.0) / config.motion_scale
    return max(opening - opening_rest, 0.0) / config.opening_scale + motion, motion


def lip_point_columns(names: Sequence[str]) -> np.ndarray:
    """(N, 2) column indices of the ``lip<i>_x`` / ``lip<i>_y`` features, in name order."""
    names = list(names)
    xs = [i for i, name in enumerate(names) if name.startswith("lip") and name.endswith("_x")]
    if not xs or any(names[i][:-2] + "_y" not in names for i in xs):
        raise ValueError("the feature names need lip<i>_x and lip<i>_y columns in pairs")
    return np.array([xs, [names.index(names[i][:-2] + "_y") for i in xs]]).T


class UtteranceSegmenter:
    """Fed one frame at a time; emits each :class:`Utterance` once it has ended.

    ``names``: the feature names of the rows it will be given (e.g.
    :data:`features.frame_features.FEATURE_NAMES`); columns are found by name.
    An utterance is emitted ``max_pause + smoothing_radius + 1`` frames after
    its last active frame, with ``end`` set to that last active frame.
    """

    def __init__(self, names: Sequence[str], config: SegmenterConfig = SegmenterConfig()):
        names = list(names)
        if config.opening_feature not in names:
            raise ValueError(f"opening feature {config.opening_feature!r} is not among the feature names")
        if not 0.0 < config.off_threshold <= config.on_threshold:
            raise ValueError("need 0 < off_threshold <= on_threshold")
        if not 0 <= config.hold_lead < config.hold_frames:
            raise ValueError("need 0 <= hold_lead < hold_frames")
        if not 0 < config.read_after <= config.max_pause:
            raise ValueError("need 0 < read_after <= max_pause")
        self.config = config
        self._opening_column = names.index(config.opening_feature)
        self._lip_columns = lip_point_columns(names)
        self.reset()

    def reset(self) -> None:
        """Forget everything: baselines, smoothing window, open utterance."""
        window = self.config.baseline_window
        self._openings: deque[float] = deque(maxlen=window)
        self._speeds: deque[float] = deque(maxlen=window)
        self._previous_points: np.ndarray | None = None
        self._previous_index: int | None = None
        self._recent: deque[tuple[int, int | None, tuple[float, float] | None]] = deque(
            maxlen=2 * self.config.smoothing_radius + 1)
        self._undecided = 0
        self._state = SegmenterState.RESTING
        self._run_start: tuple[int, int | None] | None = None
        self._held = 0
        self._resting_frames: deque[tuple[int, int | None]] = deque(maxlen=self.config.hold_lead + 1)
        self._start: tuple[int, int | None] | None = None
        self._last_active: tuple[int, int | None] | None = None
        self._articulated = 0
        self._quiet = 0
        self._tentative: Utterance | None = None

    @property
    def state(self) -> SegmenterState:
        """The :class:`SegmenterState` as of the last decided frame
        (``smoothing_radius`` frames behind the newest)."""
        return self._state

    @property
    def tentative(self) -> Utterance | None:
        """The open utterance, offered once it has been quiet for ``read_after`` frames:
        set only by the :meth:`update` call of that frame (None otherwise). If the lips
        do not move again it is emitted unchanged ``max_pause - read_after`` frames
        later; if they do, it goes on and ends later."""
        return self._tentative

    @property
    def activity(self) -> float | None:
        """The smoothed activity of the last decided frame, in threshold units (what
        ``on_threshold`` / ``off_threshold`` are compared with; 0 is rest); None before
        any frame and for a frame without a face."""
        position = len(self._recent) - self._undecided - 1
        if position < 0 or self._recent[position][2] is None:
            return None
        radius = self.config.smoothing_radius
        window = [self._recent[i][2] for i in range(max(position - radius, 0),
                                                    min(position + radius + 1, len(self._recent)))]
        return float(np.mean([a for a in window if a is not None], axis=0)[0])

    def update(self, frame_index: int, features: np.ndarray | None, valid: bool = True,
               timestamp_ms: int | None = None) -> list[Utterance]:
        """Take one frame; return the utterances that ended with it (usually none).

        ``features``: (F,) row named as in the constructor, or None when no face
        was found (``valid`` False); frame indices must increase.
        """
        self._tentative = None
        activity = self._activity(frame_index, features, valid)
        self._recent.append((frame_index, timestamp_ms, activity))
        self._undecided += 1
        ended: list[Utterance] = []
        while self._undecided > self.config.smoothing_radius:
            ended += self._decide_next()
        return ended

    def flush(self) -> list[Utterance]:
        """End of stream: decide the waiting frames, close any open utterance, then reset."""
        ended: list[Utterance] = []
        while self._undecided:
            ended += self._decide_next()
        if self._state != SegmenterState.RESTING:
            ended += self._close()
        self.reset()
        return ended

    def _activity(self, index: int, features: np.ndarray | None,
                  valid: bool) -> tuple[float, float] | None:
        row = None if features is None else np.asarray(features, dtype=float)
        if not valid or row is None or not np.isfinite(row).all():
            self._previous_points = None
            return None
        points = row[self._lip_columns]
        # Frames the camera dropped (a busy machine) leave a gap: the speed is per frame over it,
        # or the lips would seem to stop and an utterance end at every dropped frame.
        gap = index - self._previous_index if self._previous_points is not None else 0
        follows = 0 < gap <= MAX_DROPPED + 1
        speed = lip_speed(points, self._previous_points if follows else None) / max(gap, 1)
        self._previous_points, self._previous_index = points, index
        opening = float(row[self._opening_column])
        self._openings.append(opening)
        if follows:
            self._speeds.append(speed)
        quantile = self.config.baseline_quantile
        speed_rest = running_low_quantile(self._speeds, quantile) if self._speeds else speed
        return frame_activity(opening, speed, running_low_quantile(self._openings, quantile),
                              speed_rest, self.config)

    def _decide_next(self) -> list[Utterance]:
        """Smooth the oldest undecided frame over its centred window and step the state."""
        radius = self.config.smoothing_radius
        position = len(self._recent) - self._undecided
        self._undecided -= 1
        index, timestamp, activity = self._recent[position]
        window = [self._recent[i][2] for i in range(max(position - radius, 0),
                                                    min(position + radius + 1, len(self._recent)))]
        known = [a for a in window if a is not None]
        # A frame without a face cannot be active, whatever its neighbours did.
        smoothed, motion = np.mean(known, axis=0) if activity is not None else (0.0, 0.0)
        return self._step((index, timestamp), float(smoothed), float(motion))

    def _step(self, frame: tuple[int, int | None], activity: float,
              motion: float) -> list[Utterance]:
        """Hysteresis state machine over one decided frame."""
        config = self.config
        above_off = activity > config.off_threshold
        if self._state == SegmenterState.RESTING:
            self._resting_frames.append(frame)
            if not above_off:
                self._run_start, self._held = None, 0
            else:
                self._run_start = self._run_start or frame
                if motion < config.still_threshold:
                    self._held += 1
                else:
                    if self._held >= config.hold_frames:
                        # Only the hold's last hold_lead frames stay in: the sound (or the
                        # tongue, behind lips held still) starts just before the lips move.
                        self._run_start = self._resting_frames[-1 - config.hold_lead]
                    self._held = 0
            if activity > config.on_threshold:
                self._state, self._quiet = SegmenterState.MOUTHING, 0
                self._start, self._last_active = self._run_start or frame, frame
                self._articulated = int(motion >= config.articulation)
            return []
        self._articulated += motion >= config.articulation
        if above_off and motion >= config.end_motion:
            self._state, self._last_active, self._quiet = SegmenterState.MOUTHING, frame, 0
        else:
            # Quiet frames seen, not frames elapsed: frames a busy camera dropped are unknown,
            # not still, so a burst of them cannot end an utterance.
            self._state, self._quiet = SegmenterState.PAUSING, self._quiet + 1
        quiet = self._quiet
        if quiet > config.max_pause or frame[0] - self._start[0] + 1 >= config.max_frames:
            return self._close()
        if quiet == config.read_after and self._is_speech():
            self._tentative = self._utterance()
        return []

    def _utterance(self) -> Utterance:
        (start, start_ms), (end, end_ms) = self._start, self._last_active
        return Utterance(start, end, start_ms, end_ms)

    def _is_speech(self) -> bool:
        """Whether the open utterance is long enough and its lips moved enough."""
        return (self._last_active[0] - self._start[0] + 1 >= self.config.min_frames
                and self._articulated >= self.config.min_articulated)

    def _close(self) -> list[Utterance]:
        """End the open utterance at its last active frame; keep it if it is speech."""
        utterance, speech = self._utterance(), self._is_speech()
        self._state = SegmenterState.RESTING
        self._run_start, self._start, self._last_active = None, None, None
        self._held, self._articulated = 0, 0
        return [utterance] if speech else []


def segment_clip(features: np.ndarray, valid: np.ndarray, names: Sequence[str],
                 config: SegmenterConfig = SegmenterConfig(),
                 timestamps_ms: np.ndarray | None = None) -> list[Utterance]:
    """Utterances of a whole clip, by streaming its frames through one segmenter.

    ``features``: (T, F) named by ``names``; ``valid``: (T,) bool (a face was
    found); ``timestamps_ms``: optional (T,) ints. Frame indices are 0..T-1.
    """
    segmenter = UtteranceSegmenter(names, config)
    utterances: list[Utterance] = []
    for index, (row, face) in enumerate(zip(features, valid)):
        stamp = None if timestamps_ms is None else int(timestamps_ms[index])
        utterances += segmenter.update(index, row if face else None, bool(face), stamp)
    return utterances + segmenter.flush()
