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
from training import reports
from training.card import Card
from training.config import TrainConfig, repo_path
from training.data import ClipSet
from training.distributed import DistributedContext
from training.evaluate import Predictions, write_reports
from training.kinds.base import EventSink
from training.kinds.few_shot import Enrolment, enrol, few_shot_card, load_reader, reader_path
from training.splits import split_digests
from training.trainer import data_summary, load_clips, publish


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
    reader = load_reader(reader_path(root, config.pretrained), dist.device)
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
