"""Experiment: can a learned detector fix the segmenter's starts on GRID?

    python tests/benchmarks/segmentation_learned_onset.py [--learner boosting|cnn|onset] [--folds 5]

The streaming segmenter misses the spoken start by more than 4 frames on about a
quarter of the GRID sentences: the speaker breathes in through the mouth, then
makes the first sound behind lips held open ("lay", "set") or closed ("bin",
"place"), and the acoustic alignment puts the start somewhere in that stretch.
Here a learner works from the non-landmark features (geometry, colour,
blendshapes) and the lip speed, cross-validated by sentence. The first two label
each frame speech / not speech:

- ``boosting``: gradient-boosted trees over the features of +-``context`` frames;
- ``cnn``: a dilated 1D CNN over the whole clip (receptive field +-31 frames).

Each detected utterance's ends are then
moved to the first and last frames of a run of ``run`` frames with P(speech)
> ``threshold``, within ``reach`` frames of the detected ends.

- ``onset``: gradient-boosted trees trained only on the frames within
  ``onset_reach`` of the segmenter's start, each labelled "within a frame of the
  spoken start"; the start moves to the likeliest such frame, the end stays.
  ``--crop-components N`` adds N principal components of the mouth crops and
  their change per frame (does the tongue or the teeth show the start?).

Prints JSON: the share of sentences with the start, and with both ends, within 4
frames, with and without refinement.

Not used by the app: the classifier learns one speaker's voiced-speech breathing,
which a patient mouthing without voice (tracheostomy) does not do.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

from features.cache import FeatureCache  # noqa: E402
from recognizer.segmenter import Utterance, lip_point_columns, segment_clip  # noqa: E402
from segmentation_grid import speech_span  # noqa: E402


class Sentence(NamedTuple):
    """One GRID sentence as the learners see it."""

    base: np.ndarray             # (T, C) from clip_features
    labels: np.ndarray           # (T,) 1 inside the spoken span
    utterance: Utterance         # the segmenter's longest utterance
    span: tuple[int, int]        # spoken (first, last) frame
    crops: np.ndarray | None     # (T, 576) shrunk mouth crops, when asked for


def clip_features(features: np.ndarray, names: list[str]) -> np.ndarray:
    """(T, C): the non-landmark features and the lip speed, minus the clip's 5% quantile."""
    values = np.nan_to_num(features.astype(np.float32))
    points = values[:, lip_point_columns(names).ravel()].reshape(len(values), -1, 2)
    speed = np.r_[0.0, np.linalg.norm(np.diff(points, axis=0), axis=2).mean(1)]
    columns = [i for i, name in enumerate(names) if not name.startswith("lip")]
    base = np.c_[values[:, columns], speed]
    return base - np.quantile(base, 0.05, axis=0)


def small_crops(crops: np.ndarray, size: int = 24) -> np.ndarray:
    """(T, size * size) float32 in [0, 1]: each frame's mouth crop shrunk to size x size."""
    import cv2

    return np.stack([cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
                     for crop in crops]).reshape(len(crops), -1).astype(np.float32) / 255


def with_crop_components(clips: list[Sentence], train: np.ndarray, components: int) -> list[np.ndarray]:
    """Each clip's features beside the first ``components`` principal components of its
    shrunk mouth crops (fitted on the ``train`` clips) and the crops' mean change from the
    frame before, these minus the clip's 5% quantile."""
    from sklearn.decomposition import PCA

    pca = PCA(components, random_state=0).fit(np.concatenate([clips[i].crops for i in train])[::5])
    bases = []
    for clip in clips:
        change = np.r_[0.0, np.abs(np.diff(clip.crops, axis=0)).mean(1)]
        extra = np.c_[pca.transform(clip.crops), change]
        bases.append(np.c_[clip.base, extra - np.quantile(extra, 0.05, axis=0)])
    return bases


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


def onset_starts(train: list[tuple[np.ndarray, Utterance, int]],
                 test: list[tuple[np.ndarray, Utterance]], context: int, reach: int) -> list[int]:
    """Start frame of each ``test`` clip (features, segmenter utterance): the frame within
    ``reach`` of the segmenter's start that trees fitted on ``train`` (features, utterance,
    spoken start) find likeliest to lie within a frame of the spoken start."""
    def rows(base: np.ndarray, utterance: Utterance) -> tuple[np.ndarray, np.ndarray]:
        frames = np.arange(max(utterance.start - reach, 0), min(utterance.start + reach + 1, len(base)))
        return np.c_[with_context(base, context)[frames], frames - utterance.start], frames

    inputs, labels = [], []
    for base, utterance, spoken in train:
        near, frames = rows(base, utterance)
        inputs.append(near)
        labels.append(np.abs(frames - spoken) <= 1)
    model = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(
        np.concatenate(inputs), np.concatenate(labels))
    starts = []
    for base, utterance in test:
        near, frames = rows(base, utterance)
        starts.append(int(frames[np.argmax(model.predict_proba(near)[:, 1])]))
    return starts


def learned_spans(clips: list[Sentence], train: np.ndarray, tested: np.ndarray, args) -> list[tuple[int, int]]:
    """(start, end) of each ``tested`` clip, refined by a learner fitted on the ``train`` clips."""
    if args.learner == "onset":
        bases = (with_crop_components(clips, train, args.crop_components) if args.crop_components
                 else [clip.base for clip in clips])
        starts = onset_starts([(bases[i], clips[i].utterance, clips[i].span[0]) for i in train],
                              [(bases[i], clips[i].utterance) for i in tested],
                              args.context, args.onset_reach)
        return [(start, clips[i].utterance.end) for start, i in zip(starts, tested)]
    fitted = [(clips[i].base, clips[i].labels) for i in train]
    inputs = [clips[i].base for i in tested]
    speech = (boosting_speech(fitted, inputs, args.context) if args.learner == "boosting"
              else cnn_speech(fitted, inputs))
    return [refine(clips[i].utterance, probabilities, args.threshold, args.run, args.reach)
            for i, probabilities in zip(tested, speech)]


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
    parser.add_argument("--learner", choices=("boosting", "cnn", "onset"), default="boosting")
    parser.add_argument("--context", type=int, default=8, help="trees: frames either side")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--run", type=int, default=3)
    parser.add_argument("--reach", type=int, default=10)
    parser.add_argument("--onset-reach", type=int, default=15)
    parser.add_argument("--crop-components", type=int, default=0,
                        help="onset: also use this many principal components of the mouth crops")
    args = parser.parse_args()
    cache = FeatureCache(args.cache)
    clips = []
    videos = sorted((args.data / "video").glob("*.mp4"))
    for video in videos:
        clip = cache.load(video, crops=args.crop_components > 0)
        span = speech_span(args.data / "align" / f"{video.stem}.align")
        found = segment_clip(clip.features, clip.valid, clip.names)
        labels = np.zeros(len(clip.valid), int)
        labels[span[0]:span[1] + 1] = 1
        if found:
            clips.append(Sentence(clip_features(clip.features, list(clip.names)), labels,
                                  max(found, key=lambda u: u.length), span,
                                  small_crops(clip.crops) if args.crop_components else None))
    fold = np.arange(len(clips)) % args.folds
    plain, refined = np.zeros(2), np.zeros(2)
    for k in range(args.folds):
        tested = np.flatnonzero(fold == k)
        spans = learned_spans(clips, np.flatnonzero(fold != k), tested, args)
        for i, (start, end) in zip(tested, spans):
            utterance, span = clips[i].utterance, clips[i].span
            plain += within(utterance.start, utterance.end, span)
            refined += within(start, end, span)
    count = len(videos)
    print(json.dumps({"benchmark": "segmentation_learned_onset", "learner": args.learner,
                      "sentences": count, "folds": args.folds,
                      "within_4_start_segmenter": round(plain[0] / count, 4),
                      "within_4_both_ends_segmenter": round(plain[1] / count, 4),
                      "within_4_start_refined": round(refined[0] / count, 4),
                      "within_4_both_ends_refined": round(refined[1] / count, 4)}))


def within(start: int, end: int, span: tuple[int, int], tolerance: int = 4) -> np.ndarray:
    """(start within tolerance, both ends within tolerance) as 0/1."""
    start_ok = abs(start - span[0]) <= tolerance
    return np.array([start_ok, start_ok and abs(end - span[1]) <= tolerance], float)

if __name__ == "__main__":
    main()
