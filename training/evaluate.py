"""Evaluate a model on clips and write its reports; also a CLI for registry entries.

    python -m training.evaluate ENTRY --videos DIR [--compare ENTRY2] [--out DIR]
    python -m training.evaluate SENTENCE_ENTRY --videos DIR [--phrases a,b,c | --phrases FILE]

A classifier entry reports accuracy, top-3 and macro-F1 on the clips whose
label it knows. A sentence reader (``landmark_ctc``) prints ``WER x, CER y``
on the clips' transcripts; with ``--phrases`` it chooses each clip's phrase
among those (one a line in FILE) and prints accuracy and top-3.

The same functions write the reports of a freshly trained entry
(``training.run``) and of an existing entry on other data.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from features.files import private_dirs
from training import reports
from training.card import Card
from training.data import ClipSet
from training.kinds import get_kind
from training.registry import read_card


@dataclass
class Predictions:
    """Probabilities (N, K), labels (N,), penultimate features (N, D), in dataset order."""

    probs: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray


@torch.no_grad()
def predict_with_embeddings(model, card: Card, dataset: Dataset, device: torch.device,
                            batch_size: int = 32) -> Predictions:
    """Predictions of ``model`` (as ``card`` describes it, its calibration included) over an
    un-augmented ``dataset``."""
    kind = get_kind(card.kind)
    model.eval()
    probs, labels, feats = [], [], []
    for inputs, batch_labels in DataLoader(dataset, batch_size=batch_size, collate_fn=kind.collate):
        logits, features = kind.logits_and_embeddings(model, kind.model_input(inputs, card.input, device))
        probs.append(kind.probabilities(logits, card.input).cpu().numpy())
        feats.append(features.float().cpu().numpy())
        labels.append(batch_labels.numpy())
    return Predictions(np.concatenate(probs), np.concatenate(labels), np.concatenate(feats))


def _preview(card: Card, clips: ClipSet, index: np.ndarray) -> tuple[list, list]:
    kind = get_kind(card.kind)
    picks = index[:4]
    titles = [f"{clips.rows['clip'].iloc[i]} ({card.classes[clips.labels[i]]})" for i in picks]
    return [kind.preview_frames(clips.examples[i], clips.names) for i in picks], titles


def write_reports(folder: Path, card: Card, clips: ClipSet, test_index: np.ndarray,
                  predictions: Predictions, history: list[dict] | None = None) -> dict:
    """Metrics and every plot of ``predictions`` on ``clips[test_index]`` into ``folder``."""
    private_dirs(folder)
    classes = list(card.classes)
    probs, labels = predictions.probs, predictions.labels
    metrics = reports.classification_metrics(probs, labels, classes)
    reports.plot_confusion(labels, probs.argmax(1), classes, folder / "confusion_matrix.png")
    reports.plot_roc(probs, labels, classes, folder / "roc_curves.png")
    if history:
        reports.plot_learning_curves(history, folder / "learning_curves.png")
    if len(labels) >= 3:
        reports.plot_embedding(predictions.embeddings, labels, classes, folder / "embedding.png")
    curves, names = get_kind(card.kind).class_curves(clips.examples[test_index], clips.names)
    reports.plot_class_curves(curves, labels, classes, names, folder / "class_feature_curves.png")
    frames, titles = _preview(card, clips, test_index)
    reports.plot_preview(frames, titles, folder / "preview.png")
    reports.write_preview_gif(frames, titles, folder / "preview.gif")
    return metrics


def evaluate_entry(entry_path: Path, videos: Path, cache_dir: Path, workers: int = 2,
                   on_event=None):
    """Predictions of a registry entry on every clip of ``videos`` whose label it knows.

    Returns (loaded entry, clip set relabelled to the entry's classes,
    predictions, labels left out because the entry does not know them).
    ``on_event`` receives the feature extraction's progress events.
    """
    from features.cache import FeatureCache
    from features.dataset import build_manifest
    from features.progress import stage_progress
    from training.data import load_dataset
    from training.registry import load_entry

    loaded = load_entry(entry_path)
    card = loaded.card
    kind = get_kind(card.kind)
    kind.check_spec(card.input, f"registry entry {loaded.name} ({entry_path})")
    manifest = build_manifest(videos)
    known = manifest["label"].isin(card.classes)
    skipped = sorted(set(manifest.loc[~known, "label"]))
    if not known.any():
        raise ValueError(f"{videos}: none of its labels {sorted(set(manifest['label']))} is a class "
                         f"of {loaded.name} ({', '.join(card.classes)})")
    manifest = manifest[known].reset_index(drop=True)
    progress = stage_progress(on_event, "extract", len(manifest)) if on_event else None
    clips = load_dataset(manifest, FeatureCache(cache_dir), card.kind, card.input, workers, progress)
    labels = np.array([card.classes.index(clips.classes[i]) for i in clips.labels])
    clips = replace(clips, labels=labels, classes=card.classes)
    dataset = kind.dataset(clips.examples, labels, card.input)
    predictions = predict_with_embeddings(loaded.model, card, dataset, loaded.device)
    return loaded, clips, predictions, skipped


def seen_in_training(entry_path: Path, clip_paths) -> int | None:
    """How many of ``clip_paths`` (by content) ``entry_path`` was trained or validated on;
    None when the entry does not record its clips."""
    from features.cache import file_digest
    from training.registry import training_digests

    seen = training_digests(entry_path)
    if seen is None:
        return None
    return sum(file_digest(path) in seen for path in clip_paths)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from features.progress import add_common_flags
    from training.config import ROOT

    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", type=Path, help="registry entry folder (or a name under --registry)")
    parser.add_argument("--videos", type=Path, required=True, help="clips to evaluate on")
    parser.add_argument("--compare", type=Path, help="a second entry: McNemar's test between the two")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<entry>-on-<videos>)")
    parser.add_argument("--phrases", help="sentence readers: score the clips against these phrases "
                                          "(a,b,c or a file with one phrase a line)")
    add_common_flags(parser, cache=ROOT / ".cache" / "features", registry=ROOT / "models")
    return parser.parse_args(argv)


def _entry_path(value: Path, registry_root: Path) -> Path:
    """An entry's folder from a path, or from a name in the registry (its own entries, then
    those shipped with the app, as ``training.registry list`` shows them)."""
    from training.registry import entry_path

    path = value
    if not value.is_dir():
        try:
            path = entry_path(registry_root, str(value))
        except (FileNotFoundError, ValueError):
            path = registry_root / value
    if not (path / "card.json").is_file():
        raise FileNotFoundError(f"{value}: no registry entry there (python -m training.registry list)")
    return path


def main(argv: list[str] | None = None) -> int:
    from features.progress import ProgressOutput
    from training.config import ROOT

    args = parse_args(argv)
    with ProgressOutput(args.events, progress=not args.no_progress) as output:
        try:
            entry = _entry_path(args.entry, args.registry)
            if get_kind(read_card(entry).kind).reads_sentences:
                return _evaluate_reader(args, entry, ROOT, output)
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return _evaluate(args, ROOT, output)


def _evaluate_reader(args: argparse.Namespace, entry: Path, root: Path, output) -> int:
    """A sentence reader on ``--videos``: its transcripts, or its choices among ``--phrases``."""
    from training.sentence_reports import (DECODINGS, evaluate_sentences, read_phrases,
                                           score_phrase_list)

    out = args.out or root / "reports" / f"{entry.name}-on-{args.videos.resolve().name}"
    if args.phrases:
        result = score_phrase_list(entry, args.videos, args.cache, read_phrases(args.phrases), output)
        reports.write_json(out / "phrase_list.json", result)
        print(f"{result['entry']} on {args.videos} choosing among {len(result['phrases'])} phrases: "
              f"accuracy {result['accuracy']:.3f}, top-3 {result['top3_accuracy']:.3f} "
              f"(n={result['n']}, {result['left_out']} clips say none of them)")
    else:
        result = evaluate_sentences(entry, args.videos, args.cache, out, output)
        reports.write_json(out / "evaluation.json", result)
        for name in DECODINGS:
            if name in result:
                m = result[name]
                print(f"{result['entry']} on {args.videos} ({name}): WER {m['wer']:.3f}, "
                      f"CER {m['cer']:.3f}, sentences right {m['sentence_accuracy']:.3f} (n={m['n']})")
        for path, reason in result["skipped"].items():
            print(f"skipped {path}: {reason}", file=sys.stderr)
    seen = seen_in_training(entry, _clip_paths(args.videos))
    if seen:
        print(f"warning: {seen} clips were used to train or validate {entry.name}, so these "
              "figures overstate how it does on new clips", file=sys.stderr)
    print(f"reports in {out}")
    return 0


def _clip_paths(videos: Path) -> list[str]:
    from features.dataset import build_manifest

    return list(build_manifest(videos)["path"])


def _evaluate(args: argparse.Namespace, root: Path, output) -> int:
    try:
        first = _entry_path(args.entry, args.registry)
        loaded, clips, predictions, skipped = evaluate_entry(first, args.videos, args.cache,
                                                             on_event=output)
        out = args.out or root / "reports" / f"{loaded.name}-on-{args.videos.resolve().name}"
        index = np.arange(len(clips.labels))
        metrics = write_reports(out, loaded.card, clips, index, predictions)
        seen = seen_in_training(first, clips.rows["path"])
        report = {"entry": loaded.name, "videos": str(args.videos), "test": metrics,
                  "skipped_labels": skipped, "clips_seen_in_training": seen}
        if args.compare:
            other, other_clips, other_predictions, _ = evaluate_entry(
                _entry_path(args.compare, args.registry), args.videos, args.cache)
            if list(other_clips.rows["path"]) != list(clips.rows["path"]):
                raise ValueError(f"{other.name} and {loaded.name} were evaluated on different clips "
                                 "(their classes differ); McNemar needs the same clips")
            report["compare"] = {"entry": other.name, "mcnemar": reports.mcnemar(
                predictions.probs.argmax(1) == predictions.labels,
                other_predictions.probs.argmax(1) == other_predictions.labels),
                "accuracy": float(np.mean(other_predictions.probs.argmax(1) == other_predictions.labels))}
        reports.write_json(out / "evaluation.json", report)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{loaded.name} on {args.videos}: accuracy {metrics['accuracy']:.3f}, top-3 "
          f"{metrics['top3_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} (n={metrics['n']})"
          + (f"; skipped labels {skipped}" if skipped else ""))
    if "compare" in report:
        c = report["compare"]
        print(f"vs {c['entry']}: accuracy {c['accuracy']:.3f}, McNemar p = {c['mcnemar']['p_value']:.3g}")
    if seen:
        print(f"warning: {seen} of {metrics['n']} clips were used to train or validate "
              f"{loaded.name}, so these figures overstate how it does on new clips; "
              "evaluate on clips it has not seen", file=sys.stderr)
    print(f"reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
