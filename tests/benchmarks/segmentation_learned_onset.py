"""Experiment: can a learned per-frame speech detector fix the segmenter's early starts on GRID?

    python tests/benchmarks/segmentation_learned_onset.py [--learner boosting|cnn] [--folds 5]

The streaming segmenter starts too early on about a quarter of the GRID
sentences: the speaker opens the mouth to breathe in before "bin"/"place" and
the acoustic alignment does not count that as speech. Here a learner labels
each frame speech / not speech from the non-landmark features (geometry,
colour, blendshapes) and the lip speed, cross-validated by sentence:

- ``boosting``: gradient-boosted trees over the features of +-``context`` frames;
- ``cnn``: a dilated 1D CNN over the whole clip (receptive field +-31 frames).

Each detected utterance's ends are then
moved to the first and last frames of a run of ``run`` frames with P(speech)
> ``threshold``, within ``reach`` frames of the detected ends. Prints JSON: the
share of sentences with both ends within 4 frames, with and without refinement.

Not used by the app: the classifier learns one speaker's voiced-speech breathing,
which a patient mouthing without voice (tracheostomy) does not do.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

from features.cache import FeatureCache  # noqa: E402
from recognizer.segmenter import Utterance, lip_point_columns, segment_clip  # noqa: E402
from segmentation_grid import speech_span  # noqa: E402


def clip_features(features: np.ndarray, names: list[str]) -> np.ndarray:
    """(T, C): the non-landmark features and the lip speed, minus the clip's 5% quantile."""
    values = np.nan_to_num(features.astype(np.float32))
    points = values[:, lip_point_columns(names).ravel()].reshape(len(values), -1, 2)
    speed = np.r_[0.0, np.linalg.norm(np.diff(points, axis=0), axis=2).mean(1)]
    columns = [i for i, name in enumerate(names) if not name.startswith("lip")]
    base = np.c_[values[:, columns], speed]
    return base - np.quantile(base, 0.05, axis=0)


def with_context(base: np.ndarray, context: int) -> np.ndarray:
    """(T, C * (2 context + 1)): each frame's row next to its neighbours' (edges repeated)."""
    padded = np.pad(base, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + len(base)] for i in range(2 * context + 1)], axis=1)


def boosting_speech(train: list[tuple[np.ndarray, np.ndarray]], test: list[np.ndarray],
                    context: int) -> list[np.ndarray]:
    """P(speech) per frame of each ``test`` clip from trees fitted on ``train`` (clip, labels)."""
    model = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(
        np.concatenate([with_context(x, context) for x, _ in train]),
        np.concatenate([y for _, y in train]))
    return [model.predict_proba(with_context(x, context))[:, 1] for x in test]


def cnn_speech(train: list[tuple[np.ndarray, np.ndarray]], test: list[np.ndarray],
               epochs: int = 60) -> list[np.ndarray]:
    """P(speech) per frame of each ``test`` clip from a dilated 1D CNN trained on ``train``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    stacked = np.concatenate([x for x, _ in train])
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    layers: list[nn.Module] = [nn.Conv1d(stacked.shape[1], 48, 3, padding=1), nn.ReLU()]
    for dilation in (1, 2, 4, 8):
        layers += [nn.Conv1d(48, 48, 3, padding=dilation, dilation=dilation), nn.BatchNorm1d(48),
                   nn.ReLU(), nn.Dropout(0.2)]
    model = nn.Sequential(*layers, nn.Conv1d(48, 1, 1))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-2)
    length = min(len(x) for x, _ in train)
    inputs = torch.tensor(np.stack([(x[:length] - mean) / std for x, _ in train])).transpose(1, 2)
    targets = torch.tensor(np.stack([y[:length] for _, y in train]), dtype=torch.float32)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(inputs)).split(16):
            optimizer.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(
                model(inputs[batch]).squeeze(1), targets[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return [torch.sigmoid(model(torch.tensor((x - mean) / std).T[None])).numpy()[0, 0]
                for x in test]


def refine(utterance: Utterance, speech: np.ndarray, threshold: float, run: int, reach: int) -> tuple[int, int]:
    """Ends of ``utterance`` moved to where P(speech) first / last stays above ``threshold``."""
    start, end = utterance.start, utterance.end
    for t in range(max(utterance.start - reach, 0), utterance.end):
        if (speech[t:t + run] > threshold).all():
            start = t
            break
    for t in range(min(utterance.end + reach, len(speech) - 1), start, -1):
        if (speech[max(t - run + 1, 0):t + 1] > threshold).all():
            end = t
            break
    return start, end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/grid_s1")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/test-features")
    parser.add_argument("--learner", choices=("boosting", "cnn"), default="boosting")
    parser.add_argument("--context", type=int, default=8, help="boosting: frames either side")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--run", type=int, default=3)
    parser.add_argument("--reach", type=int, default=10)
    args = parser.parse_args()
    cache = FeatureCache(args.cache)
    clips = []
    for video in sorted((args.data / "video").glob("*.mp4")):
        clip = cache.load(video)
        span = speech_span(args.data / "align" / f"{video.stem}.align")
        found = segment_clip(clip.features, clip.valid, clip.names)
        labels = np.zeros(len(clip.valid), int)
        labels[span[0]:span[1] + 1] = 1
        clips.append((clip_features(clip.features, list(clip.names)), labels,
                      max(found, key=lambda u: u.length) if found else None, span))
    fold = np.arange(len(clips)) % args.folds
    plain = refined = 0
    for k in range(args.folds):
        train = [clips[i][:2] for i in np.flatnonzero(fold != k)]
        tested = np.flatnonzero(fold == k)
        inputs = [clips[i][0] for i in tested]
        speech = (boosting_speech(train, inputs, args.context) if args.learner == "boosting"
                  else cnn_speech(train, inputs))
        for i, probabilities in zip(tested, speech):
            _, _, utterance, span = clips[i]
            if utterance is None:
                continue
            plain += abs(utterance.start - span[0]) <= 4 and abs(utterance.end - span[1]) <= 4
            start, end = refine(utterance, probabilities, args.threshold, args.run, args.reach)
            refined += abs(start - span[0]) <= 4 and abs(end - span[1]) <= 4
    print(json.dumps({"benchmark": "segmentation_learned_onset", "learner": args.learner,
                      "sentences": len(clips), "folds": args.folds,
                      "within_4_both_ends_segmenter": round(plain / len(clips), 4),
                      "within_4_both_ends_refined": round(refined / len(clips), 4)}))


if __name__ == "__main__":
    main()
