"""Pure functions over one clip's arrays: resampling, normalisation statistics, augmentation.

Augmentations work on a raw (C, L) sequence with a NumPy generator, before
standardisation: mirroring negates x coordinates, which is only a reflection
in the unnormalised face frame. Nothing here reads files, so the live path
imports it without the training data stack (pandas).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch.nn import functional as F

from features.cache import ClipFeatures
from features.frame_features import FEATURE_GROUPS, FEATURE_NAMES
from features.geometry import LIP_POINT_NAMES
from features.mouth_image import appearance_names, mouth_appearance
from features.sequence import SequenceConfig, sequence_transform
from features.topology import LIP_MIRROR_ORDER
from training.config import AugmentConfig

# Channels that barely vary (a teeth ratio always 0) would divide by ~0.
MIN_STD = 1e-4


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


def face_span(mask: np.ndarray) -> slice:
    """First to last frame with a face: leading and trailing misses carry no lip motion."""
    found = np.flatnonzero(mask)
    return slice(int(found[0]), int(found[-1]) + 1)


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


def item_rng() -> np.random.Generator:
    """A NumPy generator for one dataset item's augmentation.

    Drawn from torch's generator: seeded per epoch by the engine and distinct in
    every DataLoader worker, where a stored NumPy generator would repeat.
    """
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))


def rest_statistics(features: np.ndarray, names: tuple[str, ...], quantile: float = 0.25,
                    opening: str = "inner_mar") -> tuple[np.ndarray, np.ndarray]:
    """(level (C,), spread (C,)) of one clip's (T, C) features, to express them relative to
    the speaker's own rest: ``level`` is the mean of the frames whose ``opening`` channel
    lies in its lowest ``quantile`` (lips closed or at rest), 0 for velocity channels;
    ``spread`` the clip's per-channel deviation, floored at :data:`MIN_STD`.
    """
    features = np.asarray(features, np.float32)
    if opening in names:
        column = features[:, names.index(opening)]
        rest = column <= np.quantile(column, quantile)
    else:
        rest = np.ones(len(features), bool)
    level = features[rest].mean(axis=0)
    level[[i for i, n in enumerate(names) if n.startswith("d_")]] = 0.0
    return level, np.maximum(features.std(axis=0), MIN_STD)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) float frames -> (N, size, size): bilinear with antialiasing, skipped when
    they already have that size (crops sized ahead skip it)."""
    if frames.shape[1:] == (size, size):
        return frames
    return F.interpolate(frames[:, None], size=(size, size), mode="bilinear",
                         align_corners=False, antialias=True)[:, 0]


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) uint8 -> (T, size, size) uint8 with :func:`resize_frames` (a copy when
    already that size)."""
    if crops.shape[1:] == (size, size):
        return crops.copy()
    resized = resize_frames(torch.from_numpy(np.ascontiguousarray(crops)).float(), size)
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


class Standardises:
    """For frozen input specs with ``mean`` and ``std`` tuples (C,): standardise batches."""

    @cached_property
    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.mean, dtype=torch.float32)[:, None],
                torch.tensor(self.std, dtype=torch.float32)[:, None])

    def standardise(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, T) raw channels -> ``(x - mean) / std`` per channel, float32 on their device."""
        mean, std = (t.to(batch.device) for t in self._statistics)
        return (batch.float() - mean) / std


def mouth_crops(clip: ClipFeatures) -> np.ndarray:
    """A clip's (T, S, S) uint8 mouth crops; ``ValueError`` when it was read without them."""
    if clip.crops.shape[:1] != clip.valid.shape or clip.crops.size == 0:
        raise ValueError("the clip carries no mouth crops; extract it (or run the "
                         "FeaturePipeline) with crops=True")
    return clip.crops


def frame_channels(clip: ClipFeatures, *, max_gap: int, velocities: bool, appearance: int = 0,
                   leave_out: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A clip's per-frame channels, as the landmark kinds read them: (T, C) float32, the
    (T,) mask of frames with a face, and the C names.

    The clip's features but the groups named in ``leave_out`` (of
    :data:`features.frame_features.FEATURE_GROUPS`), then with ``appearance`` > 0 the
    mouth's appearance (:func:`features.mouth_image.mouth_appearance`, ``appearance`` x
    ``appearance`` coefficients, from the clip's crops); gaps of up to ``max_gap`` frames
    filled and velocities appended as :func:`features.sequence.sequence_transform` does.
    """
    features, names = clip.features, tuple(clip.names)
    if leave_out:
        dropped = set().union(*(FEATURE_GROUPS[group] for group in check_groups(leave_out)))
        keep = [i for i, name in enumerate(names) if name not in dropped]
        features, names = features[:, keep], tuple(names[i] for i in keep)
    if appearance:
        features = np.concatenate([features, mouth_appearance(mouth_crops(clip), appearance)],
                                  axis=1)
        names += appearance_names(appearance)
    return sequence_transform(features, clip.valid, names,
                              SequenceConfig(max_gap=max_gap, velocities=velocities))


def check_groups(leave_out: tuple[str, ...]) -> tuple[str, ...]:
    """``leave_out`` when every name is a feature group, else ``ValueError`` naming them."""
    unknown = [group for group in leave_out if group not in FEATURE_GROUPS]
    if unknown:
        raise ValueError(f"leave_out {unknown}: not a feature group; the groups are "
                         f"{', '.join(FEATURE_GROUPS)}")
    return tuple(leave_out)


def check_live_channels(trained: tuple[str, ...], example_names, where: str, kind: str) -> None:
    """Refuse an entry trained on other channels than ``example_names(blank clip)`` gives for
    this app's :data:`FEATURE_NAMES`, naming the first that differs and how to re-train.
    The blank clip carries small crops, so an entry that reads the mouth's appearance is
    checked on its appearance channels too."""
    blank = ClipFeatures(np.zeros((2, len(FEATURE_NAMES)), np.float32), np.ones(2, bool),
                         np.array([0, 40]), np.zeros((2, 8, 8), np.uint8), FEATURE_NAMES, 25.0)
    live = tuple(example_names(blank))
    if tuple(trained) == live:
        return
    first = next((f"channel {i}: entry has {a!r}, app has {b!r}"
                  for i, (a, b) in enumerate(zip(trained, live, strict=False)) if a != b),
                 f"entry has {len(trained)} channels, app has {len(live)}")
    raise ValueError(f"{where} was trained on other features than this app extracts "
                     f"({first}); re-train it on the current features: "
                     f"python -m training.run --model {kind} --videos DIR")
