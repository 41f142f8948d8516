"""The training acceptance run: 12 GRID words, landmark_cnn, sentence-disjoint split.

    python tests/benchmarks/train_grid_words.py [--padding 4] [--model landmark_cnn] [--epochs N]
    python tests/benchmarks/train_grid_words.py --config tests/benchmarks/r2plus1d_cpu.yaml
    python tests/benchmarks/train_grid_words.py --without-colour      (teeth and tongue read 0)

Imports bin lay place set blue green red white again now please soon from
the 300 shared sentences into a temporary videos/ folder, extracts their
features (cached under .cache/features), trains with the default config (or
the given model kind) and prints JSON: test accuracy, top-3, macro-F1 and
the time: ``fit_s`` loads the clips from the feature cache and trains (the
card's ``training.seconds``); ``train_s`` is the whole ``training.run`` call,
reports and registry entry included.
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

from features.cache import DEFAULT_CACHE_DIR, FeatureCache
from features.extract import extract_many, find_videos
from features.grid import import_grid
from training.run import main as train

WORDS = ["bin", "lay", "place", "set", "blue", "green", "red", "white",
         "again", "now", "please", "soon"]


def without_colour() -> None:
    """Make every clip loaded from the feature cache in this process read 0 for the teeth and
    tongue ratios (the state before they were measured at GRID's mouth size)."""
    from dataclasses import replace

    from features.mouth_image import COLOUR_NAMES

    load = FeatureCache.load

    def load_without_colour(self, video, crops=True):
        clip = load(self, video, crops)
        if clip is None:
            return None
        features = clip.features.copy()
        features[:, [clip.names.index(name) for name in COLOUR_NAMES]] = 0.0
        return replace(clip, features=features)
    FeatureCache.load = load_without_colour


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=Path, default=ROOT.parent / "shared/data/grid_s1")
    parser.add_argument("--padding", type=int, default=4)
    parser.add_argument("--model")
    parser.add_argument("--events", help="write training.run's progress events to this file")
    parser.add_argument("--config", type=Path, help="training config (default training/config.yaml)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--without-colour", action="store_true",
                        help="ablation: the teeth and tongue ratios (and their velocities) read 0 "
                             "in every clip, in training and test alike")
    args = parser.parse_args()
    if args.without_colour:
        without_colour()
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        import_grid(args.grid, videos, words=WORDS, padding=args.padding)
        start = time.perf_counter()
        extract_many(find_videos(videos), FeatureCache(DEFAULT_CACHE_DIR), workers=2)
        extract_s = time.perf_counter() - start
        start = time.perf_counter()
        flags = ["--videos", str(videos), "--registry", f"{tmp}/models", "--runs", f"{tmp}/runs",
                 "--name", "grid-words", "--seed", str(args.seed), "--no-progress"]
        flags += ["--epochs", str(args.epochs)] if args.epochs else []
        flags += ["--model", args.model] if args.model else []
        flags += ["--config", str(args.config)] if args.config else []
        flags += ["--events", args.events] if args.events else []
        train(flags)
        train_s = time.perf_counter() - start
        card = json.loads((Path(tmp) / "models" / "grid-words" / "card.json").read_text())
    metrics = card["metrics"]
    print(json.dumps({
        "benchmark": "train_grid_words", "model": card["kind"], "colour": not args.without_colour,
        "input": {k: v for k, v in card["input"].items() if k not in ("feature_names", "mean", "std")},
        "words": len(WORDS),
        "padding": args.padding, "clips": card["data"]["clips"], "split": card["data"]["split_sizes"],
        "test_accuracy": round(metrics["accuracy"], 4), "top3_accuracy": round(metrics["top3_accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4), "val_accuracy": round(metrics["val_accuracy"], 4),
        "epochs_run": card["training"]["epochs_run"],
        "fit_s": card["training"]["seconds"], "train_s": round(train_s, 1),
        "extract_s": round(extract_s, 1), "goal": {"test_accuracy": 0.97, "top3": 0.995, "train_s": 30},
    }))


if __name__ == "__main__":
    main()
