"""Feature sequences over time: stacking frames, filling gaps, velocities.

Pure functions over arrays. A clip's features are a (T, F) float32 matrix with
a (T,) boolean ``valid`` vector (a face was found in that frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequenceConfig:
    """How per-frame rows become a model input sequence.

    ``max_gap``: runs of at most this many frames without a face are linearly
    interpolated; longer runs stay masked. ``velocities`` appends first
    differences of every channel, named ``d_<name>``.
    """

    max_gap: int = 3
    velocities: bool = False


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def fill_gaps(matrix: np.ndarray, valid: np.ndarray, max_gap: int = 3
              ) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate short gaps of a (T, F) matrix; returns (matrix, mask).

    A gap of at most ``max_gap`` invalid frames with valid frames on both
    sides is filled by linear interpolation and becomes valid. Other invalid
    frames are set to 0 and stay False in the returned (T,) mask.
    """
    matrix = np.array(matrix, dtype=np.float32, copy=True)
    mask = np.asarray(valid, dtype=bool).copy()
    for start, stop in _runs(~mask):
        if start > 0 and stop < len(mask) and stop - start <= max_gap:
            before, after = matrix[start - 1], matrix[stop]
            weights = (np.arange(start, stop) - (start - 1)) / (stop - start + 1)
            matrix[start:stop] = before + weights[:, None] * (after - before)
            mask[start:stop] = True
    matrix[~mask] = 0.0
    return matrix, mask


def velocities(matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """First differences along time, (T, F); 0 at the first frame and across masked frames."""
    diff = np.zeros_like(matrix)
    diff[1:] = matrix[1:] - matrix[:-1]
    both = np.zeros(len(mask), dtype=bool)
    both[1:] = mask[1:] & mask[:-1]
    diff[~both] = 0.0
    return diff


def sequence_transform(matrix: np.ndarray, valid: np.ndarray, names: tuple[str, ...],
                       config: SequenceConfig = SequenceConfig()
                       ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Gap-filled (and optionally velocity-augmented) sequence: (matrix, mask, names)."""
    matrix, mask = fill_gaps(matrix, valid, config.max_gap)
    if config.velocities:
        matrix = np.concatenate([matrix, velocities(matrix, mask)], axis=1)
        names = tuple(names) + tuple(f"d_{n}" for n in names)
    return matrix, mask, tuple(names)
