"""The model kinds: a 1-D temporal CNN over landmark features and R(2+1)D-18.

Every kind is rebuilt from its name and a dict of arguments (the registry
card's ``kind`` and ``arch_args``) through :func:`build_model`; no kind loads
or downloads weights when built. Inputs, without the batch axis:

- ``landmark_cnn``: (N, C, T) float32, C feature channels over T resampled frames.
- ``r2plus1d``: (N, 3, T, S, S) float32 from :func:`crops_to_clip`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F
from torchvision.models.video import VideoResNet, r2plus1d_18

# Kinetics-400 statistics torchvision's R(2+1)D-18 weights were trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
R2PLUS1D_URL_HINT = "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth"


def default_device() -> torch.device:
    """``cuda`` when a GPU is usable, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
class R2Plus1DConfig:
    """torchvision's R(2+1)D-18 with ``fc`` sized for ``num_classes``.

    ``frames`` and ``size`` do not change the network; they record the clip
    (N, 3, frames, size, size) it is trained and fed with.
    """

    num_classes: int
    frames: int = 24
    size: int = 112


def build_r2plus1d(config: R2Plus1DConfig) -> VideoResNet:
    """R(2+1)D-18 with random weights and a new ``fc``; never downloads."""
    model = r2plus1d_18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, config.num_classes)
    return model


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) float frames -> (N, size, size): bilinear with antialiasing, skipped when
    they already have that size (``training.data.clip_crops`` sizes crops ahead)."""
    if frames.shape[1:] == (size, size):
        return frames
    return F.interpolate(frames[:, None], size=(size, size), mode="bilinear",
                         align_corners=False, antialias=True)[:, 0]


def crops_to_clip(crops: np.ndarray | torch.Tensor, size: int = 112,
                  frames: int | None = None) -> torch.Tensor:
    """(N, T, H, W) uint8 grayscale crops -> (N, 3, T', size, size) float32.

    Frames are picked evenly to ``frames`` when given (else T' = T), resized
    bilinearly, repeated to 3 channels and normalised with Kinetics mean/std.
    Runs on the device the crops are on (move them to the GPU first to use it).
    """
    clip = torch.as_tensor(crops)
    if clip.ndim != 4 or clip.dtype != torch.uint8:
        raise ValueError(f"crops must be (N, T, H, W) uint8, got {tuple(clip.shape)} {clip.dtype}")
    if frames is not None:
        index = torch.linspace(0, clip.shape[1] - 1, frames, device=clip.device).round().long()
        clip = clip[:, index]
    n, t, h, w = clip.shape
    gray = resize_frames(clip.reshape(n * t, h, w).float() / 255.0, size).reshape(n, 1, t, size, size)
    mean = torch.tensor(KINETICS_MEAN, device=clip.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=clip.device).view(1, 3, 1, 1, 1)
    return ((gray - mean) / std).contiguous()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """CPU state dict from a ``.safetensors`` or ``torch.save`` file; pickled code is refused."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except Exception as error:
            raise ValueError(f"{path}: unreadable safetensors file: {error}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a plain weights file (refused by torch.load "
                         f"weights_only=True): {error}") from error
    for wrapper in ("model", "state_dict"):  # checkpoints that nest the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_pretrained(model: VideoResNet, path: str | Path) -> VideoResNet:
    """Load Kinetics-400 R(2+1)D-18 weights from a local file into ``model``.

    Every backbone tensor must match; ``fc`` is kept as built when its shape
    differs (400 Kinetics classes vs ours). Nothing is downloaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path} (download "
                                f"{R2PLUS1D_URL_HINT} yourself and name its local path)")
    state = read_state_dict(path)
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not (k.startswith("fc.") and k in own and v.shape != own[k].shape)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit R(2+1)D-18: {error}") from error
    bad_missing = [k for k in missing if not k.startswith("fc.")]
    if bad_missing or unexpected:
        raise ValueError(f"{path}: not R(2+1)D-18 weights; missing {bad_missing[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    return model


# Unfrozen from the head down, one group per stage.
UNFREEZE_ORDER = ("fc", "layer4", "layer3", "layer2", "layer1", "stem")


def freeze_for_stage(model: VideoResNet, stage: int) -> list[nn.Parameter]:
    """Make ``fc`` plus the top ``stage`` groups trainable, freeze the rest.

    Stage 0: only ``fc``; 1: + ``layer4``; 2: + ``layer3``; ... 5 or more: all.
    Returns the trainable parameters, for the optimiser. Frozen BatchNorm
    layers still update running statistics in train mode.
    """
    if not isinstance(model, VideoResNet):
        raise TypeError(f"freeze_for_stage needs an R(2+1)D model, got {type(model).__name__}")
    if stage < 0:
        raise ValueError(f"stage must be >= 0, got {stage}")
    trainable = UNFREEZE_ORDER[:stage + 1]
    for name, param in model.named_parameters():
        param.requires_grad = name.split(".")[0] in trainable
    return [p for p in model.parameters() if p.requires_grad]


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, D) penultimate features of any kind; ``model.fc`` maps them to logits."""
    if isinstance(model, VideoResNet):
        x = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))
        return model.avgpool(x).flatten(1)
    return model.embed(x)


@dataclass(frozen=True)
class ModelKind:
    """How to build one kind from its config, and the input it takes (no batch axis)."""

    config: type
    build: Callable[[Any], nn.Module]
    input_shape: Callable[[Any], tuple[int, ...]]


MODEL_KINDS: dict[str, ModelKind] = {
    "landmark_cnn": ModelKind(LandmarkCNNConfig, LandmarkCNN,
                              lambda c: (c.in_channels, c.length)),
    "r2plus1d": ModelKind(R2Plus1DConfig, build_r2plus1d,
                          lambda c: (3, c.frames, c.size, c.size)),
}


def make_config(kind: str, arch_args: dict) -> Any:
    """The frozen config of ``kind`` from ``arch_args``, with errors naming the bad key."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    config_cls = MODEL_KINDS[kind].config
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(arch_args) - known)
    if unknown:
        raise ValueError(f"{kind}: unknown arch args {unknown}; known: {sorted(known)}")
    try:
        return config_cls(**arch_args)
    except TypeError as error:
        raise ValueError(f"{kind}: bad arch args {arch_args}: {error}") from error


def build_model(kind: str, arch_args: dict) -> nn.Module:
    """A freshly initialised model of ``kind`` built from ``arch_args``."""
    config = make_config(kind, arch_args)
    return MODEL_KINDS[kind].build(config)


def input_shape(kind: str, arch_args: dict) -> tuple[int, ...]:
    """The input shape of one example of ``kind`` (without the batch axis)."""
    config = make_config(kind, arch_args)
    return MODEL_KINDS[kind].input_shape(config)
