"""``landmark_cnn``: a 1-D temporal CNN over the per-frame lip features.

A clip becomes a (C, L) float32 sequence: short face gaps filled, velocities
appended, the frames between the first and last face resampled to L, and a
constant ``duration_s`` channel that keeps the utterance's length. The model
sees it standardised per channel with the training clips' statistics, which
the card stores with the channel names.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from features.cache import ClipFeatures
from training.kinds.classifier import ClassifierKind
from training.transforms import (Standardises, augment_sequence, check_live_channels, face_span,
                                 fit_normalisation, frame_channels, item_rng, mirror_plan,
                                 check_groups, resample_linear, rest_statistics)

CURVE_CHANNELS = ("inner_mar", "mouth_width", "jawOpen", "inner_area")


@dataclass(frozen=True)
class LandmarkCNNConfig:
    """Temporal CNN over per-frame feature channels.

    ``length``: the fixed number of resampled frames T the model is fed;
    ``width``: channels of every conv block; ``depth``: residual blocks, the
    i-th dilated by 2**i so the receptive field covers the whole clip.
    """

    in_channels: int
    num_classes: int
    length: int = 32
    width: int = 64
    depth: int = 3
    kernel_size: int = 5
    dropout: float = 0.3


class _ResidualBlock(nn.Module):
    """Conv1d-BN-ReLU twice with a skip connection; keeps (N, W, T)."""

    def __init__(self, width: int, kernel_size: int, dilation: int):
        super().__init__()
        pad = dilation * (kernel_size // 2)
        self.body = nn.Sequential(
            nn.Conv1d(width, width, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel_size, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class LandmarkCNN(nn.Module):
    """(N, C, T) feature sequences -> (N, num_classes) logits."""

    def __init__(self, config: LandmarkCNNConfig):
        super().__init__()
        if config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {config.kernel_size}")
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv1d(config.in_channels, config.width, config.kernel_size,
                      padding=config.kernel_size // 2, bias=False),
            nn.BatchNorm1d(config.width), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(
            _ResidualBlock(config.width, config.kernel_size, 2 ** i)
            for i in range(config.depth)))
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.width, config.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T) -> (N, width) penultimate features (time-averaged)."""
        expected = (self.config.in_channels, self.config.length)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"landmark_cnn expects input (N, C, T) = (N, {expected[0]}, "
                             f"{expected[1]}), got {tuple(x.shape)}")
        return self.blocks(self.stem(x)).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


@dataclass(frozen=True)
class LandmarkInput(Standardises):
    """What a landmark sequence model is fed (the card's ``input``).

    ``sequence_length``: frames each clip is resampled to; ``velocities``:
    first differences appended; ``max_gap``: face gaps up to this many
    frames interpolated; ``feature_names``: the C channels in order;
    ``mean`` / ``std``: (C,) training statistics each channel is standardised with;
    ``relative``: ``none``, or ``clip`` (each channel relative to the clip's own rest
    first, :func:`training.transforms.rest_statistics`); ``appearance``: k > 0 adds the
    mouth's appearance, k x k DCT coefficients of its crop a frame
    (:func:`training.transforms.frame_channels`); ``leave_out``: the feature groups left
    out; ``temperature``: the logits' calibration on held-apart clips
    (:func:`training.kinds.classifier.fit_temperature`), 1 in cards from before it.
    """

    sequence_length: int
    velocities: bool
    max_gap: int
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    relative: str = "none"
    appearance: int = 0
    temperature: float = 1.0
    leave_out: tuple[str, ...] = ()


def clip_sequence(clip: ClipFeatures, spec: LandmarkInput) -> tuple[np.ndarray, tuple[str, ...]]:
    """One clip as a (C, sequence_length) float32 sequence and its C channel names.

    Short gaps are filled (``features.sequence``), velocities appended when
    ``spec.velocities``, frames before the first and after the last face
    dropped, and the rest linearly resampled to ``spec.sequence_length``.
    Resampling hides how long the utterance took, so a constant last channel
    ``duration_s`` keeps it.
    """
    matrix, mask, names = frame_channels(clip, max_gap=spec.max_gap, velocities=spec.velocities,
                                         appearance=spec.appearance, leave_out=spec.leave_out)
    span = face_span(mask)
    frames = matrix[span]
    if spec.relative == "clip":
        level, spread = rest_statistics(frames, names)
        frames = (frames - level) / spread
    sequence = resample_linear(frames, spec.sequence_length).T
    duration = np.full((1, spec.sequence_length), (span.stop - span.start) / clip.fps, np.float32)
    return np.concatenate([sequence, duration]), names + ("duration_s",)


class LandmarkDataset(Dataset):
    """(C, L) float32 raw sequences and int64 labels, augmented when ``augment`` is given.

    Noise is scaled by each channel's ``std``, so ``augment.noise`` is in standard deviations.
    """

    def __init__(self, sequences: np.ndarray, labels: np.ndarray, spec: LandmarkInput,
                 augment=None):
        self.sequences, self.labels = sequences, np.asarray(labels, dtype=np.int64)
        self.std, self.augment = np.asarray(spec.std, np.float32), augment
        self.plan = mirror_plan(tuple(spec.feature_names))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sequence = self.sequences[index]
        if self.augment is not None:
            sequence = augment_sequence(sequence, item_rng(), self.augment, self.plan, self.std)
        return torch.from_numpy(np.ascontiguousarray(sequence, np.float32)), torch.tensor(self.labels[index])


class LandmarkSequenceKind(ClassifierKind):
    """The parts every classifier over resampled landmark sequences shares: input, dataset,
    checks, reports."""

    input_spec = LandmarkInput

    def spec_from(self, data) -> LandmarkInput:
        return LandmarkInput(data.sequence_length, data.velocities, max_gap=3,
                             feature_names=(), mean=(), std=(), relative=data.relative,
                             appearance=data.appearance, leave_out=check_groups(data.leave_out))

    def uses_crops(self, spec: LandmarkInput) -> bool:
        return spec.appearance > 0

    def example(self, clip: ClipFeatures, spec: LandmarkInput) -> tuple[np.ndarray, tuple[str, ...]]:
        if not clip.valid.any():
            raise ValueError("no frame with a face")
        return clip_sequence(clip, spec)

    def fit_spec(self, spec: LandmarkInput, clips, index) -> LandmarkInput:
        mean, std = fit_normalisation(clips.examples[index])
        return replace(spec, feature_names=tuple(clips.names), mean=tuple(mean.tolist()),
                       std=tuple(std.tolist()))

    def check_spec(self, spec: LandmarkInput, where: str) -> None:
        if not (len(spec.feature_names) == len(spec.mean) == len(spec.std)):
            raise ValueError(f"{where}: its card has {len(spec.feature_names)} feature names but "
                             f"{len(spec.mean)} means and {len(spec.std)} deviations; re-train it")
        check_live_channels(spec.feature_names, lambda clip: clip_sequence(clip, spec)[1],
                            where, self.name)

    def dataset(self, examples, labels, spec, augment=None) -> Dataset:
        return LandmarkDataset(examples, labels, spec, augment)

    def model_input(self, batch: torch.Tensor, spec: LandmarkInput, device) -> torch.Tensor:
        return spec.standardise(batch.to(device, non_blocking=True))

    def class_curves(self, examples, names):
        shown = [n for n in CURVE_CHANNELS if n in names]
        return examples[:, [names.index(n) for n in shown]], shown

    def preview_frames(self, example, names):
        lips = [j for j, n in enumerate(names) if n.startswith("lip") and n.endswith("_x")]
        x, y = example[lips], example[[j + 1 for j in lips]]
        return np.stack([_draw_points(x[:, t], y[:, t]) for t in range(x.shape[1])])


def _draw_points(x: np.ndarray, y: np.ndarray, size: int = 64) -> np.ndarray:
    """The lip points of one time step as a small (size, size) image."""
    image = np.zeros((size, size), np.uint8)
    cols = np.clip(np.round(size / 2 + x * size * 1.2), 0, size - 1).astype(int)
    rows = np.clip(np.round(size / 2 + y * size * 1.2), 0, size - 1).astype(int)
    image[rows, cols] = 255
    return image


class LandmarkCNNKind(LandmarkSequenceKind):
    name = "landmark_cnn"
    label = "Landmark 1D-CNN"
    arch_config = LandmarkCNNConfig

    def build_model(self, config: LandmarkCNNConfig) -> nn.Module:
        return LandmarkCNN(config)

    def train_arch_args(self, config, clips) -> dict:
        return {"in_channels": len(clips.names), "length": config.data.sequence_length,
                "num_classes": len(clips.classes), **config.arch}


KIND = LandmarkCNNKind()
