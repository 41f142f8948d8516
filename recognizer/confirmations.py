"""Confirmations that teach: a confirmed utterance becomes a sample of its phrase (Qt-free).

The live worker keeps the camera frames of the last few seconds in memory
(:class:`FrameKeeper`) and hands each final reading its utterance's frames
(:class:`HeardUtterance`). Nothing touches the disk until the patient or a
nurse confirms the phrase, picks one of the top 3, or marks it wrong and picks
the right one: then :func:`save_confirmation` writes the clip to
``videos/<phrase>/`` with a sidecar saying so, and it joins the patient's
samples. :func:`undo_confirmation` deletes it again.

The sidecar says ``"origin": "confirmed"`` (``how``: ``confirmed``,
``picked`` or ``corrected``; ``model``: the entry that read it;
``recognised_as`` and ``confidence``: what it read). Not ``source``: that
names the recording a clip was cut from, which the splits keep together, and
every confirmed clip is its own recording.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from features.cache import ClipFeatures
from features.dataset import Sidecar, delete_clip, save_clip
from features.video import Frame
from recognizer.segmenter import Utterance

CONFIRMED, PICKED, CORRECTED = "confirmed", "picked", "corrected"
KEPT_SECONDS = 4.0     # an utterance longer than this cannot be confirmed as a sample


@dataclass(frozen=True)
class HeardUtterance:
    """A final reading's utterance as the camera saw it: RGB frames (H, W, 3) uint8 at
    ``fps`` (margins included), the features read, and what was read."""

    frames: tuple[np.ndarray, ...] = field(repr=False)
    fps: float
    clip: ClipFeatures | None = field(repr=False)
    phrase: str
    confidence: float
    model: str


class FrameKeeper:
    """The newest frames of the stream (``seconds`` of them at ``fps``), to cut utterances from."""

    def __init__(self, fps: float = 30.0, seconds: float = KEPT_SECONDS):
        self._frames: deque[Frame] = deque(maxlen=max(1, round(fps * seconds)))

    def add(self, frame: Frame) -> None:
        self._frames.append(frame)

    def clear(self) -> None:
        self._frames.clear()

    def cut(self, utterance: Utterance, margin: int) -> tuple[np.ndarray, ...] | None:
        """The RGB frames of ``utterance`` with ``margin`` frames each side; None when its
        start has already left the keeper (an utterance longer than it keeps)."""
        low, high = utterance.start - margin, utterance.end + margin
        frames = tuple(f.rgb for f in self._frames if low <= f.index <= high)
        if not frames or self._frames[0].index > max(low, 0):
            return None
        return frames


def save_confirmation(videos_root: str | Path, phrase: str, heard: HeardUtterance, how: str,
                      patient: str | None, when: datetime | None = None) -> Path:
    """Write ``heard`` as a sample of ``phrase`` (``how`` it was confirmed) by ``patient``;
    the clip's path. Atomic, as every saved clip (:func:`features.dataset.save_clip`)."""
    if how not in (CONFIRMED, PICKED, CORRECTED):
        raise ValueError(f"how {how!r}: one of {CONFIRMED}, {PICKED}, {CORRECTED}")
    sidecar = Sidecar(speaker=patient or None,
                      recorded_at=(when or datetime.now()).isoformat(timespec="seconds"),
                      extra={"origin": "confirmed", "how": how, "model": heard.model,
                             "recognised_as": heard.phrase,
                             "confidence": round(float(heard.confidence), 4)})
    return save_clip(videos_root, phrase, list(heard.frames), heard.fps, sidecar)


def undo_confirmation(path: str | Path) -> None:
    """Delete a confirmed clip and its sidecar (and its phrase folder when left empty)."""
    delete_clip(path, missing_ok=True)
