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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from features.cache import ClipFeatures
from features.dataset import Sidecar, delete_clip, save_clip
from features.video import Frame, decode_jpeg, encode_jpeg
from recognizer.segmenter import Utterance

CONFIRMED, PICKED, CORRECTED = "confirmed", "picked", "corrected"
KEPT_SECONDS = 4.0     # an utterance longer than this cannot be confirmed as a sample


@dataclass(frozen=True)
class HeardUtterance:
    """A final reading's utterance as the camera saw it: RGB frames (H, W, 3) uint8 at
    ``fps`` (margins included), the features read, and what was read."""

    frames: Sequence[np.ndarray] = field(repr=False)
    fps: float
    clip: ClipFeatures | None = field(repr=False)
    phrase: str
    confidence: float
    model: str


class KeptFrames(Sequence):
    """RGB frames (H, W, 3) uint8 kept as JPEG (:func:`features.video.encode_jpeg`), each
    decoded when read: a final reading carries its frames at a fifteenth of their size, and
    only a confirmation, saving them, pays for decoding."""

    def __init__(self, encoded: Sequence[np.ndarray]):
        self._encoded = tuple(encoded)

    def __len__(self) -> int:
        return len(self._encoded)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return KeptFrames(self._encoded[index])
        return decode_jpeg(self._encoded[index])

    @property
    def nbytes(self) -> int:
        return sum(data.nbytes for data in self._encoded)


class FrameKeeper:
    """The newest frames of the stream (``seconds`` of them at ``fps``), to cut utterances from.

    Frames are kept as JPEG: 4 s of a 640x480 camera take about 8 MB instead of 110
    (a 1280x720 one 20 instead of 330), for about 1.5 ms a frame.
    """

    def __init__(self, fps: float = 30.0, seconds: float = KEPT_SECONDS):
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=max(1, round(fps * seconds)))

    def add(self, frame: Frame) -> None:
        self._frames.append((frame.index, encode_jpeg(frame.rgb)))

    def clear(self) -> None:
        self._frames.clear()

    @property
    def nbytes(self) -> int:
        """Bytes the kept frames take."""
        return sum(data.nbytes for _, data in self._frames)

    def cut(self, utterance: Utterance, margin: int) -> KeptFrames | None:
        """The frames of ``utterance`` with ``margin`` frames each side; None when its
        start has already left the keeper (an utterance longer than it keeps)."""
        low, high = utterance.start - margin, utterance.end + margin
        frames = [data for index, data in self._frames if low <= index <= high]
        if not frames or self._frames[0][0] > max(low, 0):
            return None
        return KeptFrames(frames)


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
