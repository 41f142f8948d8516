"""``r2plus1d``: torchvision's R(2+1)D-18 on grayscale mouth crops.

A clip becomes (crop_frames, S, S) uint8 crops, picked evenly between its first
and last face and resized to S; the model sees them as (3, T, S, S) float32,
repeated to three channels and normalised with the Kinetics-400 statistics.
Pretrained weights come only from a local file; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from features.cache import ClipFeatures
from training.config import repo_path
from training.kinds.base import read_state_dict
from training.kinds.classifier import ClassifierKind
from training.transforms import (face_span, item_rng, mouth_crops, resample_nearest, resize_crops,
                                 resize_frames)

# Kinetics-400 statistics torchvision's R(2+1)D-18 weights were trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
R2PLUS1D_URL_HINT = "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth"
# Unfrozen from the head down, one group per stage.
UNFREEZE_ORDER = ("fc", "layer4", "layer3", "layer2", "layer1", "stem")


@dataclass(frozen=True)
class R2Plus1DConfig:
    """torchvision's R(2+1)D-18 with ``fc`` sized for ``num_classes``.

    ``frames`` and ``size`` do not change the network; they record the clip
    (N, 3, frames, size, size) it is trained and fed with.
    """

    num_classes: int
    frames: int = 24
    size: int = 112


@dataclass(frozen=True)
class CropInput:
    """What the video model is fed (the card's ``input``): ``crop_frames`` crops of
    ``crop_size`` pixels square, as ``channels`` channels; ``temperature``: the logits'
    calibration on held-apart clips (:func:`training.kinds.classifier.fit_temperature`),
    1 in cards from before it."""

    crop_frames: int
    crop_size: int
    channels: int = 3
    temperature: float = 1.0


def build_r2plus1d(config: R2Plus1DConfig) -> VideoResNet:
    """R(2+1)D-18 with random weights and a new ``fc``; never downloads."""
    from torchvision.models.video import r2plus1d_18  # torchvision (and torch._dynamo) only here

    model = r2plus1d_18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, config.num_classes)
    return model


def clip_crops(clip: ClipFeatures, spec: CropInput) -> np.ndarray:
    """One clip's mouth crops between its first and last face, resampled to
    (crop_frames, crop_size, crop_size) uint8."""
    if not clip.valid.any():
        raise ValueError("no frame with a face")
    return resize_crops(resample_nearest(mouth_crops(clip)[face_span(clip.valid)], spec.crop_frames),
                        spec.crop_size)


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


def pretrained_file(path: str | Path) -> Path:
    """``path`` when it is a file; else ``FileNotFoundError`` saying where to get the weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path} (download "
                                f"{R2PLUS1D_URL_HINT} yourself and name its local path)")
    return path


def load_pretrained(model: VideoResNet, path: str | Path) -> VideoResNet:
    """Load Kinetics-400 R(2+1)D-18 weights from a local file into ``model``.

    Every backbone tensor must match; ``fc`` is kept as built when its shape
    differs (400 Kinetics classes vs ours). Nothing is downloaded.
    """
    state = read_state_dict(pretrained_file(path))
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


def freeze_for_stage(model: VideoResNet, stage: int) -> list[nn.Parameter]:
    """Make ``fc`` plus the top ``stage`` groups trainable, freeze the rest.

    Stage 0: only ``fc``; 1: + ``layer4``; 2: + ``layer3``; ... 5 or more: all.
    Returns the trainable parameters, for the optimiser. Frozen BatchNorm
    layers still update running statistics in train mode.
    """
    from torchvision.models.video import VideoResNet

    if not isinstance(model, VideoResNet):
        raise TypeError(f"freeze_for_stage needs an R(2+1)D model, got {type(model).__name__}")
    if stage < 0:
        raise ValueError(f"stage must be >= 0, got {stage}")
    trainable = UNFREEZE_ORDER[:stage + 1]
    for name, param in model.named_parameters():
        param.requires_grad = name.split(".")[0] in trainable
    return [p for p in model.parameters() if p.requires_grad]


class CropDataset(Dataset):
    """(T, S, S) uint8 mouth crops and int64 labels; ``flip`` mirrors a crop with that probability."""

    def __init__(self, crops: np.ndarray, labels: np.ndarray, flip: float = 0.0):
        self.crops, self.labels, self.flip = crops, np.asarray(labels, dtype=np.int64), flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops = self.crops[index]
        if self.flip > 0 and item_rng().random() < self.flip:
            crops = crops[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crops)), torch.tensor(self.labels[index])


class R2Plus1DKind(ClassifierKind):
    name = "r2plus1d"
    label = "R(2+1)D-18 video"
    arch_config = R2Plus1DConfig
    input_spec = CropInput
    needs_crops = True

    def build_model(self, config: R2Plus1DConfig) -> nn.Module:
        return build_r2plus1d(config)

    def embed(self, model: VideoResNet, x: torch.Tensor) -> torch.Tensor:
        x = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))
        return model.avgpool(x).flatten(1)

    def train_arch_args(self, config, clips) -> dict:
        return {"num_classes": len(clips.classes), "frames": config.data.crop_frames,
                "size": config.data.crop_size, **config.arch}

    def check_config(self, config) -> None:
        if config.pretrained:
            pretrained_file(repo_path(config.pretrained))

    def prepare_model(self, model, config, on_event) -> None:
        if config.pretrained:
            load_pretrained(model, repo_path(config.pretrained))
            on_event({"event": "message", "text": f"starting from Kinetics-400 weights {config.pretrained}"})
        else:
            on_event({"event": "message", "text": "no pretrained weights given: training "
                      "R(2+1)D-18 from scratch (set 'pretrained: PATH' for Kinetics-400 weights)"})

    def unfreeze_stage(self, config, epoch: int) -> int | None:
        if not config.pretrained or not config.unfreeze_epochs:
            return None
        return max(sum(start <= epoch for start in config.unfreeze_epochs) - 1, 0)

    def freeze_for_stage(self, model, stage: int) -> None:
        freeze_for_stage(model, stage)

    def spec_from(self, data) -> CropInput:
        return CropInput(data.crop_frames, data.crop_size)

    def example(self, clip: ClipFeatures, spec: CropInput) -> tuple[np.ndarray, tuple[str, ...]]:
        return clip_crops(clip, spec), ()

    def dataset(self, examples, labels, spec, augment=None) -> Dataset:
        return CropDataset(examples, labels, flip=0.5 if augment is not None else 0.0)

    def model_input(self, batch: torch.Tensor, spec: CropInput, device) -> torch.Tensor:
        return crops_to_clip(batch.to(device, non_blocking=True), size=spec.crop_size)

    def class_curves(self, examples, names):
        crops = examples.astype(np.float32)
        motion = np.abs(np.diff(crops, axis=1)).mean(axis=(2, 3))
        return np.concatenate([np.zeros((len(crops), 1)), motion], axis=1)[:, None], ["mouth motion"]

    def preview_frames(self, example, names):
        return example


KIND = R2Plus1DKind()
