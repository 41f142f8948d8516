"""Recognise one utterance with a registry entry, exactly as the entry was trained.

:class:`Predictor` wraps a :class:`training.registry.LoadedEntry`. Its input is
a :class:`features.cache.ClipFeatures` -- the very type the training data is
made of -- and it prepares it with the entry's kind and input spec exactly as
training and evaluation do (:meth:`training.kinds.base.ModelKind.clip_input`),
so a live utterance and an offline clip of the same frames get the same
probabilities.

:func:`utterance_clip` turns the buffered live frames of an utterance into that
``ClipFeatures``, assembled as :func:`features.extract.extract_clip` assembles
a file's frames.
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from features.cache import ClipFeatures
from features.extract import clip_from_rows
from features.frame_features import FrameFeatures
from recognizer.segmenter import Utterance
from training.kinds import get_kind
from training.registry import LoadedEntry, active_entry, active_names, list_entries, load_entry

TOP_K = 3


def find_entry(registry_root: str | os.PathLike, kind: str) -> Path | None:
    """The registry entry the app uses for ``kind``: the active one, else the newest, else None.

    An active entry that can no longer be read is still returned, so that
    loading it says which entry it is and what is wrong with it instead of the
    app quietly using another model.
    """
    active = active_entry(registry_root, kind)
    if active is not None:
        return active
    named = active_names(registry_root).get(kind)
    if isinstance(named, str) and (Path(registry_root) / named).is_dir():
        return Path(registry_root) / named
    entries = [e for e in list_entries(registry_root) if e.card.kind == kind]
    return entries[-1].path if entries else None


@dataclass(frozen=True)
class Prediction:
    """What the model says about one utterance.

    ``confidence``: probability of ``phrase`` in [0, 1]; ``top3``: up to three
    (phrase, probability) pairs, most likely first; ``probabilities``: one per
    class of the entry, in the card's class order; ``latency_ms``: wall time of
    input preparation plus the forward pass.
    """

    phrase: str
    confidence: float
    top3: tuple[tuple[str, float], ...]
    kind: str
    entry: str
    latency_ms: float
    probabilities: tuple[float, ...] = ()


def utterance_clip(rows: Sequence[FrameFeatures], fps: float | None = None,
                   utterance: Utterance | None = None, margin: int = 0) -> ClipFeatures:
    """The live frames ``rows`` (in frame order) as one clip, (T, F) features and (T, S, S) crops.

    With ``utterance``, only the rows with ``utterance.start - margin <=
    index <= utterance.end + margin`` are kept (GRID word clips were cut with
    4 frames of padding each side, so a margin of 4 feeds the model what it
    saw in training). Frames without a face get zero features and crops, as
    in the feature cache. ``fps`` defaults to the rate measured from the kept
    rows' timestamps (the formula of the extractor); crops are (T, 0, 0) when
    no row carries one (a pipeline run with ``crops=False``).
    """
    if utterance is not None:
        low, high = utterance.start - margin, utterance.end + margin
        rows = [row for row in rows if low <= row.index <= high]
    if not rows:
        raise ValueError("no buffered frame lies inside the utterance; "
                         "the frame buffer is shorter than the utterance")
    return clip_from_rows(rows, fps)


class Predictor:
    """Phrase probabilities of one utterance clip from one loaded registry entry.

    A classifier entry chooses among its own classes; a sentence reader
    (``landmark_ctc``) among ``phrases``, scored by their CTC likelihood, and
    needs them. Immutable once built, so a worker thread can use it while
    another thread builds the next one.
    """

    def __init__(self, entry: LoadedEntry, phrases: Sequence[str] | None = None):
        self.entry = entry
        self.kind: str = entry.card.kind
        self._model_kind = get_kind(self.kind)
        where = f"registry entry {entry.name} ({entry.path})"
        self._model_kind.check_spec(entry.card.input, where)
        self.phrases = tuple(phrases) if phrases is not None else None
        if self.phrases is not None and len(set(self.phrases)) != len(self.phrases):
            raise ValueError(f"the phrase list {list(self.phrases)} names a phrase twice")
        self.classes: tuple[str, ...] = self.phrases or tuple(entry.card.classes)

    @classmethod
    def from_entry(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                   phrases: Sequence[str] | None = None) -> "Predictor":
        """Load the registry entry folder ``path`` (on ``device``, default GPU if any);
        ``phrases`` are used only by an entry that scores phrases (a sentence reader)."""
        entry = load_entry(path, device)
        return cls(entry, phrases if get_kind(entry.card.kind).scores_phrases else None)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def needs_crops(self) -> bool:
        """Whether clips must carry mouth crops (run the pipeline with ``crops=True``)."""
        return self._model_kind.uses_crops(self.entry.card.input)

    def model_batch(self, clip: ClipFeatures):
        """The model input of one clip as a batch of one, on the entry's device."""
        try:
            return self._model_kind.clip_input(clip, self.entry.card.input, self.entry.device)
        except ValueError as error:
            raise ValueError(f"entry {self.name} ({self.kind}): {error}") from error

    def probabilities(self, clip: ClipFeatures) -> np.ndarray:
        """(K,) float32 probabilities, in ``classes`` order."""
        device = self.entry.device
        amp = (torch.autocast(device_type="cuda", dtype=torch.float16)
               if device.type == "cuda" else nullcontext())
        with torch.inference_mode(), amp:
            _, probs = self._model_kind.score_clip(self.entry.model, self.model_batch(clip),
                                                   self.entry.card, self.phrases)
        return np.asarray(probs, np.float32)

    def predict(self, clip: ClipFeatures) -> Prediction:
        """The most likely phrase of ``clip`` with its top three; ``ValueError`` without a face."""
        started = time.perf_counter()
        probs = self.probabilities(clip)
        order = np.argsort(-probs, kind="stable")[:TOP_K]
        top = tuple((self.classes[i], float(probs[i])) for i in order)
        return Prediction(top[0][0], top[0][1], top, self.kind, self.name,
                          1000.0 * (time.perf_counter() - started),
                          tuple(float(p) for p in probs))
