"""What the clip classifiers share: one label per clip, cross-entropy, accuracy, their reports.

:class:`ClassifierKind` is the training objective, validation and reports of
every kind that names a whole clip as one of its classes (``landmark_cnn``,
``r2plus1d``); a kind module adds its model and how a clip becomes its input.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from features.files import write_text_atomic
from training.kinds.base import ModelKind


def selection_score(val: dict) -> float:
    """How epochs are ranked: validation accuracy, ties broken by macro-F1."""
    return val["accuracy"] + 1e-3 * val["macro_f1"]


class ClassifierKind(ModelKind):
    """A kind whose model maps a clip to (N, len(classes)) logits."""

    def targets(self, clips, classes) -> np.ndarray:
        return clips.labels

    def score_clip(self, model, batch, card, phrases=None):
        if phrases is not None:
            raise ValueError(f"{card.name} ({self.name}) names its own classes; it cannot "
                             "score a phrase list (a sentence reader, landmark_ctc, can)")
        return card.classes, torch.softmax(model(batch).float(), dim=1)[0].cpu().numpy()

    def loss_function(self, config) -> nn.Module:
        from training.balance import FocalLoss

        if config.balance.loss == "focal":
            return FocalLoss(config.balance.focal_gamma, label_smoothing=config.optim.label_smoothing)
        if config.balance.loss != "cross_entropy":
            raise ValueError(f"balance.loss {config.balance.loss!r}: choose cross_entropy or focal")
        return nn.CrossEntropyLoss(label_smoothing=config.optim.label_smoothing)

    def batch_loss(self, model, inputs, targets, loss_fn):
        logits = model(inputs)
        correct = int((logits.argmax(1) == targets).sum())
        return loss_fn(logits.float(), targets), correct, len(targets)

    @torch.no_grad()
    def predict(self, model, loader, step) -> tuple[np.ndarray, np.ndarray]:
        """Softmax probabilities (N, K) and labels (N,) over a loader, in loader order."""
        model.eval()
        probs, labels = [], []
        for inputs, batch_labels in loader:
            with step.autocast():
                logits = model(step.to_input(inputs))
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            labels.append(batch_labels.numpy())
        if not probs:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.concatenate(probs), np.concatenate(labels)

    def validate(self, model, loader, step) -> dict:
        """Loss, accuracy and macro-F1 over a loader."""
        from sklearn.metrics import f1_score

        probs, labels = self.predict(model, loader, step)
        if len(labels) == 0:
            return {"loss": float("nan"), "accuracy": float("nan"), "macro_f1": float("nan")}
        log_probs = torch.log(torch.as_tensor(probs).clamp_min(1e-12))
        loss = float(nn.functional.nll_loss(log_probs, torch.as_tensor(labels)))
        predicted = probs.argmax(1)
        return {"loss": loss, "accuracy": float((predicted == labels).mean()),
                "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0))}

    def score(self, val: dict) -> float:
        return selection_score(val)

    def report(self, folder: Path, card, clips, test_index: np.ndarray, model, test_set,
               device, history, targets: dict):
        """Test metrics and every report of the test split in ``folder``; returns the card
        with its metrics and the line that announces the entry."""
        from training.evaluate import predict_with_embeddings

        predictions = predict_with_embeddings(model, card, test_set, device)
        return self.report_predictions(folder, card, clips, test_index, predictions, history,
                                       targets, "test")

    def report_predictions(self, folder: Path, card, clips, index: np.ndarray, predictions,
                           history, targets: dict, evaluation: str):
        """:meth:`report` of ``predictions`` of ``clips[index]``, made as ``evaluation`` says
        (``test``: the test split; or how else, e.g. ``5-fold cross-validation``)."""
        from training import reports
        from training.evaluate import write_reports

        metrics = write_reports(folder, card, clips, index, predictions, history.epochs)
        verdicts = reports.targets_met(metrics, targets)
        card = replace(card, targets=verdicts, metrics={
            "accuracy": metrics["accuracy"], "top3_accuracy": metrics["top3_accuracy"],
            "macro_f1": metrics["macro_f1"], "val_accuracy": history.best.get("val_accuracy"),
            "val_macro_f1": history.best.get("val_macro_f1"), "test_clips": metrics["n"],
            "evaluation": evaluation})
        write_text_atomic(folder / "TRAINING_SUMMARY.md",
                          reports.summary_markdown(card, metrics, verdicts, evaluation))
        text = (f"{evaluation} accuracy {metrics['accuracy']:.3f}, top-3 "
                f"{metrics['top3_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        return metrics, card, text
