"""What the clip classifiers share: one label per clip, cross-entropy, accuracy, their reports.

:class:`ClassifierKind` is the training objective, validation, calibration and
reports of every kind that names a whole clip as one of its classes
(``landmark_cnn``, ``r2plus1d``); a kind module adds its model and how a clip
becomes its input.

A trained network's softmax is not the odds of being right: a 1D-CNN right on 30 %
of the clips of 3 phrases it never saw said 99 % of each. Its confidences are
calibrated by temperature scaling on clips held apart from its training
(:func:`fit_temperature`): the validation split, or with few clips the out-of-fold
predictions of cross-validation. The card keeps the temperature (its input spec's
``temperature``; 1 in cards from before) and :meth:`ClassifierKind.probabilities`
applies it wherever the model's probabilities are read, the app's predictor
included. A model near chance on its held-apart clips gets a temperature that
flattens it to near chance.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from features.files import write_text_atomic
from training.kinds.base import ModelKind

# Temperatures tried: from sharpening by 4 to flattening a model that knows nothing to
# practically even odds (logits 30 apart end up 0.03 apart).
TEMPERATURES = np.geomspace(0.25, 1000.0, 61)
# A pull against sharpening (temperatures below 1), worth this many clips' log-loss: a
# few held-apart clips that happen to be read right must not make the model sure of all.
SHARPEN_PRIOR = 3.0


def selection_score(val: dict) -> float:
    """How epochs are ranked: validation accuracy, ties broken by macro-F1."""
    return val["accuracy"] + 1e-3 * val["macro_f1"]


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K) probabilities as the model gives them at ``temperature``: softmax(log p / T),
    which is softmax(logits / T) of the logits that gave ``probs``."""
    from scipy.special import softmax

    return softmax(np.log(np.clip(np.asarray(probs, np.float64), 1e-30, 1.0)) / temperature,
                   axis=1)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (of :data:`TEMPERATURES`) of least log-loss of ``labels`` (N,) under
    ``probs`` (N, K) of held-apart clips, pulled against sharpening by
    :data:`SHARPEN_PRIOR`; 1 without clips."""
    from scipy.special import log_softmax

    if len(labels) == 0:
        return 1.0
    log_p = np.log(np.clip(np.asarray(probs, np.float64), 1e-30, 1.0))
    rows = np.arange(len(labels))

    def objective(temperature: float) -> float:
        nll = -log_softmax(log_p / temperature, axis=1)[rows, labels].sum()
        return nll + SHARPEN_PRIOR * min(0.0, np.log(temperature)) ** 2
    return float(min(TEMPERATURES, key=objective))


def calibrated(card, probs: np.ndarray, labels: np.ndarray, where: str):
    """``card`` with the temperature fitted on ``probs`` and ``labels`` of held-apart clips
    (``where`` says which) in its input spec, and in ``training["calibration"]`` what it
    was fitted on and the clips' accuracy, mean confidence and calibration error before
    and after."""
    from training.reader_calibration import expected_calibration_error

    temperature = fit_temperature(probs, labels)
    labels = np.asarray(labels)
    record = {"temperature": round(temperature, 4), "fitted_on": f"{len(labels)} {where}"}
    if len(labels):
        right = probs.argmax(1) == labels
        record["accuracy"] = round(float(right.mean()), 4)
        for stage, shown in (("before", probs), ("after", tempered(probs, temperature))):
            confidence = shown.max(1)
            record[stage] = {"mean_confidence": round(float(confidence.mean()), 4),
                             "calibration_error": round(expected_calibration_error(confidence, right), 4)}
    return replace(card, input=replace(card.input, temperature=temperature),
                   training={**card.training, "calibration": record})


class ClassifierKind(ModelKind):
    """A kind whose model maps a clip to (N, len(classes)) logits."""

    def targets(self, clips, classes) -> np.ndarray:
        return clips.labels

    def probabilities(self, logits: torch.Tensor, spec) -> torch.Tensor:
        """(N, K) probabilities of (N, K) logits, at the temperature ``spec`` (the card's input)
        was calibrated to (1 for cards from before calibration)."""
        return torch.softmax(logits.float() / getattr(spec, "temperature", 1.0), dim=1)

    def score_clip(self, model, batch, card, phrases=None):
        if phrases is not None:
            raise ValueError(f"{card.name} ({self.name}) names its own classes; it cannot "
                             "score a phrase list (a sentence reader, landmark_ctc, can)")
        return card.classes, self.probabilities(model(batch), card.input)[0].cpu().numpy()

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

    def calibrate(self, card, model, val_set, device):
        """The card with its temperature fitted on the validation split (:func:`calibrated`);
        unchanged without validation clips."""
        from training.evaluate import predict_with_embeddings

        if val_set is None or len(val_set) == 0:
            return card
        held = predict_with_embeddings(model, card, val_set, device)
        return calibrated(card, held.probs, held.labels, "clips of the validation split")

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
            "mean_confidence": round(float(predictions.probs.max(1).mean()), 4)
            if len(predictions.probs) else None, "evaluation": evaluation})
        write_text_atomic(folder / "TRAINING_SUMMARY.md",
                          reports.summary_markdown(card, metrics, verdicts, evaluation))
        text = (f"{evaluation} accuracy {metrics['accuracy']:.3f}, top-3 "
                f"{metrics['top3_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        return metrics, card, text
