"""One training run from config to registry entry: data, model, fit, reports, card.

Each step is a small function with its state passed in; :func:`train` strings
them together. Only rank 0 writes reports and the entry.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from features.cache import FeatureCache, extractor_key
from features.dataset import build_manifest, transcript_counts
from features.frame_features import FeatureConfig
from features.progress import stage_progress
from training import registry, reports
from training.balance import duplicate_from_group, make_sampler
from training.card import Card
from training.config import TrainConfig, repo_path
from training.data import ClipSet, load_dataset
from training.distributed import DistributedContext
from training.engine import EventSink, History, Step, fit, make_optimizer, make_scheduler
from training.kinds import get_kind
from training.splits import make_splits, split_analysis, split_digests, write_split_analysis


def load_clips(config: TrainConfig, dist: DistributedContext, on_event: EventSink) -> ClipSet:
    """The manifest's clips as the kind's examples; rank 0 fills the feature cache first."""
    videos = repo_path(config.data.videos)
    if not videos.is_dir():
        raise FileNotFoundError(f"{videos}: no such folder; give --videos the folder that holds "
                                "<label>/<clip>.mp4 (default videos/)")
    manifest = build_manifest(videos)
    for path, reason in manifest.attrs.get("problems", []):
        on_event({"event": "message", "text": f"skipped {path}: {reason}"})
    if manifest.empty:
        raise ValueError(f"{videos}: no clips found; record some or import GRID words first")
    on_event({"event": "data", "stage": "features", "clips": len(manifest)})
    cache = FeatureCache(repo_path(config.data.cache))
    progress = stage_progress(on_event, "extract", len(manifest))

    if not dist.is_main:
        dist.barrier()
    clips = load_dataset(manifest, cache, config.model, get_kind(config.model).spec_from(config.data),
                         config.data.workers, on_progress=progress if dist.is_main else None)
    if dist.is_main:
        dist.barrier()
    for reason in clips.failed.values():
        on_event({"event": "message", "text": f"skipped {reason}"})
    return clips


def split_clips(config: TrainConfig, clips: ClipSet, run_dir: Path) -> dict[str, np.ndarray]:
    """Train/val/test positions; the training part balanced by duplication if configured."""
    split = config.split
    if split.strategy == "auto":
        split = replace(split, strategy=get_kind(config.model).default_split)
    splits = make_splits(clips.rows, split)
    write_split_analysis(run_dir / "split_analysis.json", split_analysis(clips.rows, splits))
    if config.balance.balance_source:
        train_rows = clips.rows.iloc[splits["train"]]
        picks = duplicate_from_group(train_rows, config.balance.balance_source, config.optim.seed)
        splits["train"] = splits["train"][picks]
    return splits


def make_datasets(config: TrainConfig, clips: ClipSet, splits: dict) -> tuple[dict, object]:
    """Datasets per split, and the kind's input spec completed from the training clips only."""
    kind = get_kind(config.model)
    spec = kind.fit_spec(kind.spec_from(config.data), clips, np.unique(splits["train"]))
    targets = kind.targets(clips, kind.output_classes(clips))
    datasets = {name: kind.dataset(clips.examples[index], [targets[i] for i in index], spec,
                                   config.augment if name == "train" else None)
                for name, index in splits.items()}
    return datasets, spec


def make_loaders(config: TrainConfig, datasets: dict, labels: np.ndarray,
                 dist: DistributedContext, collate=None) -> dict:
    """DataLoaders (batched by ``collate`` when given); the training one shuffled,
    weighted or sharded as configured."""
    sampler = make_sampler(labels, config.balance.sampling, None)
    if dist.enabled:
        if sampler is not None:
            raise ValueError("balance.sampling is not supported with torchrun; use "
                             "balance_source duplication or focal loss instead")
        sampler = DistributedSampler(datasets["train"], shuffle=True, seed=config.optim.seed)
    size = config.optim.batch_size
    return {"train": DataLoader(datasets["train"], batch_size=size, sampler=sampler,
                                shuffle=sampler is None, drop_last=len(datasets["train"]) > size,
                                collate_fn=collate),
            "val": DataLoader(datasets["val"], batch_size=size, collate_fn=collate),
            "test": DataLoader(datasets["test"], batch_size=size, collate_fn=collate)}


def train(config: TrainConfig, run_dir: Path, *, resume: bool, dist: DistributedContext,
          on_event: EventSink) -> Path | None:
    """Train, evaluate and register one model; returns the entry folder (rank 0)."""
    started = time.monotonic()
    torch.manual_seed(config.optim.seed)
    kind = get_kind(config.model)
    clips = load_clips(config, dist, on_event)
    splits = split_clips(config, clips, run_dir)
    datasets, spec = make_datasets(config, clips, splits)
    loaders = make_loaders(config, datasets, clips.labels[splits["train"]], dist, kind.collate)
    args = kind.train_arch_args(config, clips)
    raw_model = kind.build(args)
    kind.prepare_model(raw_model, config, on_event)
    model = dist.wrap(raw_model)
    optimizer = make_optimizer(model, config.optim)
    classes = kind.output_classes(clips)
    step = Step(kind, classes, partial(kind.model_input, spec=spec, device=dist.device),
                kind.loss_function(config).to(dist.device),
                optimizer, make_scheduler(optimizer, config.optim.epochs * len(loaders["train"])),
                torch.amp.GradScaler(enabled=config.optim.amp and dist.device.type == "cuda"),
                dist.device, config.optim.grad_clip, config.optim.amp)
    if dist.enabled and kind.unfreeze_stage(config, 0) is not None:
        raise ValueError("progressive unfreezing runs in one process; under torchrun set "
                         "'unfreeze_epochs: []' to train every layer from the start")

    def on_epoch_start(epoch: int, rng) -> None:
        stage = kind.unfreeze_stage(config, epoch)
        if stage is not None:
            kind.freeze_for_stage(raw_model, stage)
        if isinstance(loaders["train"].sampler, DistributedSampler):
            loaders["train"].sampler.set_epoch(epoch)

    result = fit(model, loaders["train"], loaders["val"], step, config.optim,
                 checkpoint=run_dir / "last.pt", resume=resume, is_main=dist.is_main,
                 on_epoch_start=on_epoch_start, on_event=on_event)
    if not dist.is_main:
        return None
    raw_model.load_state_dict(result.best_state)
    card = Card(config.model, args, classes, spec, name=run_dir.name,
                data=data_summary(config, clips, splits),
                training={"config": asdict(config), "epochs_run": len(result.history.epochs),
                          "best_epoch": result.history.best_epoch,
                          "resumed_from": result.resumed_from,
                          "seconds": round(time.monotonic() - started, 1),
                          "device": str(dist.device), "world_size": dist.world_size,
                          "pretrained": config.pretrained})
    return register(config, run_dir, card, clips, splits, datasets["test"], raw_model,
                    result.history, dist.device, on_event)


def data_summary(config: TrainConfig, clips: ClipSet, splits: dict) -> dict:
    sizes = {name: int(len(index)) for name, index in splits.items()}
    counts = clips.rows["label"].value_counts().sort_index()
    return {"videos": config.data.videos, "clips": int(len(clips.labels)),
            "extractor": extractor_key(FeatureConfig()),     # the lip features it was trained on
            **transcript_counts(clips.rows["text"]),
            "skipped": len(clips.failed), "per_class": {str(k): int(v) for k, v in counts.items()},
            "split": config.split.strategy, "split_sizes": sizes,
            "summary": f"{len(clips.labels)} clips of {len(clips.classes)} classes from "
                       f"{config.data.videos}, {config.split.strategy} split {sizes}"}


def register(config: TrainConfig, run_dir: Path, card: Card, clips: ClipSet, splits: dict,
             test_set, model: nn.Module, history: History, device, on_event: EventSink) -> Path:
    """Evaluate on the test split, write the reports and the registry entry (with the
    digests of each split's clips, :data:`registry.CLIPS_FILE`); activate if first."""
    folder = run_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    metrics, card, text = get_kind(card.kind).report(
        folder, card, clips, np.asarray(splits["test"]), model, test_set, device, history,
        config.targets)
    reports.write_json(folder / "final_report.json",
                       {"name": card.name, "test": metrics, "targets": card.targets,
                        "history": history.epochs, "best_epoch": history.best_epoch,
                        "data": card.data, "training": card.training})
    files = {p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".")}
    files["split_analysis.json"] = run_dir / "split_analysis.json"
    files[registry.CLIPS_FILE] = json.dumps(split_digests(clips.rows, splits)).encode()
    root = repo_path(config.registry)
    entry = registry.write_entry(root, card.name, model, card, files)
    if registry.active_entry(root, config.model) is None:
        registry.activate(root, card.name)
    (run_dir / "entry.txt").write_text(str(entry))
    on_event({"event": "done", "entry": str(entry), **card.metrics,
              "text": f"registered {entry} -- {text}"})
    return entry
