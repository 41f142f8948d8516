"""One training run from config to registry entry: data, model, fit, reports, card.

Each step is a small function with its state passed in; :func:`train` strings
them together. Only rank 0 writes reports and the entry.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from features.cache import FeatureCache
from features.dataset import build_manifest
from training import registry, reports
from training.balance import FocalLoss, duplicate_from_group, make_sampler
from training.config import ROOT, TrainConfig
from training.data import ClipSet, CropDataset, LandmarkDataset, fit_normalisation, load_dataset
from training.distributed import DistributedContext
from training.engine import EventSink, Step, fit, make_optimizer, make_scheduler
from training.evaluate import input_spec, predict_with_embeddings, write_reports
from training.models import build_model, freeze_for_stage, load_pretrained
from training.splits import make_splits, split_analysis, split_digests, write_split_analysis


def _path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def load_clips(config: TrainConfig, dist: DistributedContext, on_event: EventSink) -> ClipSet:
    """The manifest's clips as arrays; rank 0 fills the feature cache first."""
    videos = _path(config.data.videos)
    if not videos.is_dir():
        raise FileNotFoundError(f"{videos}: no such folder; give --videos the folder that holds "
                                "<label>/<clip>.mp4 (default videos/)")
    manifest = build_manifest(videos)
    for path, reason in manifest.attrs.get("problems", []):
        on_event({"event": "message", "text": f"skipped {path}: {reason}"})
    if manifest.empty:
        raise ValueError(f"{videos}: no clips found; record some or import GRID words first")
    on_event({"event": "data", "stage": "features", "clips": len(manifest)})
    cache = FeatureCache(_path(config.data.cache))
    done = [0]

    def progress(path, error):
        done[0] += 1
        on_event({"event": "extract", "done": done[0], "total": len(manifest),
                  **({"error": error} if error else {})})

    if not dist.is_main:
        dist.barrier()
    clips = load_dataset(manifest, cache, config.data, config.model,
                         on_progress=progress if dist.is_main else None)
    if dist.is_main:
        dist.barrier()
    for reason in clips.failed.values():
        on_event({"event": "message", "text": f"skipped {reason}"})
    return clips


def split_clips(config: TrainConfig, clips: ClipSet, run_dir: Path) -> dict[str, np.ndarray]:
    """Train/val/test positions; the training part balanced by duplication if configured."""
    splits = make_splits(clips.rows, config.split)
    write_split_analysis(run_dir / "split_analysis.json", split_analysis(clips.rows, splits))
    if config.balance.balance_source:
        train_rows = clips.rows.iloc[splits["train"]]
        picks = duplicate_from_group(train_rows, config.balance.balance_source, config.optim.seed)
        splits["train"] = splits["train"][picks]
    return splits


def make_datasets(config: TrainConfig, clips: ClipSet, splits: dict) -> tuple[dict, dict | None]:
    """Datasets per split and the landmark normalisation (from training clips only)."""
    if config.model == "r2plus1d":
        return {name: CropDataset(clips.crops[index], clips.labels[index],
                                  flip=0.5 if name == "train" else 0.0)
                for name, index in splits.items()}, None
    mean, std = fit_normalisation(clips.sequences[np.unique(splits["train"])])
    datasets = {name: LandmarkDataset(clips.sequences[index], clips.labels[index], clips.names,
                                      mean, std, config.augment if name == "train" else None)
                for name, index in splits.items()}
    return datasets, {"mean": mean.tolist(), "std": std.tolist()}


def make_loaders(config: TrainConfig, datasets: dict, labels: np.ndarray,
                 dist: DistributedContext) -> dict:
    """DataLoaders; training one shuffled, weighted or sharded as configured."""
    sampler = make_sampler(labels, config.balance.sampling, None)
    if dist.enabled:
        if sampler is not None:
            raise ValueError("balance.sampling is not supported with torchrun; use "
                             "balance_source duplication or focal loss instead")
        sampler = DistributedSampler(datasets["train"], shuffle=True, seed=config.optim.seed)
    size = config.optim.batch_size
    return {"train": DataLoader(datasets["train"], batch_size=size, sampler=sampler,
                                shuffle=sampler is None, drop_last=len(datasets["train"]) > size),
            "val": DataLoader(datasets["val"], batch_size=size),
            "test": DataLoader(datasets["test"], batch_size=size)}


def arch_args(config: TrainConfig, clips: ClipSet) -> dict:
    args = {"num_classes": len(clips.classes), **config.arch}
    if config.model == "landmark_cnn":
        return {"in_channels": len(clips.names), "length": config.data.sequence_length, **args}
    return {"frames": config.data.crop_frames, "size": config.data.crop_size, **args}


def make_model(config: TrainConfig, args: dict, on_event: EventSink) -> nn.Module:
    model = build_model(config.model, args)
    if config.model == "r2plus1d":
        if config.pretrained:
            load_pretrained(model, _path(config.pretrained))
            on_event({"event": "message", "text": f"starting from Kinetics-400 weights {config.pretrained}"})
        else:
            on_event({"event": "message", "text": "no pretrained weights given: training "
                      "R(2+1)D-18 from scratch (set 'pretrained: PATH' for Kinetics-400 weights)"})
    return model


def unfreeze_stage(config: TrainConfig, epoch: int) -> int | None:
    """Progressive unfreezing stage for ``epoch`` (pretrained R(2+1)D only), else None."""
    if config.model != "r2plus1d" or not config.pretrained or not config.unfreeze_epochs:
        return None
    return max(sum(start <= epoch for start in config.unfreeze_epochs) - 1, 0)


def make_loss(config: TrainConfig) -> nn.Module:
    if config.balance.loss == "focal":
        return FocalLoss(config.balance.focal_gamma, label_smoothing=config.optim.label_smoothing)
    if config.balance.loss != "cross_entropy":
        raise ValueError(f"balance.loss {config.balance.loss!r}: choose cross_entropy or focal")
    return nn.CrossEntropyLoss(label_smoothing=config.optim.label_smoothing)


def train(config: TrainConfig, run_dir: Path, *, resume: bool, dist: DistributedContext,
          on_event: EventSink) -> Path | None:
    """Train, evaluate and register one model; returns the entry folder (rank 0)."""
    started = time.monotonic()
    torch.manual_seed(config.optim.seed)
    clips = load_clips(config, dist, on_event)
    splits = split_clips(config, clips, run_dir)
    datasets, normalisation = make_datasets(config, clips, splits)
    loaders = make_loaders(config, datasets, clips.labels[splits["train"]], dist)
    args = arch_args(config, clips)
    raw_model = make_model(config, args, on_event)
    model = dist.wrap(raw_model)
    optimizer = make_optimizer(model, config.optim)
    step = Step(config.model, make_loss(config).to(dist.device),
                optimizer, make_scheduler(optimizer, config.optim.epochs * len(loaders["train"])),
                torch.amp.GradScaler(enabled=config.optim.amp and dist.device.type == "cuda"),
                dist.device, config.optim.grad_clip, config.optim.amp)
    if dist.enabled and unfreeze_stage(config, 0) is not None:
        raise ValueError("progressive unfreezing runs in one process; under torchrun set "
                         "'unfreeze_epochs: []' to train every layer from the start")

    def on_epoch_start(epoch: int, rng) -> None:
        stage = unfreeze_stage(config, epoch)
        if stage is not None:
            freeze_for_stage(raw_model, stage)
        if isinstance(loaders["train"].sampler, DistributedSampler):
            loaders["train"].sampler.set_epoch(epoch)

    result = fit(model, loaders["train"], loaders["val"], step, config.optim,
                 checkpoint=run_dir / "last.pt", resume=resume, is_main=dist.is_main,
                 on_epoch_start=on_epoch_start, on_event=on_event)
    if not dist.is_main:
        return None
    raw_model.load_state_dict(result.best_state)
    card = {"kind": config.model, "arch_args": args, "classes": list(clips.classes),
            "feature_names": list(clips.names), "normalisation": normalisation,
            "input": input_spec(config.model, config.data),
            "data": data_summary(config, clips, splits),
            "training": {"config": asdict(config), "epochs_run": len(result.history.epochs),
                         "best_epoch": result.history.best_epoch, "resumed_from": result.resumed_from,
                         "seconds": round(time.monotonic() - started, 1),
                         "device": str(dist.device), "world_size": dist.world_size,
                         "pretrained": config.pretrained}}
    return register(config, run_dir, card, clips, splits, datasets["test"], raw_model,
                    result.history.epochs, dist.device, on_event)


def data_summary(config: TrainConfig, clips: ClipSet, splits: dict) -> dict:
    sizes = {name: int(len(index)) for name, index in splits.items()}
    counts = clips.rows["label"].value_counts().sort_index()
    return {"videos": config.data.videos, "clips": int(len(clips.labels)),
            "skipped": len(clips.failed), "per_class": {str(k): int(v) for k, v in counts.items()},
            "split": config.split.strategy, "split_sizes": sizes,
            "summary": f"{len(clips.labels)} clips of {len(clips.classes)} classes from "
                       f"{config.data.videos}, {config.split.strategy} split {sizes}"}


def register(config: TrainConfig, run_dir: Path, card: dict, clips: ClipSet, splits: dict,
             test_set, model: nn.Module, history: list[dict], device, on_event: EventSink) -> Path:
    """Evaluate on the test split, write the reports and the registry entry (with the
    digests of each split's clips, :data:`registry.CLIPS_FILE`); activate if first."""
    test_index = splits["test"]
    name = run_dir.name
    card = {**card, "name": name}
    folder = run_dir / "reports"
    predictions = predict_with_embeddings(model, config.model, test_set, device)
    metrics = write_reports(folder, card, clips, np.asarray(test_index), predictions, history)
    verdicts = reports.targets_met(metrics, config.targets)
    best = max(history, key=lambda h: h["val_accuracy"]) if history else {}
    card["metrics"] = {"accuracy": metrics["accuracy"], "top3_accuracy": metrics["top3_accuracy"],
                       "macro_f1": metrics["macro_f1"], "val_accuracy": best.get("val_accuracy"),
                       "test_clips": metrics["n"]}
    card["targets"] = verdicts
    reports.write_json(folder / "final_report.json",
                       {"name": name, "test": metrics, "targets": verdicts, "history": history,
                        "data": card["data"], "training": card["training"]})
    (folder / "TRAINING_SUMMARY.md").write_text(reports.summary_markdown(card, metrics, verdicts),
                                                encoding="utf-8")
    files = {p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".")}
    files["split_analysis.json"] = run_dir / "split_analysis.json"
    files[registry.CLIPS_FILE] = json.dumps(split_digests(clips.rows, splits)).encode()
    root = _path(config.registry)
    entry = registry.write_entry(root, name, model, card, files)
    if registry.active_entry(root, config.model) is None:
        registry.activate(root, name)
    (run_dir / "entry.txt").write_text(str(entry))
    on_event({"event": "done", "entry": str(entry), "accuracy": metrics["accuracy"],
              "top3_accuracy": metrics["top3_accuracy"], "macro_f1": metrics["macro_f1"],
              "text": f"registered {entry} -- test accuracy {metrics['accuracy']:.3f}, "
                      f"top-3 {metrics['top3_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"})
    return entry
