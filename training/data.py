"""From the clip folder's manifest to model inputs, normalisation and augmentation.

:func:`load_dataset` fills the feature cache and turns each clip into one
fixed-size example: a (C, L) float32 landmark sequence (``landmark_cnn``) or a
(crop_frames, S, S) uint8 mouth-crop stack (``r2plus1d``). Only the chosen
kind is kept in memory. :func:`clip_sequence` is the same transform for one
clip, so live prediction feeds the model exactly what training did.

Augmentations are pure functions on a raw (C, L) sequence with a NumPy
generator, applied before normalisation: mirroring negates x coordinates,
which is only a reflection in the unnormalised face frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from features.cache import ClipFeatures, FeatureCache, extractor_key
from features.extract import extract_many
from features.frame_features import FeatureConfig
from features.geometry import LIP_POINT_NAMES
from features.sequence import SequenceConfig, sequence_transform
from features.topology import LIP_MIRROR_ORDER
from training.config import KINDS, AugmentConfig, DataConfig
from training.models import resize_frames

# Channels that barely vary (a teeth ratio always 0) would divide by ~0.
MIN_STD = 1e-4


@dataclass(frozen=True)
class ClipSet:
    """The usable clips of a manifest as arrays, row-aligned with ``rows``.

    ``labels``: (N,) int64 indices into ``classes`` (sorted label names);
    ``sequences``: (N, C, L) float32 named by ``names`` (``landmark_cnn``) or
    ``None``; ``crops``: (N, crop_frames, S, S) uint8 (``r2plus1d``) or
    ``None``; ``rows``: the manifest rows kept, index 0..N-1; ``failed``:
    video path -> reason for every clip dropped.
    """

    kind: str
    rows: pd.DataFrame
    labels: np.ndarray
    classes: tuple[str, ...]
    sequences: np.ndarray | None = None
    names: tuple[str, ...] = ()
    crops: np.ndarray | None = None
    failed: dict[str, str] = field(default_factory=dict)


def resample_linear(matrix: np.ndarray, length: int) -> np.ndarray:
    """(T, C) -> (length, C) float32 by linear interpolation over evenly spaced times."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if len(matrix) == 1:
        return np.repeat(matrix, length, axis=0)
    times = np.linspace(0.0, len(matrix) - 1, length)
    return _resample_at(matrix.T, times, np.arange(len(matrix))).T.copy()


def resample_nearest(frames: np.ndarray, length: int) -> np.ndarray:
    """(T, ...) -> (length, ...): the nearest frame at evenly spaced times (repeats when T < length)."""
    index = np.round(np.linspace(0, len(frames) - 1, length)).astype(np.int64)
    return frames[index]


def _face_span(mask: np.ndarray) -> slice:
    """First to last frame with a face: leading and trailing misses carry no lip motion."""
    found = np.flatnonzero(mask)
    return slice(int(found[0]), int(found[-1]) + 1)


def clip_sequence(clip: ClipFeatures, config: DataConfig) -> tuple[np.ndarray, tuple[str, ...]]:
    """One clip as a (C, sequence_length) float32 sequence and its C channel names.

    Short gaps are filled (``features.sequence``), velocities appended when
    ``config.velocities``, frames before the first and after the last face
    dropped, and the rest linearly resampled to ``config.sequence_length``.
    Resampling hides how long the utterance took, so a constant last channel
    ``duration_s`` keeps it.
    """
    if not clip.valid.any():
        raise ValueError("no frame with a face")
    matrix, mask, names = sequence_transform(
        clip.features, clip.valid, clip.names, SequenceConfig(velocities=config.velocities))
    span = _face_span(mask)
    sequence = resample_linear(matrix[span], config.sequence_length).T
    duration = np.full((1, config.sequence_length), (span.stop - span.start) / clip.fps, np.float32)
    return np.concatenate([sequence, duration]), names + ("duration_s",)


def clip_crops(clip: ClipFeatures, config: DataConfig) -> np.ndarray:
    """One clip's mouth crops between its first and last face, resampled to
    (crop_frames, crop_size, crop_size) uint8."""
    if not clip.valid.any():
        raise ValueError("no frame with a face")
    return resize_crops(resample_nearest(clip.crops[_face_span(clip.valid)], config.crop_frames),
                        config.crop_size)


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) uint8 -> (T, size, size) uint8 with :func:`training.models.resize_frames`
    (a copy when already that size)."""
    if crops.shape[1:] == (size, size):
        return crops.copy()
    resized = resize_frames(torch.from_numpy(np.ascontiguousarray(crops)).float(), size)
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


def _fill_cache(paths: list, cache: FeatureCache, data_config: DataConfig,
                feature_config: FeatureConfig, on_progress) -> dict[str, str]:
    if extractor_key(feature_config) != cache.extractor:
        raise ValueError(f"feature cache {cache.root} was opened with another FeatureConfig than "
                         f"the one given; pass the same config to both")
    summary = extract_many([Path(p) for p in paths], cache, feature_config,
                           data_config.workers, on_progress)
    return {str(path): reason for path, reason in summary.failed.items()}


def load_dataset(manifest: pd.DataFrame, cache: FeatureCache, data_config: DataConfig,
                 kind: str = "landmark_cnn",
                 on_progress: Callable[[object, str | None], None] | None = None,
                 feature_config: FeatureConfig = FeatureConfig()) -> ClipSet:
    """Extract (or read from ``cache``) every manifest clip and build a :class:`ClipSet`.

    A clip that cannot be read, has no face or gives no example is dropped
    and named in ``failed``; the rest go on. ``on_progress(path, error)``
    follows :func:`features.extract.extract_many`. Raises ``ValueError``
    when no clip is usable.
    """
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r}: choose one of {KINDS}")
    failed = _fill_cache(list(manifest["path"]), cache, data_config, feature_config, on_progress)
    keep, examples, names = [], [], ()
    for position, path in enumerate(manifest["path"]):
        path = str(Path(path))
        if path in failed:
            continue
        try:
            clip = cache.load(path, crops=kind == "r2plus1d")
            if clip is None:
                raise ValueError("missing from the feature cache after extraction")
            if kind == "r2plus1d":
                example = clip_crops(clip, data_config)
            else:
                example, clip_names = clip_sequence(clip, data_config)
                if names and clip_names != names:
                    raise ValueError("feature names differ from the other clips' (stale cache?)")
                names = clip_names
        except (ValueError, OSError, KeyError) as error:
            failed[path] = f"{path}: {error}"
            continue
        keep.append(position)
        examples.append(example)
    return _clip_set(manifest, kind, keep, examples, names, failed)


def _clip_set(manifest: pd.DataFrame, kind: str, keep: list[int], examples: list[np.ndarray],
              names: tuple[str, ...], failed: dict[str, str]) -> ClipSet:
    if not keep:
        raise ValueError(f"none of the {len(manifest)} clips is usable; first problems: "
                         f"{list(failed.values())[:3]}")
    rows = manifest.iloc[keep].reset_index(drop=True)
    classes = tuple(sorted(set(rows["label"])))
    labels = np.array([classes.index(label) for label in rows["label"]], dtype=np.int64)
    stacked = np.stack(examples)
    if kind == "landmark_cnn":
        return ClipSet(kind, rows, labels, classes, sequences=stacked, names=names, failed=failed)
    return ClipSet(kind, rows, labels, classes, crops=stacked, failed=failed)


def fit_normalisation(sequences: np.ndarray, min_std: float = MIN_STD
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean (C,), std (C,)) float32 over N and L of (N, C, L) training sequences.

    ``std`` is floored at ``min_std`` so a constant channel maps to 0, not inf/NaN.
    """
    sequences = np.asarray(sequences, dtype=np.float64)
    if sequences.ndim != 3 or len(sequences) == 0:
        raise ValueError(f"expected (N, C, L) training sequences, got shape {sequences.shape}")
    if not np.isfinite(sequences).all():
        raise ValueError("training sequences hold NaN or inf; check the feature cache")
    mean = sequences.mean(axis=(0, 2))
    std = np.maximum(sequences.std(axis=(0, 2)), min_std)
    return mean.astype(np.float32), std.astype(np.float32)


def apply_normalisation(sequences: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel of a (C, L) or (N, C, L) array, float32."""
    return ((np.asarray(sequences, np.float32) - mean[:, None]) / std[:, None]).astype(np.float32)


def mirror_plan(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(source (C,), sign (C,)) so that ``x[source] * sign[:, None]`` mirrors a sequence.

    A face seen in a mirror: each lip point takes its left/right partner's
    place (:data:`LIP_MIRROR_ORDER`) with x negated, in the face-normalised
    frame; ``...Left`` and ``...Right`` blendshapes swap; velocity channels
    ``d_<name>`` follow their channel. Symmetric channels stay as they are.
    """
    position = {name: i for i, name in enumerate(names)}
    partner = {}
    for k, name in enumerate(LIP_POINT_NAMES):
        partner[name] = LIP_POINT_NAMES[2 * LIP_MIRROR_ORDER[k // 2] + k % 2]
    source, sign = np.arange(len(names)), np.ones(len(names), dtype=np.float32)
    for i, name in enumerate(names):
        prefix = "d_" if name.startswith("d_") else ""
        base = name[len(prefix):]
        other = partner.get(base) or _swap_side(base)
        if other is not None and prefix + other in position:
            source[i] = position[prefix + other]
        if base in partner and base.endswith("_x"):
            sign[i] = -1.0
    return source, sign


def _swap_side(name: str) -> str | None:
    if "Left" in name:
        return name.replace("Left", "Right")
    if "Right" in name:
        return name.replace("Right", "Left")
    return None


def mirror(sequence: np.ndarray, plan: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The (C, L) sequence of the mirrored face, using a :func:`mirror_plan`."""
    source, sign = plan
    return sequence[source] * sign[:, None]


def _resample_at(sequence: np.ndarray, times: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(C, L) values at fractional frame ``times`` from the frames ``known`` (sorted indices).

    Linear interpolation like ``np.interp`` (clamped at the ends), done for
    all channels at once: it runs for every training example of every epoch.
    """
    times = np.clip(times, known[0], known[-1])
    right = np.clip(np.searchsorted(known, times, side="right"), 1, len(known) - 1)
    left = right - 1
    span = np.maximum(known[right] - known[left], 1e-9)
    weight = ((times - known[left]) / span).astype(np.float32)
    values = sequence[:, known]
    return (values[:, left] * (1 - weight) + values[:, right] * weight).astype(np.float32)


def time_warp(sequence: np.ndarray, rng: np.random.Generator, strength: float,
              knots: int = 4) -> np.ndarray:
    """Resample (C, L) along a random monotonic time map with fixed ends.

    The clip is cut into ``knots`` pieces whose speeds are ``exp(N(0, strength))``:
    some syllables faster, some slower, order and length kept.
    """
    length = sequence.shape[1]
    speeds = np.exp(rng.normal(0.0, strength, knots))
    edges = np.concatenate([[0.0], np.cumsum(speeds)]) / speeds.sum() * (length - 1)
    times = np.interp(np.arange(length), np.linspace(0, length - 1, knots + 1), edges)
    return _resample_at(sequence, times, np.arange(length))


def drop_frames(sequence: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Forget about ``fraction`` of the inner frames of (C, L) and re-interpolate them (missed detections)."""
    length = sequence.shape[1]
    count = min(int(rng.binomial(length - 2, fraction)), length - 2) if length > 2 else 0
    if count == 0:
        return sequence.copy()
    dropped = rng.choice(np.arange(1, length - 1), size=count, replace=False)
    known = np.setdiff1d(np.arange(length), dropped)
    return _resample_at(sequence, np.arange(length, dtype=np.float64), known)


def add_noise(sequence: np.ndarray, rng: np.random.Generator, sigma: float,
              scale: np.ndarray | None = None) -> np.ndarray:
    """(C, L) plus Gaussian noise of ``sigma`` times the channel's ``scale`` (C,) (default 1)."""
    scale = np.ones(len(sequence), np.float32) if scale is None else np.asarray(scale, np.float32)
    return (sequence + rng.normal(0.0, sigma, sequence.shape) * scale[:, None]).astype(np.float32)


def augment_sequence(sequence: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
                     plan: tuple[np.ndarray, np.ndarray], scale: np.ndarray | None = None
                     ) -> np.ndarray:
    """Mirror (probability ``config.mirror``), time warp, frame drop, then noise."""
    if rng.random() < config.mirror:
        sequence = mirror(sequence, plan)
    if config.time_warp > 0:
        sequence = time_warp(sequence, rng, config.time_warp)
    if config.frame_drop > 0:
        sequence = drop_frames(sequence, rng, config.frame_drop)
    if config.noise > 0:
        sequence = add_noise(sequence, rng, config.noise, scale)
    return sequence


def _item_rng() -> np.random.Generator:
    # From torch's generator: seeded per epoch by the engine and distinct in
    # every DataLoader worker, where a stored NumPy generator would repeat.
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))


class LandmarkDataset(Dataset):
    """(C, L) float32 normalised sequences and int64 labels, augmented when ``augment`` is given.

    Noise is scaled by each channel's ``std``, so ``augment.noise`` is in standard deviations.
    """

    def __init__(self, sequences: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                 mean: np.ndarray, std: np.ndarray, augment: AugmentConfig | None = None):
        self.sequences, self.labels = sequences, np.asarray(labels, dtype=np.int64)
        self.mean, self.std, self.augment = mean, std, augment
        self.plan = mirror_plan(tuple(names))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sequence = self.sequences[index]
        if self.augment is not None:
            sequence = augment_sequence(sequence, _item_rng(), self.augment, self.plan, self.std)
        normalised = apply_normalisation(sequence, self.mean, self.std)
        return torch.from_numpy(normalised), torch.tensor(self.labels[index])


class CropDataset(Dataset):
    """(T, S, S) uint8 mouth crops and int64 labels; ``flip`` mirrors a crop with that probability.

    The model side turns a batch into its input with :func:`training.models.crops_to_clip`.
    """

    def __init__(self, crops: np.ndarray, labels: np.ndarray, flip: float = 0.0):
        self.crops, self.labels, self.flip = crops, np.asarray(labels, dtype=np.int64), flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops = self.crops[index]
        if self.flip > 0 and _item_rng().random() < self.flip:
            crops = crops[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crops)), torch.tensor(self.labels[index])
