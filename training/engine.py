"""The training loop: a few small functions with all state passed in.

Progress leaves through ``on_event(dict)`` callbacks (JSON-able dicts with an
``event`` key), which the CLI renders as a progress bar and JSON lines and the
GUI as its own progress bar. Every random draw of epoch ``e`` is seeded from
``(seed, e)``, so a run resumed from its last checkpoint continues exactly as
the uninterrupted run would have.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from features.files import atomic_output
from training.config import OptimConfig
from training.kinds.base import EventSink

# A collated batch of raw examples -> the model's input on its device (a kind's
# ``model_input`` bound to the entry's input spec and device).
ToInput = Callable[[torch.Tensor], torch.Tensor]


def _quiet(event: dict) -> None:
    return None


def make_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over every parameter; frozen ones (no grad) are skipped by AdamW."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup: int = 0):
    """Cosine decay to zero over ``total_steps`` optimizer steps, linear warm-up first."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Seed torch for epoch ``epoch`` and return the epoch's NumPy generator."""
    torch.manual_seed(seed * 100_003 + epoch)
    return np.random.default_rng([seed, epoch])


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


@dataclass
class Step:
    """What one training or validation step needs besides the batch: the kind (its loss,
    validation and metrics), its input transform, the optimiser and the device."""

    kind: object
    classes: tuple[str, ...]
    to_input: ToInput
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: object
    scaler: torch.amp.GradScaler | None
    device: torch.device
    grad_clip: float
    amp: bool

    def autocast(self):
        """Mixed precision on CUDA when ``amp``, else nothing."""
        return _autocast(self.device, self.amp)


def to_device(value, device: torch.device):
    """A tensor, or a tuple of tensors, on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    return type(value)(to_device(v, device) for v in value)


def train_one_epoch(model: nn.Module, loader, step: Step, epoch: int,
                    on_event: EventSink = _quiet) -> dict:
    """One pass over ``loader``; mean loss (and accuracy, for kinds that count hits) on
    the training batches."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for index, (inputs, targets) in enumerate(loader):
        inputs, targets = step.to_input(inputs), to_device(targets, step.device)
        with step.autocast():
            loss, hits, count = step.kind.batch_loss(model, inputs, targets, step.loss_fn)
        step.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(loss).backward()
        step.scaler.unscale_(step.optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip)
        step.scaler.step(step.optimizer)
        step.scaler.update()
        step.scheduler.step()
        total_loss += loss.item() * count
        seen += count
        correct = None if hits is None else (correct or 0) + hits
        on_event({"event": "batch", "epoch": epoch, "batch": index + 1,
                  "batches": len(loader), "loss": loss.item()})
    metrics = {"train_loss": total_loss / max(seen, 1)}
    if correct is not None:
        metrics["train_accuracy"] = correct / max(seen, 1)
    return metrics


@dataclass
class History:
    """Per-epoch metrics and the best epoch so far (by the kind's validation score)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stale: int = 0

    def record(self, metrics: dict, score: float) -> bool:
        """Add an epoch; True when it is the new best."""
        self.epochs.append(metrics)
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, metrics["epoch"], 0
            return True
        self.stale += 1
        return False

    @property
    def best(self) -> dict:
        """The metrics of the best epoch ({} before any)."""
        return next((m for m in self.epochs if m["epoch"] == self.best_epoch), {})


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves half a checkpoint."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint`; plain tensors and numbers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}


@dataclass
class FitResult:
    """The best weights (CPU state dict), the history, and whether training was resumed."""

    best_state: dict
    history: History
    resumed_from: int | None = None


def _restore(checkpoint: Path, model: nn.Module, step: Step):
    state = load_checkpoint(checkpoint)
    _unwrap(model).load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    step.scheduler.load_state_dict(state["scheduler"])
    step.scaler.load_state_dict(state["scaler"])
    history = History(**state["history"])
    return state["epoch"] + 1, history, state["best_state"]


def fit(model: nn.Module, train_loader, val_loader, step: Step, config: OptimConfig, *,
        checkpoint: Path, resume: bool = False, is_main: bool = True,
        on_epoch_start: Callable[[int, np.random.Generator], None] | None = None,
        on_event: EventSink = _quiet, select: bool = True) -> FitResult:
    """Train with early stopping on validation accuracy; checkpoint after every epoch.

    With ``resume`` and an existing ``checkpoint`` the run continues after its
    last finished epoch, with the same optimiser, schedule and random draws.
    Without ``select`` (no validation split to choose by) every epoch runs and
    the last one's weights are kept; validation metrics are only recorded.
    """
    start, history, best_state = 0, History(), _cpu_state(model)
    resumed_from = None
    if resume and checkpoint.is_file():
        start, history, best_state = _restore(checkpoint, model, step)
        resumed_from = start
        on_event({"event": "resumed", "epoch": start})
    for epoch in range(start, config.epochs):
        if select and history.stale >= config.patience:
            break
        rng = seed_epoch(config.seed, epoch)
        if on_epoch_start:
            on_epoch_start(epoch, rng)
        on_event({"event": "epoch_start", "epoch": epoch + 1, "epochs": config.epochs})
        metrics = {"epoch": epoch + 1, **train_one_epoch(model, train_loader, step, epoch + 1, on_event)}
        # Nothing to validate on (a fit on every clip, which keeps its last epoch): no val_ metrics.
        val = step.kind.validate(model, val_loader, step) if len(val_loader.dataset) else {}
        metrics.update({f"val_{k}": v for k, v in val.items()})
        metrics["lr"] = step.optimizer.param_groups[0]["lr"]
        if history.record(metrics, step.kind.score(val) if val else -math.inf) or not select:
            best_state = _cpu_state(model)
        if is_main:
            save_checkpoint(checkpoint, {
                "model": _cpu_state(model), "optimizer": step.optimizer.state_dict(),
                "scheduler": step.scheduler.state_dict(), "scaler": step.scaler.state_dict(),
                "epoch": epoch, "history": vars(history), "best_state": best_state})
        # after the checkpoint: an epoch reported done survives a kill
        on_event({"event": "epoch_end", **metrics, "best_epoch": history.best_epoch})
    return FitResult(best_state, history, resumed_from)
