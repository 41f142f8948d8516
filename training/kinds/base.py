"""What every model kind provides, and the pieces the kinds share.

A kind (:class:`ModelKind`) is rebuilt from its name and the registry card's
``arch_args`` and ``input``; nothing about it is decided anywhere else. A
clip becomes model input in two steps that training, evaluation and the live
predictor all take: :meth:`ModelKind.example` (one clip's raw, fixed-size
array, what datasets hold and augment) and :meth:`ModelKind.model_input` (a
batch of those on the model's device, normalised as the model expects).
:meth:`ModelKind.clip_input` is both for one clip.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from features.cache import ClipFeatures

EventSink = Callable[[dict], None]


def default_device() -> torch.device:
    """``cuda`` when a GPU is usable, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


class ModelKind:
    """One model kind. A subclass sets the class attributes and implements the methods
    that raise ``NotImplementedError``; its module exposes one instance as ``KIND``.

    ``arch_config``: frozen dataclass of the model's arguments (the card's
    ``arch_args``); ``input_spec``: frozen dataclass of what the model is fed
    (the card's ``input``, the fields this kind adds to a card);
    ``needs_crops``: whether clips must carry mouth crops.
    """

    name: str
    label: str
    arch_config: type
    input_spec: type
    needs_crops: bool = False
    default_split: str = "stratified"
    # A sentence reader emits characters (:meth:`emissions`): it transcribes, and chooses among
    # phrases it is given rather than classes of its own.
    reads_sentences: bool = False
    # False for a kind fitted in one pass, without epochs (few_shot): training.run enrols it.
    trains_by_epochs: bool = True

    def uses_crops(self, spec: Any) -> bool:
        """Whether clips fed as ``spec`` describes must carry mouth crops."""
        return self.needs_crops

    # -- the model ---------------------------------------------------------------------------

    def arch(self, arch_args: dict) -> Any:
        """The frozen :attr:`arch_config` from ``arch_args``, with errors naming the bad key."""
        known = {f.name for f in fields(self.arch_config)}
        unknown = sorted(set(arch_args) - known)
        if unknown:
            raise ValueError(f"{self.name}: unknown arch args {unknown}; known: {sorted(known)}")
        try:
            return self.arch_config(**arch_args)
        except TypeError as error:
            raise ValueError(f"{self.name}: bad arch args {arch_args}: {error}") from error

    def build(self, arch_args: dict) -> nn.Module:
        """A freshly initialised model from ``arch_args``; never loads or downloads weights."""
        return self.build_model(self.arch(arch_args))

    def build_model(self, config: Any) -> nn.Module:
        raise NotImplementedError

    def embed(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(N, D) penultimate features; ``model.fc`` maps them to logits."""
        return model.embed(x)

    def logits_and_embeddings(self, model: nn.Module, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K) logits and (N, D) penultimate features of a model-input batch."""
        features = self.embed(model, inputs)
        return model.fc(features), features

    def train_arch_args(self, config, clips) -> dict:
        """The ``arch_args`` a run with ``config`` (TrainConfig) builds for ``clips`` (ClipSet)."""
        raise NotImplementedError

    def check_config(self, config) -> None:
        """Refuse ``config`` (TrainConfig) before any clip is read, when it cannot work (e.g. a
        weights file that is not there); the message says what to do."""

    def prepare_model(self, model: nn.Module, config, on_event: EventSink) -> None:
        """Ready a newly built model for training with ``config`` (e.g. load pretrained weights)."""

    def unfreeze_stage(self, config, epoch: int) -> int | None:
        """The progressive-unfreezing stage of ``epoch``, or None when every layer trains."""
        return None

    def freeze_for_stage(self, model: nn.Module, stage: int) -> None:
        raise NotImplementedError(f"{self.name} has no unfreezing stages")

    # -- clips to model inputs ---------------------------------------------------------------

    def spec_from(self, data) -> Any:
        """The :attr:`input_spec` a run with ``data`` (DataConfig) starts from."""
        raise NotImplementedError

    def example(self, clip: ClipFeatures, spec: Any) -> tuple[np.ndarray, tuple[str, ...]]:
        """One clip as this kind's raw, fixed-size example and its channel names (or ``()``);
        ``ValueError`` when the clip cannot give one (no face)."""
        raise NotImplementedError

    def fit_spec(self, spec: Any, clips, index: np.ndarray) -> Any:
        """``spec`` completed from the training clips ``clips`` (ClipSet) at ``index``
        (e.g. their normalisation)."""
        return spec

    def check_spec(self, spec: Any, where: str) -> None:
        """Refuse, naming ``where``, a spec this app cannot feed (e.g. features it no longer extracts)."""

    def train_batches(self, dataset: Dataset, config, dist):
        """A batch sampler for the training split (``config``: TrainConfig, ``dist``: its
        DistributedContext), or None to shuffle it plainly."""
        return None

    def dataset(self, examples: np.ndarray, labels: np.ndarray, spec: Any,
                augment=None) -> Dataset:
        """(example, label) pairs of raw examples, augmented when ``augment`` (AugmentConfig) is given."""
        raise NotImplementedError

    def model_input(self, batch: torch.Tensor, spec: Any, device: torch.device) -> torch.Tensor:
        """A collated batch of raw examples as the model's input on ``device``."""
        raise NotImplementedError

    def clip_input(self, clip: ClipFeatures, spec: Any, device: torch.device) -> torch.Tensor:
        """One clip as a model-input batch of one: :meth:`example`, then :meth:`model_input`."""
        example, _ = self.example(clip, spec)
        return self.model_input(torch.from_numpy(np.ascontiguousarray(example[None])), spec, device)

    # -- the training objective and reports --------------------------------------------------

    collate = None   # a DataLoader collate_fn for examples of varying shape

    def output_classes(self, clips) -> tuple[str, ...]:
        """The model's output classes for ``clips`` (ClipSet), the card's ``classes``."""
        return clips.classes

    def targets(self, clips, classes: tuple[str, ...]):
        """What each clip of ``clips`` is trained to give (labels, symbol sequences...)
        in terms of the output ``classes``."""
        raise NotImplementedError

    def score_clip(self, model: nn.Module, batch, card, phrases: tuple[str, ...] | None
                   ) -> tuple[tuple[str, ...], np.ndarray]:
        """(candidates, (len(candidates),) probabilities) of one clip's model-input batch:
        a classifier's classes, or ``phrases`` scored by a sentence reader."""
        raise NotImplementedError

    def emissions(self, model: nn.Module, batch) -> torch.Tensor:
        """A sentence reader's (T, V) per-frame symbol log-probabilities of one clip's batch."""
        raise NotImplementedError(f"{self.name} names classes; it reads no sentences")

    def phrase_scores(self, log_probs: torch.Tensor, card, phrases: tuple[str, ...]) -> np.ndarray:
        """A sentence reader's (len(phrases),) posterior of ``phrases`` given :meth:`emissions`."""
        raise NotImplementedError(f"{self.name} names classes; it scores no phrase list")

    def loss_function(self, config) -> nn.Module:
        raise NotImplementedError

    def batch_loss(self, model, inputs, targets, loss_fn) -> tuple[torch.Tensor, int | None, int]:
        """(mean loss, hits or None when the kind counts none, examples) of one batch."""
        raise NotImplementedError

    def validate(self, model, loader, step) -> dict:
        """Validation metrics over ``loader`` (``loss`` among them); ``step``: training.engine.Step."""
        raise NotImplementedError

    def score(self, val: dict) -> float:
        """How :meth:`validate`'s metrics rank epochs: higher is better."""
        raise NotImplementedError

    def calibrate(self, card, model, val_set, device):
        """The card with what the kind fits on the validation split after training (the
        sentence reader: its posteriors' calibration); unchanged by default."""
        return card

    def report(self, folder, card, clips, test_index, model, test_set, device, history,
               targets: dict):
        """Evaluate on the test split, write the reports (``TRAINING_SUMMARY.md`` among them)
        into ``folder``; return (metrics, card with its metrics, a line announcing them)."""
        raise NotImplementedError


    def class_curves(self, examples: np.ndarray, names: tuple[str, ...]
                     ) -> tuple[np.ndarray, list[str]]:
        """(N, channels, T) curves worth plotting per class, and their names."""
        raise NotImplementedError

    def preview_frames(self, example: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """(T, H, W) uint8 images of one example, to show what the model sees."""
        raise NotImplementedError
