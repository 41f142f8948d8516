"""Extraction throughput on the 300 shared GRID sentences, cold then cached.

    python tests/benchmarks/extract_grid.py [--workers 2]

Prints JSON: frames, seconds and frames/s of a first run into an empty cache,
and seconds of a second run (all cache hits).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from features.cache import FeatureCache  # noqa: E402
from features.extract import extract_many, find_videos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared/data/grid_s1/video")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    paths = find_videos(args.videos)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        start = time.perf_counter()
        cold = extract_many(paths, cache, workers=args.workers)
        cold_s = time.perf_counter() - start
        frames = sum(len(cache.load(p).valid) for p in cold.entries)
        start = time.perf_counter()
        warm = extract_many(paths, cache, workers=args.workers)
        warm_s = time.perf_counter() - start
    print(json.dumps({
        "benchmark": "extract_grid", "clips": len(paths), "failed": len(cold.failed),
        "frames": frames, "workers": args.workers,
        "first_run_s": round(cold_s, 1), "first_run_fps": round(frames / cold_s, 1),
        "second_run_s": round(warm_s, 2), "second_run_cache_hits": warm.cache_hits,
        "goal_fps": 90, "goal_second_run_s": 5,
    }))


if __name__ == "__main__":
    main()
