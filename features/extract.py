"""Extract and cache the features of every clip under a folder.

    python -m features.extract VIDEOS_DIR [--cache DIR] [--workers 2] [--csv DIR]

Clips already in the cache (same bytes, same extractor) are not recomputed, so
a second run is near instant and an interrupted run resumes where it stopped.
A file that cannot be used is named in the summary and skipped.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from features.cache import DEFAULT_CACHE_DIR, ClipFeatures, FeatureCache
from features.files import atomic_output
from features.frame_features import FEATURE_NAMES, FeatureConfig, FeaturePipeline, FrameFeatures
from features.progress import ProgressOutput, add_common_flags, stage_progress
from features.video import VideoError, VideoFileSource

VIDEO_SUFFIXES = (".mp4", ".avi", ".mpg", ".mpeg", ".mov", ".mkv", ".webm")


class ClipError(RuntimeError):
    """A clip that cannot give features; the message names the file."""


def clip_from_rows(rows: Sequence[FrameFeatures], fps: float | None = None) -> ClipFeatures:
    """Per-frame results, in frame order, as one :class:`ClipFeatures`.

    Frames without a face get zero features and crops. ``fps`` defaults to
    the rate measured from the timestamps; crops are (T, 0, 0) when no row
    carries one (a pipeline run with ``crops=False``). Extraction and the
    live recogniser both build clips here, so they feed models alike.
    """
    if not rows:
        raise ValueError("no frames to make a clip of")
    shapes = {row.crop.shape for row in rows if row.crop is not None}
    crop_shape = shapes.pop() if shapes else (0, 0)
    features = np.zeros((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    crops = np.zeros((len(rows), *crop_shape), dtype=np.uint8)
    for i, row in enumerate(rows):
        if row.features is not None:
            features[i] = row.features
            if row.crop is not None:
                crops[i] = row.crop
    valid = np.array([row.features is not None for row in rows], dtype=bool)
    timestamps = np.array([row.timestamp_ms for row in rows], dtype=np.int64)
    if fps is None:
        span_ms = max(int(timestamps[-1] - timestamps[0]), 1)
        fps = 1000.0 * (len(rows) - 1) / span_ms if len(rows) > 1 else 25.0
    return ClipFeatures(features, valid, timestamps, crops, FEATURE_NAMES, float(fps))


def extract_clip(path: str | os.PathLike, pipeline: FeaturePipeline) -> ClipFeatures:
    """Features of every frame of one video file (the pipeline is reset first)."""
    pipeline.reset()
    rows = [pipeline.process(frame) for frame in VideoFileSource(path)]
    if not any(row.features is not None for row in rows):
        raise ClipError(f"{path}: no face found in any of its {len(rows)} frames")
    return clip_from_rows(rows)


@dataclass
class ExtractionSummary:
    """Outcome of a batch: cache entry of each good clip, reason for each bad one."""

    entries: dict[Path, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    cache_hits: int = 0


def find_videos(root: str | os.PathLike) -> list[Path]:
    """Video files under ``root`` (or ``root`` itself), sorted; dot-folders skipped."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of videos")
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


_worker: dict = {}


def _init_worker(cache_root: Path, config: FeatureConfig) -> None:
    _worker["cache"] = FeatureCache(cache_root, config)
    _worker["pipeline"] = FeaturePipeline(config)


def _extract_to_cache(path: Path) -> tuple[Path, Path | None, str | None]:
    try:
        clip = extract_clip(path, _worker["pipeline"])
        return path, _worker["cache"].save(path, clip), None
    except ClipError as error:
        # The file reads but shows no face: remember it, a rerun would find none again.
        _worker["cache"].save_failure(path, str(error))
        return path, None, str(error)
    except (VideoError, OSError) as error:
        return path, None, str(error)


def extract_many(paths: Iterable[Path], cache: FeatureCache, config: FeatureConfig = FeatureConfig(),
                 workers: int = 2, on_progress: Callable[[Path, str | None], None] | None = None
                 ) -> ExtractionSummary:
    """Fill the cache for ``paths``; ``on_progress(path, error)`` after each clip.

    Clips already cached count as hits; so do clips known to show no face
    (they are reported as failed again without being decoded).
    """
    summary = ExtractionSummary()
    todo = []
    for path in paths:
        entry = cache.path_for(path) if path.is_file() else None
        known_failure = cache.known_failure(entry) if entry is not None else None
        if entry is not None and (entry.is_file() or known_failure):
            summary.cache_hits += 1
            if known_failure:
                summary.failed[path] = known_failure
            else:
                summary.entries[path] = entry
            if on_progress:
                on_progress(path, known_failure)
        else:
            todo.append(path)
    for path, entry, error in _run(todo, cache.root, config, workers):
        if error is None:
            summary.entries[path] = entry
        else:
            summary.failed[path] = error
        if on_progress:
            on_progress(path, error)
    return summary


def _run(todo: list[Path], cache_root: Path, config: FeatureConfig, workers: int):
    if not todo:
        return
    if workers <= 1 or len(todo) == 1:
        _init_worker(cache_root, config)
        try:
            yield from map(_extract_to_cache, todo)
        finally:
            _worker.pop("pipeline").close()
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(todo)), _init_worker, (cache_root, config)) as pool:
        yield from pool.imap_unordered(_extract_to_cache, todo)


def write_csv(clip: ClipFeatures, path: Path) -> None:
    """Write a clip's feature matrix as CSV (frame, timestamp_ms, valid, features...)."""
    table = np.column_stack([np.arange(len(clip.valid)), clip.timestamps_ms,
                             clip.valid.astype(int), clip.features])
    header = ",".join(("frame", "timestamp_ms", "valid") + clip.names)
    with atomic_output(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=header, comments="",
                   fmt=["%d", "%d", "%d"] + ["%.6g"] * len(clip.names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m features.extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, help="folder of clips (searched recursively) or one file")
    add_common_flags(parser, cache=DEFAULT_CACHE_DIR, uses_registry=False)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--csv", type=Path, help="also write one CSV per clip under this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        paths = find_videos(args.videos)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = FeatureConfig()
    cache = FeatureCache(args.cache, config)
    with ProgressOutput(args.events, progress=not args.no_progress) as output:
        summary = extract_many(paths, cache, config, args.workers,
                               on_progress=stage_progress(output, "extract", len(paths)))
    if args.csv:
        root = args.videos if args.videos.is_dir() else args.videos.parent
        for path in summary.entries:
            write_csv(cache.load(path), args.csv / path.relative_to(root).with_suffix(".csv"))
    print(f"{len(summary.entries)} clips ready ({summary.cache_hits} from cache), "
          f"{len(summary.failed)} failed; cache: {cache.root}")
    for path, reason in sorted(summary.failed.items()):
        print(f"  skipped {reason}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
