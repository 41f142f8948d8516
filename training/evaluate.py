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
