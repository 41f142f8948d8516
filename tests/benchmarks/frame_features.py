"""Per-frame cost of landmarks + all per-frame features on 640x480 frames.

    python tests/benchmarks/frame_features.py [--video FILE] [--repeats 4]

Prints JSON: median ms per frame for MediaPipe, for everything after it
(geometry, lip points, colour, blendshape selection, mouth crop), and in total.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from features.frame_features import FeatureConfig, frame_features  # noqa: E402
from features.landmarks import LandmarkExtractor  # noqa: E402
from features.mouth_image import mouth_crop  # noqa: E402
from features.video import read_frames  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", type=Path,
                        default=ROOT.parent / "shared/data/grid_s1/video/bbaf2n.mp4")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    frames = [cv2.resize(f.rgb, (640, 480)) for f in read_frames(args.video)]
    config = FeatureConfig()
    landmark_ms, feature_ms = [], []
    with LandmarkExtractor() as extractor:
        for repeat in range(args.repeats):
            for i, rgb in enumerate(frames):
                start = time.perf_counter()
                face = extractor.detect(rgb, (repeat * len(frames) + i) * 40)
                middle = time.perf_counter()
                if face is not None:
                    frame_features(rgb, face, config)
                    mouth_crop(rgb, face.points, config.crop)
                end = time.perf_counter()
                landmark_ms.append((middle - start) * 1000)
                feature_ms.append((end - middle) * 1000)
    total = np.add(landmark_ms, feature_ms)
    print(json.dumps({
        "benchmark": "frame_features", "frame_size": [640, 480], "frames": len(total),
        "median_ms_total": round(float(np.median(total)), 2),
        "median_ms_mediapipe": round(float(np.median(landmark_ms)), 2),
        "median_ms_after_mediapipe": round(float(np.median(feature_ms)), 3),
        "p95_ms_total": round(float(np.percentile(total, 95)), 2),
        "goal_total_ms": 12, "goal_after_mediapipe_ms": 1,
    }))


if __name__ == "__main__":
    main()
