"""Recognise one utterance with a registry entry, exactly as the entry was trained.

:class:`Predictor` wraps a :class:`training.registry.LoadedEntry`. Its input is
a :class:`features.cache.ClipFeatures` -- the very type the training data is
made of -- and it prepares it with the training functions themselves
(:func:`training.data.clip_sequence` / :func:`training.data.clip_crops`, the
card's normalisation, :func:`training.engine.model_input`), so a live
utterance and an offline clip of the same frames get the same probabilities.

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
from features.frame_features import FEATURE_NAMES, FrameFeatures
from recognizer.segmenter import Utterance
from training.data import apply_normalisation, clip_crops, clip_sequence
from training.engine import model_input
from training.evaluate import data_config_for
from training.registry import LoadedEntry, active_entry, list_entries, load_entry

TOP_K = 3


def find_entry(registry_root: str | os.PathLike, kind: str) -> Path | None:
    """The registry entry the app uses for ``kind``: the active one, else the newest, else None."""
    active = active_entry(registry_root, kind)
    if active is not None:
        return active
    entries = [e for e in list_entries(registry_root) if e.card["kind"] == kind]
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


def live_channel_names(data_config) -> tuple[str, ...]:
    """The channel names :func:`clip_sequence` gives for this app's :data:`FEATURE_NAMES`."""
    blank = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    clip = ClipFeatures(blank, np.ones(2, bool), np.array([0, 40]), np.zeros((2, 0, 0), np.uint8),
                        FEATURE_NAMES, 25.0)
    return clip_sequence(clip, data_config)[1]


def _check_feature_names(entry: LoadedEntry, data_config) -> None:
    trained = tuple(entry.card.get("feature_names") or ())
    live = live_channel_names(data_config)
    if trained == live:
        return
    first = next((f"channel {i}: entry has {a!r}, app has {b!r}"
                  for i, (a, b) in enumerate(zip(trained, live, strict=False)) if a != b),
                 f"entry has {len(trained)} channels, app has {len(live)}")
    raise ValueError(f"registry entry {entry.name} ({entry.path}) was trained on other features "
                     f"than this app extracts ({first}); re-train it on the current features: "
                     f"python -m training.run --model landmark_cnn --videos DIR")


class Predictor:
    """Phrase probabilities of one utterance clip from one loaded registry entry.

    Immutable once built, so a worker thread can use it while another thread
    builds the next one.
    """

    def __init__(self, entry: LoadedEntry):
        self.entry = entry
        self.kind: str = entry.card["kind"]
        self.classes: tuple[str, ...] = tuple(entry.card["classes"])
        self.data_config = data_config_for(entry.card)
        self._mean = self._std = None
        if self.kind == "landmark_cnn":
            _check_feature_names(entry, self.data_config)
            norm = entry.card.get("normalisation") or {}
            if "mean" not in norm or "std" not in norm:
                raise ValueError(f"registry entry {entry.name} ({entry.path}): card has no "
                                 "normalisation mean/std; re-train it")
            self._mean = np.asarray(norm["mean"], np.float32)
            self._std = np.asarray(norm["std"], np.float32)

    @classmethod
    def from_entry(cls, path: str | os.PathLike, device: str | torch.device | None = None
                   ) -> "Predictor":
        """Load the registry entry folder ``path`` (on ``device``, default GPU if any)."""
        return cls(load_entry(path, device))

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def needs_crops(self) -> bool:
        """Whether clips must carry mouth crops (run the pipeline with ``crops=True``)."""
        return self.kind == "r2plus1d"

    def model_batch(self, clip: ClipFeatures) -> torch.Tensor:
        """The model input of one clip as a batch of one, on the entry's device."""
        if self.kind == "landmark_cnn":
            sequence, _ = clip_sequence(clip, self.data_config)
            batch = torch.from_numpy(apply_normalisation(sequence, self._mean, self._std)[None])
        else:
            if clip.crops.shape[:1] != clip.valid.shape or clip.crops.size == 0:
                raise ValueError(f"entry {self.name} ({self.kind}) needs mouth crops; "
                                 "run the FeaturePipeline with crops=True")
            batch = torch.from_numpy(np.ascontiguousarray(clip_crops(clip, self.data_config)[None]))
        return model_input(self.kind, batch, self.entry.device)

    def probabilities(self, clip: ClipFeatures) -> np.ndarray:
        """(K,) float32 class probabilities, in ``classes`` order."""
        device = self.entry.device
        amp = (torch.autocast(device_type="cuda", dtype=torch.float16)
               if device.type == "cuda" else nullcontext())
        with torch.inference_mode(), amp:
            logits = self.entry.model(self.model_batch(clip))
            return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()

    def predict(self, clip: ClipFeatures) -> Prediction:
        """The most likely phrase of ``clip`` with its top three; ``ValueError`` without a face."""
        started = time.perf_counter()
        probs = self.probabilities(clip)
        order = np.argsort(-probs, kind="stable")[:TOP_K]
        top = tuple((self.classes[i], float(probs[i])) for i in order)
        return Prediction(top[0][0], top[0][1], top, self.kind, self.name,
                          1000.0 * (time.perf_counter() - started),
                          tuple(float(p) for p in probs))
