"""Evaluation reports: metrics with confidence intervals, tests, plots, summaries.

Pure functions over predictions (probabilities (N, K), labels (N,)) that write
into an entry's folder. Matplotlib renders off-screen (Agg); nothing here
imports Qt.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from features.files import atomic_output, write_json_atomic  # noqa: E402
from training.metrics import top_k_accuracy  # noqa: E402


def bootstrap_ci(labels: np.ndarray, predicted: np.ndarray, metric, rounds: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``metric(labels, predicted)``."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    scores = [metric(labels[idx], predicted[idx])
              for idx in (rng.integers(0, n, n) for _ in range(rounds))]
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``correct / n``: unlike a bootstrap it does
    not shrink to a point at 0 or 100 % (all 12 right is not certainty)."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _macro_f1(labels, predicted):
    return skm.f1_score(labels, predicted, average="macro", zero_division=0)


def _accuracy(labels, predicted):
    return float(np.mean(labels == predicted))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, top-3, macro-F1 (with bootstrap 95% CIs), per-class P/R/F1, binomial test."""
    predicted = probs.argmax(axis=1)
    correct = int((predicted == labels).sum())
    chance = 1.0 / len(classes)
    per_class = skm.classification_report(labels, predicted, labels=list(range(len(classes))),
                                          target_names=classes, output_dict=True, zero_division=0)
    return {
        "n": int(len(labels)),
        "accuracy": _accuracy(labels, predicted),
        "accuracy_ci95": wilson_interval(correct, len(labels)),
        "top3_accuracy": top_k_accuracy(probs, labels, 3),
        "macro_f1": float(_macro_f1(labels, predicted)),
        "macro_f1_ci95": bootstrap_ci(labels, predicted, _macro_f1),
        "per_class": {c: {k: float(per_class[c][k]) for k in ("precision", "recall", "f1-score", "support")}
                      for c in classes},
        "chance": chance,
        "binomial_p_vs_chance": float(stats.binomtest(correct, len(labels), chance,
                                                      alternative="greater").pvalue),
    }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test on paired correctness vectors of two models on the same clips."""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    return {"only_first_correct": only_a, "only_second_correct": only_b, "p_value": p}


def _colour(k: int):
    """A distinct colour per class for up to 20 classes (matplotlib's default cycle has 10)."""
    return plt.cm.tab20(k % 20)


def _save(fig, path: Path, description: str | None = None) -> Path:
    """``fig`` as a PNG at ``path`` (atomic), ``description`` in its metadata."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight",
                        metadata={"Description": description} if description else None)
    finally:
        plt.close(fig)
    return path


def plot_confusion(labels, predicted, classes, path: Path) -> Path:
    matrix = skm.confusion_matrix(labels, predicted, labels=list(range(len(classes))))
    size = 2.5 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    skm.ConfusionMatrixDisplay(matrix, display_labels=classes).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
    ax.set_title("Confusion matrix (test)")
    return _save(fig, path)


def plot_roc(probs, labels, classes, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    for k, name in enumerate(classes):
        positives = labels == k
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positives, probs[:, k])
        ax.plot(fpr, tpr, color=_colour(k), label=f"{name} (AUC {skm.auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="One-vs-rest ROC")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_learning_curves(history: list[dict], path: Path, metric: str = "accuracy") -> Path:
    """Loss, and ``metric`` (``accuracy`` or ``wer``), per epoch for train and validation,
    where the history has them (a fit on every clip validates on none)."""
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in ((left, "loss"), (right, metric)):
        for split, label in (("train", "train"), ("val", "validation")):
            if f"{split}_{name}" in history[0]:
                ax.plot(epochs, [h[f"{split}_{name}"] for h in history], label=label)
    left.set(xlabel="epoch", ylabel="loss", title="Loss")
    top = 1.02 if metric == "accuracy" else max(
        [1.02] + [h[f"val_{metric}"] for h in history if f"val_{metric}" in h])
    right.set(xlabel="epoch", ylabel=metric, title=metric.upper() if metric == "wer" else "Accuracy",
              ylim=(0, top))
    for ax in (left, right):
        ax.legend()
    return _save(fig, path)


UMAP_NEIGHBOURS = 15      # umap-learn's default, fewer where there are fewer other points


def embedding_2d(features: np.ndarray) -> tuple[np.ndarray, str]:
    """(N, 2) projection of penultimate features (N, D) and its method: UMAP when umap-learn is
    installed (an optional extra) and there are 4 points or more, else PCA."""
    try:
        import umap
    except ImportError:
        umap = None
    if umap is not None and len(features) >= 4:
        neighbours = min(UMAP_NEIGHBOURS, len(features) - 1)
        return umap.UMAP(n_neighbors=neighbours, random_state=0).fit_transform(features), "UMAP"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(features), "PCA"


def plot_embedding(features, labels, classes, path: Path) -> Path:
    """Penultimate features (N, D) in 2-D, one colour per class; the method (UMAP or PCA) in
    the title and in the PNG's ``Description``."""
    points, method = embedding_2d(features)
    fig, ax = plt.subplots(figsize=(6, 5))
    for k, name in enumerate(classes):
        chosen = labels == k
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, color=_colour(k), label=name)
    ax.set_title(f"Penultimate layer, {method} (test)")
    ax.legend(fontsize=7, markerscale=1.5)
    return _save(fig, path, f"penultimate layer embedding, {method}")


def plot_class_curves(curves: np.ndarray, labels, classes, names: list[str], path: Path) -> Path:
    """Per-class mean (+- std) of a few channels over time; ``curves`` is (N, C, T)."""
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for ax, channel, name in zip(axes[0], range(len(names)), names):
        for k, cls in enumerate(classes):
            rows = curves[labels == k, channel]
            if len(rows):
                mean, std = rows.mean(0), rows.std(0)
                ax.plot(mean, color=_colour(k), label=cls)
                ax.fill_between(np.arange(len(mean)), mean - std, mean + std, color=_colour(k),
                                alpha=0.12)
        ax.set(title=name, xlabel="time step")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_preview(frames: list[np.ndarray], titles: list[str], path: Path) -> Path:
    """A strip per clip of what the model sees: ``frames`` items are (T, H, W) images."""
    steps = min(8, min(len(f) for f in frames))
    fig, axes = plt.subplots(len(frames), steps, figsize=(1.3 * steps, 1.4 * len(frames)),
                             squeeze=False)
    for row, (clip, title) in enumerate(zip(frames, titles)):
        for col, t in enumerate(np.linspace(0, len(clip) - 1, steps).round().astype(int)):
            axes[row][col].imshow(clip[t], cmap="gray")
            axes[row][col].axis("off")
        axes[row][0].set_title(title, fontsize=8, loc="left")
    return _save(fig, path)


PREVIEW_HEIGHT = 96       # each clip of the animated preview about this many pixels tall
PREVIEW_GAP = 4           # pixels between two clips
PREVIEW_TITLE = 12        # the band above each clip that names it


def _preview_panel(clip: np.ndarray, t: int, title: str, scale: int) -> Image.Image:
    """Frame ``t`` of ``clip`` (T, H, W) uint8, its last past the end, ``scale`` times larger
    (nearest neighbour) under ``title``."""
    frame = np.kron(clip[min(t, len(clip) - 1)], np.ones((scale, scale), np.uint8))
    panel = Image.new("L", (frame.shape[1], frame.shape[0] + PREVIEW_TITLE))
    panel.paste(Image.fromarray(frame), (0, PREVIEW_TITLE))
    ImageDraw.Draw(panel).text((1, 0), title, fill=255)
    return panel


def write_preview_gif(frames: list[np.ndarray], titles: list[str], path: Path,
                      frame_ms: int = 40) -> Path:
    """The clips of :func:`plot_preview` (``frames`` items (T, H, W) uint8, one size) side by
    side as an animated GIF, every frame, ``frame_ms`` each, looping; a clip shorter than
    the longest holds its last frame. Written atomically."""
    height, width = frames[0].shape[1:]
    scale = max(1, round(PREVIEW_HEIGHT / height))
    size = (len(frames) * (width * scale + PREVIEW_GAP) - PREVIEW_GAP,
            height * scale + PREVIEW_TITLE)
    pictures = []
    for t in range(max(len(clip) for clip in frames)):
        picture = Image.new("L", size)
        for i, (clip, title) in enumerate(zip(frames, titles)):
            picture.paste(_preview_panel(clip, t, title, scale), (i * (width * scale + PREVIEW_GAP), 0))
        pictures.append(picture)
    with atomic_output(path) as tmp:
        pictures[0].save(tmp, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return path


def write_json(path: Path, data: dict) -> Path:
    return write_json_atomic(path, data, default=float)


def targets_met(test_metrics: dict, targets: dict) -> dict[str, dict]:
    """Each configured target (metric -> minimum) with the value reached and a verdict."""
    return {name: {"target": goal, "value": test_metrics.get(name),
                   "achieved": bool(test_metrics.get(name, -1) >= goal)}
            for name, goal in targets.items()}


def better_than_chance(test_metrics: dict, level: float = 0.05) -> str:
    """The summary's line on chance: whether the accuracy is better, by a one-sided binomial
    test at ``level``, said in words before its p value."""
    p = test_metrics["binomial_p_vs_chance"]
    verdict = "better than chance" if p < level else "**not** shown better than chance"
    return f"- {verdict} ({test_metrics['chance']:.3f}): binomial p = {p:.2g}"


def summary_markdown(card, test_metrics: dict, verdicts: dict, evaluation: str = "test") -> str:
    """The human-readable ``TRAINING_SUMMARY.md`` of an entry (``card``: a training.card.Card),
    its figures made as ``evaluation`` says (the test split, or cross-validation)."""
    low, high = test_metrics["accuracy_ci95"]
    lines = [f"# {card.name}", "",
             f"- kind: `{card.kind}`; classes ({len(card.classes)}): {', '.join(card.classes)}",
             f"- data: {card.data.get('summary', '')}"]
    if evaluation != "test":
        lines.append(f"- **small data**: too few clips of a class to hold a test split out, so "
                     f"the figures are {evaluation} (each clip named by a model trained without "
                     f"it, every epoch run, nothing chosen on it); the entry itself is fitted on "
                     f"all {card.data.get('clips', '')} clips")
    lines += [
             f"- {evaluation} accuracy {test_metrics['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}), "
             f"top-3 {test_metrics['top3_accuracy']:.3f}, macro-F1 {test_metrics['macro_f1']:.3f}, "
             f"n = {test_metrics['n']}",
             better_than_chance(test_metrics), "", "## Targets", ""]
    for name, verdict in verdicts.items():
        mark = "achieved" if verdict["achieved"] else "NOT achieved"
        lines.append(f"- {name} >= {verdict['target']}: {verdict['value']:.3f} -- {mark}")
    lines += ["", f"## Per class ({evaluation})", "", "| class | precision | recall | F1 | n |",
              "|---|---|---|---|---|"]
    for cls, row in test_metrics["per_class"].items():
        lines.append(f"| {cls} | {row['precision']:.2f} | {row['recall']:.2f} | "
                     f"{row['f1-score']:.2f} | {int(row['support'])} |")
    return "\n".join(lines) + "\n"
