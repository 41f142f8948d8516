"""Utterance segmentation against the GRID align files.

    python tests/benchmarks/segmentation_grid.py [--cache DIR] [--data ../shared/data/grid_s1]

Runs :func:`recognizer.segmenter.segment_clip` with the default config on every
sentence of ``--data``, each clip alone (features from the cache; clips
missing there are extracted first) and prints one JSON object: how often the
detected span lies within ``--tolerance`` frames of the speech span at both
ends, and the errors. The acoustic alignment is no visual ground truth for
starts -- the lips move 100-300 ms before the sound -- so ``late_starts``
(more than the tolerance after it, cutting speech) matters, an early start
does not; the segmenter is judged end to end by
``tests/benchmarks/live_sentences.py``.

The speech span runs from the first to the last non-silence word of the
``.align`` file, in frames as :func:`features.grid.parse_align` gives them
(times rounded to the nearest frame; the end is its last frame, inclusive).
The detected span is the longest utterance of the clip; an error is
detected minus spoken, in frames (positive: detected late).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from features.cache import DEFAULT_CACHE_DIR, FeatureCache  # noqa: E402
from features.extract import extract_many, find_videos  # noqa: E402
from features.grid import parse_align  # noqa: E402
from recognizer.segmenter import SegmenterConfig, Utterance, segment_clip  # noqa: E402


def speech_span(align_path: Path) -> tuple[int, int]:
    """(first, last) frame of speech in an align file, both inclusive."""
    words = [token for token in parse_align(align_path) if not token.is_silence]
    return words[0].start_frame, words[-1].end_frame - 1


def span_errors(utterances: list[Utterance], span: tuple[int, int]) -> tuple[int, int] | None:
    """(start, end) error of the longest utterance against ``span``; None if nothing was found."""
    if not utterances:
        return None
    longest = max(utterances, key=lambda u: u.length)
    return longest.start - span[0], longest.end - span[1]


def summarise(errors: list[tuple[int, int] | None], tolerance: int) -> dict:
    """Shares within ``tolerance`` frames and absolute errors (frames) over the detected clips."""
    found = np.array([e for e in errors if e is not None]).reshape(-1, 2)
    within = np.abs(found) <= tolerance
    both = within.all(axis=1)
    count = max(len(errors), 1)
    return {
        "within_tolerance_both_ends": round(float(both.sum() / count), 4),
        "within_tolerance_start": round(float(within[:, 0].sum() / count), 4),
        "within_tolerance_end": round(float(within[:, 1].sum() / count), 4),
        "median_abs_start_error": float(np.median(np.abs(found[:, 0]))) if len(found) else None,
        "mean_abs_start_error": round(float(np.abs(found[:, 0]).mean()), 2) if len(found) else None,
        "median_abs_end_error": float(np.median(np.abs(found[:, 1]))) if len(found) else None,
        "mean_abs_end_error": round(float(np.abs(found[:, 1]).mean()), 2) if len(found) else None,
        "median_start_error": float(np.median(found[:, 0])) if len(found) else None,
        # Starting early is harmless (lips move before the sound); late cuts speech off.
        "late_starts": round(float((found[:, 0] > tolerance).sum() / count), 4),
        "median_end_error": float(np.median(found[:, 1])) if len(found) else None,
        "no_detection": len(errors) - len(found),
    }


def evaluate(cache: FeatureCache, videos: list[Path], align_dir: Path,
             config: SegmenterConfig = SegmenterConfig()) -> tuple[list, list[int], float]:
    """Span errors of each cached video, how many utterances each gave, and the
    segmenter's time per frame (ms, cache loading excluded)."""
    errors, counts, frames, seconds = [], [], 0, 0.0
    for video in videos:
        clip = cache.load(video)
        start = time.perf_counter()
        utterances = segment_clip(clip.features, clip.valid, clip.names, config, clip.timestamps_ms)
        seconds += time.perf_counter() - start
        frames += len(clip.valid)
        errors.append(span_errors(utterances, speech_span(align_dir / f"{video.stem}.align")))
        counts.append(len(utterances))
    return errors, counts, 1000 * seconds / max(frames, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/grid_s1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tolerance", type=int, default=4, help="frames (default 4 = 160 ms)")
    args = parser.parse_args()
    cache = FeatureCache(args.cache)
    summary = extract_many(find_videos(args.data / "video"), cache, workers=args.workers)
    videos = sorted(summary.entries)
    errors, counts, ms_per_frame = evaluate(cache, videos, args.data / "align")
    print(json.dumps({
        "benchmark": "segmentation_grid", "sentences": len(videos),
        "extraction_failed": len(summary.failed), "tolerance_frames": args.tolerance,
        **summarise(errors, args.tolerance),
        "exactly_one_utterance": sum(c == 1 for c in counts),
        "segmenter_ms_per_frame": round(ms_per_frame, 3),
    }))


if __name__ == "__main__":
    main()
