"""The sentence reader end to end through the live path: GRID sentences back to back.

    python tests/benchmarks/live_sentences.py [--entry ENTRY] [--sentences N] [--no-app]

Plays the sentences of a ``landmark_ctc`` entry's test split (sentences it
never saw in training; ``--split train`` for tuning the segmenter, with
``--segmenter max_pause=8`` and the like) back to back as one continuous 25 fps video through the
live path -- the FeaturePipeline, the segmenter and the Predictor reading the
words, as headless mode and the window run them, not paced -- and prints JSON:

- ``wer_live``: WER of the words read from the segmenter's cuts (each
  sentence's reading is the words of the utterances whose middle lies in it);
  ``wer_whole``: WER of the same predictor on each whole clip (its cached
  features); ``wer_gap``: their difference (goal <= 0.01);
- ``exactly_one_utterance``: the share of sentences that give exactly one
  utterance (goal 1.0), with the sentences that give none or several;
- ``words_on_screen_ms``: from the last lip movement (the segmenter's end of
  the utterance) to its words ready -- the segmenter's wait (a tentative
  reading after ``read_after`` quiet frames) plus the predictor's wall time,
  median (goal <= 200); ``after_speech_ms``: the same from the acoustic end of
  the last word (``.align``), for reference;
- ``app``: ``tests/benchmarks/app_speed.py`` run on the same entry in the real
  window, reading the words (frame rate, dropped frames, peak memory; goals:
  30 fps, < 1 % dropped, <= 1536 MB). ``--no-app`` skips it.

Without ``--entry`` it trains one first, as ``train_grid_sentences.py`` does
(about 7 minutes on two cores).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from features.cache import DEFAULT_CACHE_DIR, FeatureCache, file_digest  # noqa: E402
from features.extract import extract_many  # noqa: E402
from features.grid import parse_align  # noqa: E402
from features.video import VideoFileSource, write_video  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FRAME_MS = 40                       # GRID is 25 fps


def split_sentences(entry: Path, split: str = "test") -> list[tuple[Path, Path]]:
    """(video, align file) of every shared GRID sentence in the entry's ``split``."""
    test = set(json.loads((entry / "clips.json").read_text())[split])
    found = []
    for folder in ("grid_s1", "grid_s1_train"):
        for video in sorted((DATA / folder / "video").glob("*.mp4")):
            if file_digest(video) in test:
                found.append((video, DATA / folder / "align" / f"{video.stem}.align"))
    return found


def reference_of(align: Path) -> tuple[str, int]:
    """The transcript of an align file and the frame its last word ends on."""
    words = [token for token in parse_align(align) if not token.is_silence]
    return " ".join(w.word for w in words), words[-1].end_frame - 1


def build_video(path: Path, videos: list[Path]) -> list[tuple[int, int]]:
    """The clips back to back in one video; each clip's (first, last) frame in it."""
    spans, count = [], 0

    def frames():
        nonlocal count
        for video in videos:
            first = count
            for frame in VideoFileSource(video):
                count += 1
                yield frame.rgb
            spans.append((first, count - 1))

    write_video(path, frames(), 1000 / FRAME_MS)
    return spans


def read_live(video: Path, predictor, segmenter=None) -> list:
    """Every final recognition of the video through the live path, in order."""
    from features.frame_features import FEATURE_NAMES, FeaturePipeline
    from recognizer.live import LiveConfig, LiveRecognizer

    config = LiveConfig() if segmenter is None else LiveConfig(segmenter=segmenter)
    recognizer = LiveRecognizer(FEATURE_NAMES, predictor, config)
    finals = []
    source = VideoFileSource(video)
    try:
        with FeaturePipeline(crops=predictor.needs_crops) as pipeline:
            for frame in source:
                result = recognizer.process(pipeline.process(frame))
                if result.recognition is not None and result.recognition.final:
                    finals.append(result.recognition)
    finally:
        source.close()
    return finals + recognizer.finish()


def segmenter_config(values: list[str]):
    """The default SegmenterConfig with ``NAME=VALUE`` changes (numbers as in the config)."""
    from recognizer.segmenter import SegmenterConfig

    config = SegmenterConfig()
    for item in values:
        name, _, value = item.partition("=")
        if name not in {f.name for f in fields(config)}:
            raise SystemExit(f"--segmenter {item}: SegmenterConfig has no {name!r}")
        config = replace(config, **{name: type(getattr(config, name))(value)})
    return config


def train_entry(tmp: Path, cache: Path) -> Path:
    from train_grid_sentences import sentences_into

    from training.run import main as train

    sentences_into(tmp / "videos")
    if train(["--model", "landmark_ctc", "--videos", str(tmp / "videos"), "--cache", str(cache),
              "--registry", str(tmp / "models"), "--runs", str(tmp / "runs"), "--name", "reader",
              "--no-progress"]) != 0:
        raise SystemExit("training failed")
    return tmp / "models" / "reader"


def app_speed(entry: Path, tmp: Path) -> dict:
    """app_speed.py in its own process, on a registry holding only ``entry``."""
    registry = tmp / "app-registry"
    shutil.copytree(entry, registry / entry.name)
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmarks" / "app_speed.py"),
                             "--registry", str(registry), "--kind", "landmark_ctc"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    if result.returncode != 0:
        return {"error": result.stderr[-2000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from recognizer.predictor import Predictor
    from training.decoding import word_error_rate

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", type=Path, help="a landmark_ctc registry entry (default: train one)")
    parser.add_argument("--sentences", type=int, help="play only the first N test sentences")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--no-app", action="store_true", help="skip the window's speed run")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="play this split's sentences (tune the segmenter on train or val)")
    parser.add_argument("--segmenter", action="append", default=[], metavar="NAME=VALUE",
                        help="a SegmenterConfig value to try, e.g. max_pause=8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entry = args.entry or train_entry(tmp, args.cache)
        sentences = split_sentences(entry, args.split)[:args.sentences]
        if not sentences:
            raise SystemExit(f"{entry}: none of the shared GRID sentences is in its {args.split} split")
        references, speech_ends = zip(*(reference_of(align) for _, align in sentences))
        spans = build_video(tmp / "sentences.mp4", [video for video, _ in sentences])
        predictor = Predictor.from_entry(entry, "cpu", mode="transcript")
        segmenter = segmenter_config(args.segmenter)
        finals = read_live(tmp / "sentences.mp4", predictor, segmenter)

        readings = [[] for _ in sentences]
        waits, after_speech = [], []
        for recognition in finals:
            utterance = recognition.utterance
            middle = (utterance.start + utterance.end) / 2
            index = next((i for i, (a, b) in enumerate(spans) if a <= middle <= b + 0.5), None)
            if index is None:
                continue
            readings[index].append(recognition.prediction.text)
            waits.append(recognition.latency_ms)
            offered = utterance.end_ms + recognition.latency_ms - recognition.prediction.latency_ms
            after_speech.append(offered - (spans[index][0] + speech_ends[index]) * FRAME_MS
                                + recognition.prediction.latency_ms)
        live = [" ".join(r) for r in readings]
        cache = FeatureCache(args.cache)
        extract_many([video for video, _ in sentences], cache, workers=2)
        whole = [predictor.predict(cache.load(video, crops=predictor.needs_crops)).text
                 for video, _ in sentences]
        counts = [len(r) for r in readings]
        wer_live, wer_whole = word_error_rate(references, live), word_error_rate(references, whole)
        result = {
            "benchmark": "live_sentences", "entry": entry.name, "split": args.split,
            "sentences": len(sentences), "segmenter": asdict(segmenter),
            "wer_live": round(wer_live, 4), "wer_whole": round(wer_whole, 4),
            "wer_gap": round(wer_live - wer_whole, 4),
            "exactly_one_utterance": round(float(np.mean([c == 1 for c in counts])), 4),
            "no_utterance": [v.stem for (v, _), c in zip(sentences, counts) if c == 0],
            "several_utterances": [v.stem for (v, _), c in zip(sentences, counts) if c > 1],
            "words_on_screen_ms": {"median": round(float(np.median(waits)), 1),
                                   "p90": round(float(np.percentile(waits, 90)), 1)},
            "after_speech_ms": {"median": round(float(np.median(after_speech)), 1)},
            "examples": [{"said": r, "live": a, "whole": b}
                         for r, a, b in list(zip(references, live, whole))[:5]],
        }
        if not args.no_app:
            result["app"] = app_speed(entry, tmp)
        result["goal"] = {"wer_gap": 0.01, "exactly_one_utterance": 1.0, "words_on_screen_ms": 200,
                          "app": {"fps": 30, "dropped_pct": 1, "peak_rss_mb": 1536}}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
