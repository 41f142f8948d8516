"""A few-shot entry from the clip folder: no epochs, one pass, a leave-one-out report.

``python -m training.run --model few_shot --videos DIR [--pretrained READER]``
comes here instead of the epoch loop (the kind's ``trains_by_epochs`` is
False). Every clip is a sample: there is no split to starve, and the report
is leave-one-out (each sample classified against prototypes made without it),
said as such in ``TRAINING_SUMMARY.md``. The encoder is ``--pretrained`` (a
``landmark_ctc`` entry's folder or name), else the registry's active sentence
reader, else the newest one (the shipped one on a fresh clone, or with a
registry of one's own).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from features.files import private_dirs, write_text_atomic
from training import registry, reports
from training.card import Card, check_extractor
from training.config import TrainConfig, repo_path
from training.data import ClipSet
from training.distributed import DistributedContext
from training.evaluate import Predictions, write_reports
from training.kinds.base import EventSink
from training.kinds.few_shot import READER_KIND, Enrolment, enrol
from training.splits import split_digests
from training.trainer import data_summary, load_clips, publish


def reader_path(root: str | Path, pretrained: str | None) -> Path:
    """The sentence reader a few-shot entry embeds with: ``pretrained`` (a folder, or an
    entry name of ``root``), else the active ``landmark_ctc`` entry, else the newest one."""
    if pretrained:
        path = Path(pretrained)
        for folder in (root, registry.DEFAULT_ROOT):     # the app's shipped readers too
            if path.is_dir():
                break
            try:
                path = registry.entry_path(folder, pretrained)
            except (FileNotFoundError, ValueError):
                continue
        if not path.is_dir():
            known = sorted({e.name for folder in (root, registry.DEFAULT_ROOT)
                            for e in registry.list_entries(folder) if e.card.kind == READER_KIND})
            raise FileNotFoundError(f"--pretrained {pretrained!r}: no such folder or sentence "
                                    f"reader entry; the sentence readers here: {known or 'none'} "
                                    "(python -m training.registry list)")
    else:
        path = registry.active_entry(root, READER_KIND)
        if path is None:
            # A registry of one's own (--registry) still has the readers that ship with the app.
            readers = [e.path for folder in (root, registry.DEFAULT_ROOT)
                       for e in registry.list_entries(folder) if e.card.kind == READER_KIND]
            if not readers:
                raise FileNotFoundError(f"{root}: no sentence reader (landmark_ctc entry) to embed "
                                        "samples with; train one or give --pretrained ENTRY")
            path = readers[-1]
    card = registry.read_card(path)
    if card.kind != READER_KIND:
        raise ValueError(f"{path}: a {card.kind} entry; few_shot embeds with a {READER_KIND} entry")
    return path


def class_texts(clips: ClipSet) -> tuple[str, ...]:
    """Per class (``clips.classes`` order), the transcript most of its clips have."""
    rows = clips.rows
    return tuple(str(rows.loc[rows["label"] == label, "text"].mode().iloc[0]) for label in clips.classes)


def enrol_run(config: TrainConfig, run_dir: Path, *, resume: bool, dist: DistributedContext,
              on_event: EventSink) -> Path | None:
    """Enrol every clip of ``config.data.videos`` and register the entry (rank 0 only)."""
    if dist.enabled:
        raise ValueError("few_shot trains nothing and needs no torchrun: run it as one process")
    started = time.monotonic()
    root = repo_path(config.registry)
    reader = registry.load_entry(reader_path(root, config.pretrained), dist.device)
    check_extractor(reader.card, f"sentence reader {reader.name} ({reader.path})")
    clips = load_clips(config, dist, on_event, spec=reader.card.input)
    if len(clips.classes) < 2:
        raise ValueError(f"{config.data.videos}: samples of one phrase only ({clips.classes[0]!r}); "
                         "a few-shot recogniser chooses between phrases: record at least one "
                         "sample of a second phrase")
    on_event({"event": "message", "text": f"embedding {len(clips.labels)} samples with {reader.name}"})
    result = enrol(reader, clips.examples, clips.labels, class_texts(clips))
    everything = {"train": np.arange(len(clips.labels))}
    data = {**data_summary(config, clips, everything), "split": "none: every clip is a sample",
            "summary": f"{len(clips.labels)} samples of {len(clips.classes)} phrases from "
                       f"{config.data.videos}, every one enrolled"}
    card = few_shot_card(reader, result, clips.classes, clips.labels, data, started, run_dir.name)
    metrics, card, text = loo_report(run_dir / "reports", card, clips, result, config.targets)
    return publish(config, run_dir, card, result.model, split_digests(clips.rows, everything),
                   {"leave_one_out": metrics, "targets": card.targets}, text, on_event)


def few_shot_card(reader, result: Enrolment, classes: tuple[str, ...], labels: np.ndarray,
                  data: dict, started: float, name: str = "") -> Card:
    """The card of an enrolment: its encoder, calibration and leave-one-out figures."""
    calibration = result.calibration
    return Card("few_shot", result.arch_args, tuple(classes), reader.card.input, name=name,
                data={"extractor": reader.card.data.get("extractor"), **data},
                training={"method": "prototype", "encoder": reader.name,
                          "encoder_created_at": reader.card.created_at, "epochs_run": 0,
                          "seconds": round(time.monotonic() - started, 2),
                          "calibration": {
                              "temperature": calibration.temperature,
                              "ctc_weight": calibration.ctc_weight,
                              "by": ("leave-one-out" if calibration.fitted
                                     else "default (no phrase has 2 samples yet)"),
                              "scored_by_ctc": [t for t in result.texts if t]}},
                metrics=loo_metrics(classes, labels, result))


def loo_metrics(classes: tuple[str, ...], labels: np.ndarray, result: Enrolment) -> dict:
    """Leave-one-out accuracy and top-3 over the samples it can test, and per phrase its
    samples and the accuracy to expect (None: it needs a second sample to tell)."""
    calibration = result.calibration
    tested = calibration.evaluated
    counts = np.bincount(labels, minlength=len(classes))
    per_class = {c: {"samples": int(counts[k]),
                     "expected_accuracy": (None if np.isnan(calibration.per_class[k])
                                           else round(float(calibration.per_class[k]), 4))}
                 for k, c in enumerate(classes)}
    metrics = {"evaluation": "leave-one-out", "samples": int(len(labels)), "tested": int(len(tested)),
               "accuracy": calibration.accuracy, "top3_accuracy": None, "per_class": per_class}
    if len(tested):
        metrics["top3_accuracy"] = reports.top_k_accuracy(calibration.probabilities[tested],
                                                          labels[tested], 3)
    return metrics


def loo_report(folder: Path, card: Card, clips: ClipSet, result: Enrolment, targets: dict):
    """Leave-one-out metrics and plots in ``folder``; (metrics, card with them, a line)."""
    private_dirs(folder)
    tested = result.calibration.evaluated
    metrics = dict(card.metrics)
    if len(tested):
        predictions = Predictions(result.calibration.probabilities[tested], clips.labels[tested],
                                  result.embeddings[tested])
        metrics.update(write_reports(folder, card, clips, tested, predictions))
        metrics["per_class"] = card.metrics["per_class"]
        card = replace(card, targets=reports.targets_met(metrics, targets),
                       metrics={**card.metrics, "macro_f1": metrics["macro_f1"]})
    write_text_atomic(folder / "TRAINING_SUMMARY.md", summary_markdown(card, metrics))
    if not len(tested):
        return metrics, card, (f"{len(clips.labels)} samples enrolled; record a second sample "
                               "of a phrase to measure it")
    return metrics, card, (f"leave-one-out accuracy {metrics['accuracy']:.3f} over "
                           f"{len(tested)} samples (top-3 {metrics['top3_accuracy']:.3f})")


def summary_markdown(card: Card, metrics: dict) -> str:
    """``TRAINING_SUMMARY.md`` of a few-shot entry."""
    calibration = card.training["calibration"]
    lines = [f"# {card.name}", "",
             f"- kind: `few_shot` (prototypes over the encoder of `{card.training['encoder']}`; "
             "nothing trained)",
             f"- data: {card.data.get('summary', '')}",
             "- evaluation: **leave-one-out**, not a held-out test split: each sample is named "
             "by prototypes made without it; every sample is enrolled in the entry",
             f"- calibration: temperature {calibration['temperature']:.4f}, CTC weight "
             f"{calibration['ctc_weight']} ({calibration['by']}); phrases also scored by the "
             f"reader's CTC: {', '.join(calibration['scored_by_ctc']) or 'none'}"]
    if metrics["tested"]:
        lines.append(f"- accuracy {metrics['accuracy']:.3f} (95% CI {metrics['accuracy_ci95'][0]:.3f}"
                     f"-{metrics['accuracy_ci95'][1]:.3f}), top-3 {metrics['top3_accuracy']:.3f}, "
                     f"over {metrics['tested']} of {metrics['samples']} samples")
    lines += ["", "## Per phrase", "", "| phrase | samples | expected accuracy |", "|---|---|---|"]
    for phrase, row in metrics["per_class"].items():
        expected = row["expected_accuracy"]
        shown = "needs a 2nd sample" if expected is None else f"{expected:.2f}"
        lines.append(f"| {phrase} | {row['samples']} | {shown} |")
    if card.targets:
        lines += ["", "## Targets (leave-one-out)", ""]
    for name, verdict in card.targets.items():
        mark = "achieved" if verdict["achieved"] else "NOT achieved"
        lines.append(f"- target {name} >= {verdict['target']}: {verdict['value']:.3f} -- {mark}")
    return "\n".join(lines) + "\n"
