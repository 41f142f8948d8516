"""Experiment: can a learned per-frame speech detector fix the segmenter's early starts on GRID?

    python tests/benchmarks/segmentation_learned_onset.py [--context 8] [--folds 5]

The streaming segmenter starts too early on about a third of the GRID
sentences: the speaker opens the mouth to breathe in before "bin"/"place" and
the acoustic alignment does not count that as speech. Here a gradient-boosted
classifier labels each frame speech / not speech from the non-landmark
features (geometry, colour, blendshapes) and the lip speed of +-``context``
frames, cross-validated by sentence. Each detected utterance's ends are then
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


def frame_matrix(features: np.ndarray, names: list[str], context: int) -> np.ndarray:
    """(T, C * (2 context + 1)): per-clip rest-subtracted features and lip speed, with neighbours."""
    values = np.nan_to_num(features.astype(np.float32))
    points = values[:, lip_point_columns(names).ravel()].reshape(len(values), -1, 2)
    speed = np.r_[0.0, np.linalg.norm(np.diff(points, axis=0), axis=2).mean(1)]
    columns = [i for i, name in enumerate(names) if not name.startswith("lip")]
    base = np.c_[values[:, columns], speed]
    base = base - np.quantile(base, 0.05, axis=0)
    padded = np.pad(base, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + len(base)] for i in range(2 * context + 1)], axis=1)


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
    parser.add_argument("--context", type=int, default=8)
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
        clips.append((frame_matrix(clip.features, list(clip.names), args.context), labels,
                      max(found, key=lambda u: u.length) if found else None, span))
    fold = np.arange(len(clips)) % args.folds
    plain = refined = 0
    for k in range(args.folds):
        train = [clips[i] for i in np.flatnonzero(fold != k)]
        model = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(
            np.concatenate([c[0] for c in train]), np.concatenate([c[1] for c in train]))
        for i in np.flatnonzero(fold == k):
            matrix, _, utterance, span = clips[i]
            if utterance is None:
                continue
            plain += abs(utterance.start - span[0]) <= 4 and abs(utterance.end - span[1]) <= 4
            start, end = refine(utterance, model.predict_proba(matrix)[:, 1], args.threshold,
                                args.run, args.reach)
            refined += abs(start - span[0]) <= 4 and abs(end - span[1]) <= 4
    print(json.dumps({"benchmark": "segmentation_learned_onset", "sentences": len(clips),
                      "folds": args.folds, "context_frames": args.context,
                      "within_4_both_ends_segmenter": round(plain / len(clips), 4),
                      "within_4_both_ends_refined": round(refined / len(clips), 4)}))


if __name__ == "__main__":
    main()
