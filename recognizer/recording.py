"""Recording a sample from the live stream: countdown, capture, end on the utterance's end.

:class:`Recorder` is the Qt-free state machine behind the record panel. The
live worker feeds it every frame with that frame's :class:`FrameResult`; it
counts down, keeps the frames while recording, and stops when the segmenter
reports an utterance that began after the countdown (or at the maximum
length). The result is a :class:`Take`: the frames cut to the utterance with
the same margin the live recogniser cuts with, so a recorded sample and a live
utterance look alike to the model. Saving is :func:`features.dataset.save_clip`,
which writes atomically; a take that is discarded never touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.cache import ClipFeatures
from features.video import Frame
from training.config import SMALL_CLASS
from recognizer.live import FrameResult
from recognizer.segmenter import Utterance

IDLE, COUNTDOWN, RECORDING = "idle", "countdown", "recording"
UTTERANCE_END, MAX_LENGTH = "utterance_end", "max_length"
DEFAULT_PHRASES = ("help", "doctor", "glasses", "phone", "pillow", "i_need_to_move",
                   "my_mouth_is_dry")


def phrase_list(labels) -> tuple[str, ...]:
    """The phrases the app offers: the default ones, then every other recorded label, sorted."""
    return DEFAULT_PHRASES + tuple(sorted(set(labels) - set(DEFAULT_PHRASES)))


RECOMMENDED_CLIPS = 10       # trained kinds work well from here
GOOD_ENOUGH = 0.8            # an expected accuracy below this asks for more samples


@dataclass(frozen=True)
class RecordingConfig:
    """``countdown_ms`` before capture starts; ``max_ms`` of capture at most;
    ``margin_frames`` kept before and after the utterance (as :class:`LiveConfig`)."""

    countdown_ms: int = 3000
    max_ms: int = 6000
    margin_frames: int = 4

    def __post_init__(self):
        if self.countdown_ms < 0 or self.max_ms <= 0 or self.margin_frames < 0:
            raise ValueError(f"recording settings {self}: countdown and margin must be >= 0 "
                             "and the maximum length > 0")


@dataclass(frozen=True)
class Take:
    """A finished recording: RGB frames (H, W, 3) uint8 at ``fps``; ``ended_by`` says why it
    stopped; ``indices``: the stream's first and last frame index of it; ``clip``: its
    live features (set by the worker, which holds them), enrolled when it is kept."""

    frames: tuple[np.ndarray, ...]
    fps: float
    ended_by: str
    utterance: Utterance | None = None
    indices: tuple[int, int] = (0, 0)
    clip: ClipFeatures | None = field(default=None, repr=False, compare=False)

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


@dataclass(frozen=True)
class RecorderStatus:
    """What the record panel shows: ``state``, whole seconds left of the countdown, ms recorded."""

    state: str
    countdown_left_s: int = 0
    recorded_ms: int = 0


def expectation(have: int, expected: float | None, phrases: int = 2) -> str:
    """In a few words, what ``have`` samples of a phrase give the few-shot recogniser, whose
    leave-one-out accuracy on them is ``expected`` (None: not measured yet), among ``phrases``
    phrases with samples (with one it has nothing to tell the phrase from)."""
    if have == 0:
        return "record one to use it"
    if phrases < 2:
        return "record a 2nd phrase to start"
    if expected is None:
        return "usable; a 2nd sample measures it" if have == 1 else "measuring\u2026"
    if expected < GOOD_ENOUGH:
        return f"expect {expected:.0%}, record more"
    return f"expect {expected:.0%}"


def sample_hint(counts: dict[str, int], label: str, expected: float | None = None,
                phrases: int = 2) -> str:
    """The whole story of ``label``'s samples, for its tooltip."""
    have = counts.get(label, 0)
    few_shot = ("The few-shot recogniser uses a phrase from its first sample" if have == 0 else
                "The few-shot recogniser starts once a second phrase has a sample: with one, "
                "it could say nothing else" if phrases < 2 else
                f"The few-shot recogniser uses it now; with {have} sample(s) it is right "
                + (f"{expected:.0%} of the time, tested on each sample left out in turn"
                   if expected is not None else "- a second sample shows how often"))
    if have >= RECOMMENDED_CLIPS:
        trained = "enough for the trained recognisers too"
    else:
        held_out = ("they are tested on a held-out split" if have >= SMALL_CLASS else
                    f"they are cross-validated until it has {SMALL_CLASS}")
        trained = (f"the trained recognisers work well from {RECOMMENDED_CLIPS} "
                   f"({RECOMMENDED_CLIPS - have} more); {held_out}")
    return f"{few_shot}; {trained}."


class Recorder:
    """Countdown, then capture until the utterance ends. Feed it from one thread only."""

    def __init__(self, config: RecordingConfig = RecordingConfig()):
        self.config = config
        self._state = IDLE
        self._started_ms = 0
        self._frames: list[Frame] = []
        self._first_index: int | None = None

    @property
    def state(self) -> str:
        return self._state

    def start(self, now_ms: int) -> None:
        """Begin the countdown at stream time ``now_ms`` (restarts a running recording)."""
        self._state = COUNTDOWN
        self._started_ms = now_ms
        self._frames = []
        self._first_index = None

    def cancel(self) -> None:
        """Stop and forget everything recorded so far."""
        self._state = IDLE
        self._frames = []
        self._first_index = None

    def status(self, now_ms: int) -> RecorderStatus:
        if self._state == COUNTDOWN:
            left = self._started_ms + self.config.countdown_ms - now_ms
            return RecorderStatus(COUNTDOWN, countdown_left_s=max(1, -(-left // 1000)))
        if self._state == RECORDING and self._frames:
            return RecorderStatus(RECORDING, recorded_ms=now_ms - self._frames[0].timestamp_ms)
        return RecorderStatus(self._state)

    def feed(self, frame: Frame, result: FrameResult, fps: float) -> Take | None:
        """Take one frame and its live result; returns the :class:`Take` when the recording ends."""
        if self._state == COUNTDOWN and frame.timestamp_ms - self._started_ms >= self.config.countdown_ms:
            self._state, self._first_index = RECORDING, frame.index
        if self._state != RECORDING:
            return None
        self._frames.append(frame)
        utterance = result.utterance
        if utterance is not None and utterance.start >= self._first_index:
            return self._finish(fps, UTTERANCE_END, utterance)
        if frame.timestamp_ms - self._frames[0].timestamp_ms >= self.config.max_ms:
            return self._finish(fps, MAX_LENGTH, None)
        return None

    def _finish(self, fps: float, ended_by: str, utterance: Utterance | None) -> Take:
        frames = self._frames
        if utterance is not None:
            margin = self.config.margin_frames
            frames = [f for f in frames if utterance.start - margin <= f.index <= utterance.end + margin]
        take = Take(tuple(f.rgb for f in frames), fps, ended_by, utterance,
                    (frames[0].index, frames[-1].index) if frames else (0, 0))
        self.cancel()
        return take
