"""One training run from config to registry entry: data, model, fit, reports, card.

Each step is a small function with its state passed in; :func:`train` strings
them together. Only rank 0 writes reports and the entry.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from features.cache import FeatureCache, extractor_key
from features.dataset import build_manifest, transcript_counts
from features.files import atomic_output, private_dirs, write_text_atomic
from features.frame_features import FeatureConfig
from features.progress import stage_progress
from training import registry, reports
from training.balance import duplicate_from_group, make_sampler
from training.card import Card
from training.config import SMALL_CLASS, TrainConfig, repo_path
from training.data import ClipSet, load_dataset
from training.distributed import DistributedContext
from training.engine import (EventSink, FitResult, History, Step, fit, make_optimizer,
                             make_scheduler)
from training.evaluate import Predictions, predict_with_embeddings
from training.kinds import get_kind
from training.kinds.classifier import calibrated, tempered
from training.splits import (cross_validation_folds, fewest_recordings, make_splits,
                             split_analysis, split_digests, write_split_analysis)
from training.verdict import Measured, beats_chance

MAX_FOLDS = 5


def load_clips(config: TrainConfig, dist: DistributedContext, on_event: EventSink,
               spec=None) -> ClipSet:
    """The manifest's clips as the kind's examples (read as ``spec`` says, default the
    kind's own start); rank 0 fills the feature cache first."""
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
    spec = get_kind(config.model).spec_from(config.data) if spec is None else spec
    clips = load_dataset(manifest, cache, config.model, spec, config.data.workers,
                         on_progress=progress if dist.is_main else None)
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
                 dist: DistributedContext, collate=None, batches=None) -> dict:
    """DataLoaders (batched by ``collate`` when given); the training one shuffled,
    weighted or sharded as configured, or batched by ``batches`` (a batch sampler)."""
    sampler = make_sampler(labels, config.balance.sampling, None)
    size = config.optim.batch_size
    loaders = {name: DataLoader(datasets[name], batch_size=size, collate_fn=collate)
               for name in ("val", "test")}
    if batches is not None:
        if sampler is not None:
            raise ValueError(f"balance.sampling {config.balance.sampling!r} and "
                             f"optim.length_groups both choose the training batches; set one")
        return {"train": DataLoader(datasets["train"], batch_sampler=batches, collate_fn=collate),
                **loaders}
    if dist.enabled:
        if sampler is not None:
            raise ValueError("balance.sampling is not supported with torchrun; use "
                             "balance_source duplication or focal loss instead")
        sampler = DistributedSampler(datasets["train"], shuffle=True, seed=config.optim.seed)
    return {"train": DataLoader(datasets["train"], batch_size=size, sampler=sampler,
                                shuffle=sampler is None, drop_last=len(datasets["train"]) > size,
                                collate_fn=collate),
            **loaders}


@dataclass
class Fitted:
    """One fitted model (CPU-side module with the kept weights) and what made it."""

    model: nn.Module
    result: FitResult
    spec: object
    args: dict
    datasets: dict


def fit_on(config: TrainConfig, clips: ClipSet, splits: dict, dist: DistributedContext,
           checkpoint: Path, resume: bool, on_event: EventSink, select: bool = True) -> Fitted:
    """Build the kind's model and fit it on ``splits["train"]``, validating on
    ``splits["val"]`` (choosing the best epoch by it unless not ``select``)."""
    kind = get_kind(config.model)
    datasets, spec = make_datasets(config, clips, splits)
    loaders = make_loaders(config, datasets, clips.labels[splits["train"]], dist, kind.collate,
                           kind.train_batches(datasets["train"], config, dist))
    args = kind.train_arch_args(config, clips)
    raw_model = kind.build(args)
    kind.prepare_model(raw_model, config, on_event)
    model = dist.wrap(raw_model)
    optimizer = make_optimizer(model, config.optim)
    step = Step(kind, kind.output_classes(clips), partial(kind.model_input, spec=spec, device=dist.device),
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
                 checkpoint=checkpoint, resume=resume, is_main=dist.is_main,
                 on_epoch_start=on_epoch_start, on_event=on_event, select=select)
    raw_model.load_state_dict(result.best_state)
    return Fitted(raw_model, result, spec, args, datasets)


def train(config: TrainConfig, run_dir: Path, *, resume: bool, dist: DistributedContext,
          on_event: EventSink) -> Path | None:
    """Train, evaluate and register one model; returns the entry folder (rank 0).

    A clip classifier with a class in fewer than :data:`SMALL_CLASS` recordings
    is cross-validated instead (:func:`cross_validate_then_fit`): a split would
    starve its training set.
    """
    started = time.monotonic()
    torch.manual_seed(config.optim.seed)
    kind = get_kind(config.model)
    kind.check_config(config)                 # before minutes of feature extraction
    clips = load_clips(config, dist, on_event)
    if (not kind.reads_sentences and config.split.strategy in ("auto", "stratified")
            and fewest_recordings(clips.rows) < SMALL_CLASS):
        return cross_validate_then_fit(config, run_dir, clips, resume, dist, on_event, started)
    splits = split_clips(config, clips, run_dir)
    fitted = fit_on(config, clips, splits, dist, run_dir / "last.pt", resume, on_event)
    if not dist.is_main:
        return None
    card = make_card(config, run_dir, clips, splits, fitted, started, dist)
    card = kind.calibrate(card, fitted.model, fitted.datasets["val"], dist.device)
    return register(config, run_dir, card, clips, splits, fitted.datasets["test"], fitted.model,
                    fitted.result.history, dist.device, on_event)


def make_card(config: TrainConfig, run_dir: Path, clips: ClipSet, splits: dict, fitted: Fitted,
              started: float, dist: DistributedContext, **training) -> Card:
    """The card of a fitted model: how it was made (``training`` adds to that)."""
    history = fitted.result.history
    return Card(config.model, fitted.args, get_kind(config.model).output_classes(clips), fitted.spec,
                name=run_dir.name, data=data_summary(config, clips, splits),
                training={"config": asdict(config), "epochs_run": len(history.epochs),
                          "best_epoch": history.best_epoch,
                          "resumed_from": fitted.result.resumed_from,
                          "seconds": round(time.monotonic() - started, 1),
                          "device": str(dist.device), "world_size": dist.world_size,
                          "pretrained": config.pretrained,
                          **training})


def cross_validate_then_fit(config: TrainConfig, run_dir: Path, clips: ClipSet, resume: bool,
                            dist: DistributedContext, on_event: EventSink, started: float) -> Path | None:
    """Small data: every clip predicted by a model trained without it (k folds, every epoch
    run, nothing chosen on held-out clips) for the report, then one model fitted on all
    the clips for the entry. A resumed run keeps the folds it finished."""
    smallest = fewest_recordings(clips.rows)
    folds = cross_validation_folds(clips.rows, min(MAX_FOLDS, max(2, smallest)), config.split.seed)
    everything = np.arange(len(clips.labels))
    on_event({"event": "message", "text": f"a class has only {smallest} recording(s), too few to "
              f"hold some out: {len(folds)}-fold cross-validation, then one model fitted on all "
              f"{len(everything)} clips"})
    predictions, parts = [], len(folds) + 1
    for number, held in enumerate(folds, 1):
        in_fold = in_part(on_event, number, parts, fold=number, folds=len(folds))
        in_fold({"event": "message", "text": f"cross-validation fold {number} of {len(folds)}"})
        predictions.append(_fold_predictions(config, run_dir, number, clips, held, resume, dist,
                                             in_fold))
    in_whole = in_part(on_event, parts, parts)
    in_whole({"event": "message", "text": f"fitting on all {len(everything)} clips"})
    torch.manual_seed(config.optim.seed)
    whole = {"train": everything, "val": everything[:0], "test": everything[:0]}
    fitted = fit_on(config, clips, whole, dist, run_dir / "last.pt", resume, in_whole, select=False)
    if not dist.is_main:
        return None
    order = np.argsort(np.concatenate(folds))
    merged = Predictions(*(np.concatenate([getattr(p, name) for p in predictions])[order]
                           for name in ("probs", "labels", "embeddings")))
    evaluation = f"{len(folds)}-fold cross-validation"
    card = make_card(config, run_dir, clips, whole, fitted, started, dist, evaluation=evaluation,
                     folds=len(folds))
    card = replace(card, data={**card.data, "split": evaluation,
                               "summary": f"{len(everything)} clips of {len(clips.classes)} classes "
                                          f"from {config.data.videos}, {evaluation}, then "
                                          f"fitted on all"})
    # Each clip predicted by a model that never saw it: the held-apart clips to calibrate on,
    # and the report shows the confidences the entry will give.
    card = calibrated(card, merged.probs, merged.labels, f"out-of-fold predictions of {evaluation}")
    merged = replace(merged, probs=tempered(merged.probs, card.input.temperature))
    metrics, card, text = get_kind(config.model).report_predictions(
        run_dir / "reports", card, clips, everything, merged, fitted.result.history,
        config.targets, evaluation)
    return publish(config, run_dir, card, fitted.model, split_digests(clips.rows, {"train": everything}),
                   {"cross_validation": metrics, "targets": card.targets,
                    "history": fitted.result.history.epochs}, text, on_event)


def in_part(on_event: EventSink, part: int, parts: int, **where) -> EventSink:
    """``on_event`` with each event marked as fit ``part`` of the run's ``parts`` (and with
    ``where``, e.g. the fold), so that progress counts the whole run."""
    return lambda event: on_event({**event, "part": part, "parts": parts, **where})


def _fold_predictions(config: TrainConfig, run_dir: Path, number: int, clips: ClipSet,
                      held: np.ndarray, resume: bool, dist: DistributedContext,
                      on_event: EventSink) -> Predictions:
    """The held-out clips' predictions by a model fitted on the others (kept in the run
    folder, so a resumed run does not fit that fold again)."""
    stem = run_dir / f"fold{number}"
    saved = stem.with_suffix(".npz")
    if resume and saved.is_file():
        with np.load(saved) as data:
            return Predictions(data["probs"], data["labels"], data["embeddings"])
    torch.manual_seed(config.optim.seed * 1000 + number)
    splits = {"train": np.setdiff1d(np.arange(len(clips.labels)), held), "val": held, "test": held}
    fitted = fit_on(config, clips, splits, dist, stem.with_suffix(".pt"), resume, on_event, select=False)
    card = Card(config.model, fitted.args, get_kind(config.model).output_classes(clips), fitted.spec)
    result = predict_with_embeddings(fitted.model, card, fitted.datasets["test"], dist.device)
    with atomic_output(saved) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, probs=result.probs, labels=result.labels, embeddings=result.embeddings)
    return result


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
    private_dirs(folder)
    metrics, card, text = get_kind(card.kind).report(
        folder, card, clips, np.asarray(splits["test"]), model, test_set, device, history,
        config.targets)
    report = {"test": metrics, "targets": card.targets, "history": history.epochs,
              "best_epoch": history.best_epoch}
    return publish(config, run_dir, card, model, split_digests(clips.rows, splits), report,
                   text, on_event)


def publish(config: TrainConfig, run_dir: Path, card: Card, model: nn.Module, digests: dict,
            report: dict, text: str, on_event: EventSink) -> Path:
    """Write ``final_report.json`` (``report`` with the card's data and training), the
    registry entry with every file of ``run_dir/reports`` and the clips' ``digests``;
    activate it if its kind has no active entry and it is not measured no better than
    chance (:func:`training.verdict.beats_chance`); announce it with ``text``."""
    folder = run_dir / "reports"
    reports.write_json(folder / "final_report.json",
                       {"name": card.name, **report, "data": card.data, "training": card.training})
    files = {p.name: p for p in sorted(folder.iterdir()) if not p.name.startswith(".")}
    if (run_dir / "split_analysis.json").is_file():
        files["split_analysis.json"] = run_dir / "split_analysis.json"
    files[registry.CLIPS_FILE] = json.dumps(digests).encode()
    root = repo_path(config.registry)
    entry = registry.write_entry(root, card.name, model, card, files)
    if registry.active_entry(root, config.model) is None:
        if beats_chance(Measured.of_card(card)) is False:
            text += (f" -- not made the {config.model} in use: no better than chance "
                     f"(python -m training.registry activate {card.name} uses it anyway)")
        else:
            registry.activate(root, card.name)
    write_text_atomic(run_dir / "entry.txt", str(entry))
    on_event({"event": "done", "entry": str(entry), **card.metrics,
              "text": f"registered {entry} -- {text}"})
    return entry
