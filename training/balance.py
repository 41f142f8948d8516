"""Class balancing: weights, a weighted sampler, duplication from one group, focal loss.

    python -m training.balance analyze [--videos DIR]

prints the class and group (gender, age band, speaker) distribution of a clip
folder, without training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import WeightedRandomSampler

from training.config import ROOT, DataConfig
from training.splits import UNKNOWN, group_mask

WEIGHT_MODES = ("none", "inverse", "inverse_sqrt")


def class_weights(labels: np.ndarray, num_classes: int, mode: str = "inverse") -> np.ndarray:
    """(K,) float64 weight per class from integer ``labels`` (N,).

    ``inverse``: 1 / count; ``inverse_sqrt``: 1 / sqrt(count); ``none``: 1.
    Normalised so the mean weight over the N samples is 1, which keeps a
    weighted loss on the scale of the unweighted one. Raises ``ValueError``
    naming the class index when a class has no sample.
    """
    if mode not in WEIGHT_MODES:
        raise ValueError(f"balance mode {mode!r}: choose one of {WEIGHT_MODES}")
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if len(counts) > num_classes:
        raise ValueError(f"label {labels.max()} out of range for {num_classes} classes")
    if mode == "none":
        return np.ones(num_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(f"classes {empty.tolist()} have no sample; cannot weight by inverse count")
    weights = 1.0 / counts if mode == "inverse" else 1.0 / np.sqrt(counts)
    return weights * len(labels) / float(weights @ counts)


def sample_weights(labels: np.ndarray, mode: str = "inverse",
                   num_classes: int | None = None) -> np.ndarray:
    """(N,) float64 weight per sample for a :class:`WeightedRandomSampler`.

    With ``inverse`` every class is drawn equally often in expectation; with
    ``inverse_sqrt`` in proportion to the square root of its count.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    return class_weights(labels, k, mode)[labels]


def make_sampler(labels: np.ndarray, mode: str, num_classes: int | None = None,
                 generator: torch.Generator | None = None) -> WeightedRandomSampler | None:
    """A sampler drawing ``len(labels)`` samples with replacement; ``None`` for mode ``none``."""
    if mode == "none":
        return None
    weights = torch.as_tensor(sample_weights(labels, mode, num_classes), dtype=torch.double)
    return WeightedRandomSampler(weights, len(labels), replacement=True, generator=generator)


def duplicate_from_group(rows: pd.DataFrame, group_spec: str, seed: int = 0) -> np.ndarray:
    """Row positions of a class-balanced training set, duplicating one group's clips.

    Promise: every class ends with exactly as many rows as the largest class
    in ``rows`` (use the training rows only); each original row appears once;
    the extra rows are repeats of clips of that class matching ``group_spec``
    (e.g. ``"gender=male,age_band=18-39"``), used as evenly as possible (no
    clip repeated twice before every other group clip once), in a seeded
    random order. No clip outside the group is duplicated. Raises
    ``ValueError`` naming the class when an under-represented class has no
    clip in the group.
    """
    rows = rows.reset_index(drop=True)
    in_group = group_mask(rows, group_spec)
    labels = rows["label"].to_numpy()
    counts = pd.Series(labels).value_counts()
    target = int(counts.max())
    rng = np.random.default_rng(seed)
    extra = []
    for label in sorted(counts.index):
        missing = target - int(counts[label])
        if missing == 0:
            continue
        donors = np.flatnonzero((labels == label) & in_group)
        if len(donors) == 0:
            raise ValueError(f"balance_source {group_spec!r}: class {label!r} needs {missing} more "
                             f"clip(s) but has no clip in that group; record some or choose "
                             f"another group")
        rounds = -(-missing // len(donors))
        picks = np.concatenate([rng.permutation(donors) for _ in range(rounds)])
        extra.append(picks[:missing])
    return np.concatenate([np.arange(len(rows))] + extra).astype(np.int64)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    Down-weights examples the model already gets right, so rare or hard
    classes dominate the gradient. ``weight`` (K,) and ``label_smoothing``
    act as in :func:`torch.nn.functional.cross_entropy`, and the mean is
    taken the same way, so ``gamma=0`` gives exactly cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 label_smoothing: float = 0.0):
        super().__init__()
        if gamma < 0 or not 0 <= label_smoothing < 1:
            raise ValueError(f"focal loss needs gamma >= 0 and 0 <= label_smoothing < 1, "
                             f"got {gamma} and {label_smoothing}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        weight = self.weight if self.weight is not None else log_probs.new_ones(logits.shape[1])
        true_log_prob = log_probs.gather(1, target[:, None]).squeeze(1)
        nll = -weight[target] * true_log_prob
        smooth = -(log_probs * weight).sum(1) / logits.shape[1]
        eps = self.label_smoothing
        per_sample = (1 - eps) * nll + eps * smooth
        focus = (1 - true_log_prob.exp()).clamp_min(0) ** self.gamma
        return (focus * per_sample).sum() / weight[target].sum()


def _table(series: pd.Series, name: str) -> str:
    counts = series.fillna(UNKNOWN).astype(str).value_counts().sort_index()
    share = 100.0 * counts / max(int(counts.sum()), 1)
    table = pd.DataFrame({"clips": counts, "share %": share.round(1)})
    table.index.name = name
    return table.to_string()


def describe_manifest(manifest: pd.DataFrame) -> str:
    """Readable tables: clips per class, per gender / age band / speaker, and class x gender."""
    from features.dataset import transcript_counts

    counts = transcript_counts(manifest["text"])
    parts = [f"{len(manifest)} clips, {manifest['label'].nunique()} classes; "
             f"{counts['sentences']} sentences, {counts['words']} words "
             f"({counts['vocabulary']} distinct)",
             _table(manifest["label"], "class")]
    for column in ("gender", "age_band", "speaker"):
        parts.append(_table(manifest[column], column))
    cross = pd.crosstab(manifest["label"], manifest["gender"].fillna(UNKNOWN))
    parts.append("clips per class and gender\n" + cross.to_string())
    return "\n\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.balance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="class and group distribution of a clip folder")
    analyze.add_argument("--videos", type=Path, default=ROOT / DataConfig().videos,
                         help="clip folder videos/<label>/ (default: the project's videos/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from features.dataset import build_manifest

    args = parse_args(argv)
    if not args.videos.is_dir():
        print(f"error: {args.videos}: no such clip folder", file=sys.stderr)
        return 2
    manifest = build_manifest(args.videos)
    if len(manifest) == 0:
        print(f"{args.videos}: no clips found (expected videos/<label>/<clip>.mp4)")
        return 1
    print(describe_manifest(manifest))
    for path, reason in manifest.attrs.get("problems", []):
        print(f"  skipped {path}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
