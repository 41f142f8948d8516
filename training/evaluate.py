"""Evaluate a model on clips and write its reports; also a CLI for registry entries.

    python -m training.evaluate ENTRY --videos DIR [--compare ENTRY2] [--out DIR]

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

from training import reports
from training.config import DataConfig
from training.data import ClipSet, CropDataset, LandmarkDataset
from training.engine import model_input
from training.models import embed

CURVE_CHANNELS = ("inner_mar", "mouth_width", "jawOpen", "inner_area")


def input_spec(kind: str, data: DataConfig) -> dict:
    """The card's description of what the model is fed."""
    if kind == "landmark_cnn":
        return {"sequence_length": data.sequence_length, "velocities": data.velocities,
                "max_gap": 3}
    return {"crop_frames": data.crop_frames, "crop_size": data.crop_size, "channels": 3}


def data_config_for(card: dict, base: DataConfig = DataConfig()) -> DataConfig:
    """A DataConfig that prepares clips exactly as the entry was trained."""
    spec = card["input"]
    if card["kind"] == "landmark_cnn":
        return replace(base, sequence_length=spec["sequence_length"], velocities=spec["velocities"])
    return replace(base, crop_frames=spec["crop_frames"], crop_size=spec["crop_size"])


def eval_dataset(card: dict, clips: ClipSet, labels: np.ndarray) -> Dataset:
    """The un-augmented dataset of ``clips`` as the entry expects it (normalised with its statistics)."""
    if card["kind"] == "landmark_cnn":
        if tuple(clips.names) != tuple(card["feature_names"]):
            raise ValueError(f"entry {card['name']}: its features {len(card['feature_names'])} "
                             f"differ from the clips' {len(clips.names)}; re-extract the clips")
        norm = card["normalisation"]
        return LandmarkDataset(clips.sequences, labels, clips.names,
                               np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32))
    return CropDataset(clips.crops, labels)


@dataclass
class Predictions:
    """Probabilities (N, K), labels (N,), penultimate features (N, D), in dataset order."""

    probs: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray


@torch.no_grad()
def predict_with_embeddings(model, kind: str, dataset: Dataset, device: torch.device,
                            batch_size: int = 32) -> Predictions:
    model.eval()
    probs, labels, feats = [], [], []
    for inputs, batch_labels in DataLoader(dataset, batch_size=batch_size):
        x = model_input(kind, inputs, device)
        features = embed(model, x)
        probs.append(torch.softmax(model.fc(features).float(), 1).cpu().numpy())
        feats.append(features.float().cpu().numpy())
        labels.append(batch_labels.numpy())
    return Predictions(np.concatenate(probs), np.concatenate(labels), np.concatenate(feats))


def _class_curves(card: dict, clips: ClipSet, index: np.ndarray):
    if card["kind"] == "landmark_cnn":
        names = [n for n in CURVE_CHANNELS if n in clips.names]
        channels = [clips.names.index(n) for n in names]
        return clips.sequences[index][:, channels], names
    crops = clips.crops[index].astype(np.float32)
    motion = np.abs(np.diff(crops, axis=1)).mean(axis=(2, 3))
    return np.concatenate([np.zeros((len(crops), 1)), motion], axis=1)[:, None], ["mouth motion"]


def _preview(card: dict, clips: ClipSet, index: np.ndarray, classes) -> tuple[list, list]:
    picks = index[:4]
    titles = [f"{clips.rows['clip'].iloc[i]} ({classes[clips.labels[i]]})" for i in picks]
    if card["kind"] == "r2plus1d":
        return [clips.crops[i] for i in picks], titles
    lips = [j for j, n in enumerate(clips.names) if n.startswith("lip") and n.endswith("_x")]
    frames = []
    for i in picks:
        x = clips.sequences[i][lips]
        y = clips.sequences[i][[j + 1 for j in lips]]
        frames.append(np.stack([_draw_points(x[:, t], y[:, t]) for t in range(x.shape[1])]))
    return frames, titles


def _draw_points(x: np.ndarray, y: np.ndarray, size: int = 64) -> np.ndarray:
    """The lip points of one time step as a small (size, size) image."""
    image = np.zeros((size, size), np.uint8)
    cols = np.clip(np.round(size / 2 + x * size * 1.2), 0, size - 1).astype(int)
    rows = np.clip(np.round(size / 2 + y * size * 1.2), 0, size - 1).astype(int)
    image[rows, cols] = 255
    return image


def write_reports(folder: Path, card: dict, clips: ClipSet, test_index: np.ndarray,
                  predictions: Predictions, history: list[dict] | None = None) -> dict:
    """Metrics and every plot of ``predictions`` on ``clips[test_index]`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = list(card["classes"])
    probs, labels = predictions.probs, predictions.labels
    metrics = reports.classification_metrics(probs, labels, classes)
    reports.plot_confusion(labels, probs.argmax(1), classes, folder / "confusion_matrix.png")
    reports.plot_roc(probs, labels, classes, folder / "roc_curves.png")
    if history:
        reports.plot_learning_curves(history, folder / "learning_curves.png")
    if len(labels) >= 3:
        reports.plot_embedding(predictions.embeddings, labels, classes, folder / "embedding.png")
    curves, names = _class_curves(card, clips, test_index)
    reports.plot_class_curves(curves, labels, classes, names, folder / "class_feature_curves.png")
    frames, titles = _preview(card, clips, test_index, classes)
    reports.plot_preview(frames, titles, folder / "preview.png")
    return metrics


def evaluate_entry(entry_path: Path, videos: Path, cache_dir: Path, workers: int = 2):
    """Predictions of a registry entry on every clip of ``videos`` whose label it knows.

    Returns (loaded entry, clip set relabelled to the entry's classes,
    predictions, labels left out because the entry does not know them).
    """
    from features.cache import FeatureCache
    from features.dataset import build_manifest
    from training.data import load_dataset
    from training.registry import load_entry

    loaded = load_entry(entry_path)
    card = loaded.card
    manifest = build_manifest(videos)
    known = manifest["label"].isin(card["classes"])
    if not known.any():
        raise ValueError(f"{videos}: none of its labels {sorted(set(manifest['label']))} is a class "
                         f"of {loaded.name} ({', '.join(card['classes'])})")
    config = replace(data_config_for(card), workers=workers)
    clips = load_dataset(manifest[known].reset_index(drop=True), FeatureCache(cache_dir),
                         config, card["kind"])
    labels = np.array([card["classes"].index(clips.classes[i]) for i in clips.labels])
    clips = replace(clips, labels=labels, classes=tuple(card["classes"]))
    predictions = predict_with_embeddings(loaded.model, card["kind"],
                                          eval_dataset(card, clips, labels), loaded.device)
    skipped = sorted(set(manifest.loc[~known, "label"]))
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
    from training.config import ROOT

    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", type=Path, help="registry entry folder (or a name under --registry)")
    parser.add_argument("--videos", type=Path, required=True, help="clips to evaluate on")
    parser.add_argument("--compare", type=Path, help="a second entry: McNemar's test between the two")
    parser.add_argument("--registry", type=Path, default=ROOT / "models")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "features")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<entry>-on-<videos>)")
    return parser.parse_args(argv)


def _entry_path(value: Path, registry_root: Path) -> Path:
    path = value if value.is_dir() else registry_root / value
    if not (path / "card.json").is_file():
        raise FileNotFoundError(f"{value}: no registry entry there (python -m training.registry list)")
    return path


def main(argv: list[str] | None = None) -> int:
    from training.config import ROOT

    args = parse_args(argv)
    try:
        first = _entry_path(args.entry, args.registry)
        loaded, clips, predictions, skipped = evaluate_entry(first, args.videos, args.cache)
        out = args.out or ROOT / "reports" / f"{loaded.name}-on-{args.videos.resolve().name}"
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
