"""Speed and memory of the whole app: a 30 fps video file through the window, per recogniser.

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/app_speed.py [--sentences 12] [--registry MODELS]
                                                                   [--kind landmark_cnn,landmark_ctc]

Writes GRID sentences back to back into one 30 fps video, plays it as the
camera (paced in real time) in the real :class:`MainWindow` and prints JSON:

- ``fps``: frames processed per second of wall time, ``dropped_pct``: frames
  replaced before the worker took them (goal: 30 fps, < 1 % dropped);
- ``frame_to_paint_ms``: from a frame's arrival to the end of the paint that
  shows it (goal: median <= 40);
- ``end_to_phrase_ms``: from the arrival of the frame on which the segmenter
  offered an utterance (a tentative reading, or the end) to the phrase painted
  (goal: median <= 100); ``segmenter_hold_ms`` is the stream time from the
  last mouthing frame to that frame (reported apart);
- ``peak_rss_mb``: the process's peak resident memory (goal <= 1000), the 4 s of frames
  kept for confirmations included; ``memory_mb`` splits it: ``peak_anon`` (the process's
  own memory, sampled every 0.25 s), ``peak_file`` (mapped library code and files, shared
  and reclaimable), and at the end ``gpu_libraries``, what of torch's CUDA libraries is
  still mapped (loaded with torch, run only on a GPU; where there is none the worker
  releases them, :func:`recognizer.live.release_unused_gpu_code`).

Without ``--registry`` it first trains the 12-word landmark model into a
temporary registry (about 30 s; the clips' features come from the cache), beside
the sentence reader that ships with the app. ``--kind`` picks the recogniser the
window opens with (``landmark_ctc``: the sentence reader, reading the words);
several, comma-separated, run one after the other, each in a process of its own (one
JSON line each), so that each peak is that recogniser's.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import recognizer.gui  # noqa: E402,F401  (before any Qt object)
from features.video import VideoFileSource, write_video  # noqa: E402
from recognizer.live import file_mappings  # noqa: E402

GRID = ROOT.parent / "shared" / "data" / "grid_s1"
SHIPPED = ROOT / "models" / "assets" / "entries"


def build_video(path: Path, sentences: int) -> int:
    """The first ``sentences`` GRID sentences back to back as one 30 fps video, written
    frame by frame so that the frames do not count towards this process's memory."""
    written = 0

    def frames():
        nonlocal written
        for video in sorted((GRID / "video").glob("*.mp4"))[:sentences]:
            for frame in VideoFileSource(video):
                written += 1
                yield frame.rgb

    write_video(path, frames(), 30.0)
    return written


def train_registry(tmp: Path) -> Path:
    """The 12-word model beside the shipped reader, trained in a child process so that its
    memory is not counted here."""
    from features.grid import import_grid
    from train_grid_words import WORDS

    import_grid(GRID, tmp / "videos", words=WORDS, padding=4)
    (tmp / "models" / "assets").mkdir(parents=True)
    (tmp / "models" / "assets" / "entries").symlink_to(SHIPPED, target_is_directory=True)
    subprocess.run([sys.executable, "-m", "training.run", "--videos", str(tmp / "videos"),
                    "--registry", str(tmp / "models"), "--runs", str(tmp / "runs"),
                    "--name", "grid-words", "--no-progress"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return tmp / "models"


def resident_mb() -> dict[str, float]:
    """The process's resident memory now: ``anon`` (its own) and ``file`` (mapped files), MB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name[3:].lower()] = int(value.split()[0]) / 1024
    return fields


def play(video: Path, registry: Path, tmp: Path, frames: int, kind: str) -> dict:
    from dataclasses import replace

    from PySide6.QtWidgets import QApplication

    from recognizer.gui.app import source_spec
    from recognizer.gui.window import MainWindow
    from recognizer.settings import Settings, save_settings

    app = QApplication.instance() or QApplication([])
    save_settings(tmp / "settings.json", replace(Settings(), kind=kind, read_mode="transcript"))
    window = MainWindow(source_spec(source=str(video)), registry, tmp / "rec", tmp / "history.csv",
                        settings_path=tmp / "settings.json")
    holds = []

    def hold(live) -> None:
        """The segmenter's part of a final reading's latency (the predictor's taken out)."""
        if live.recognition.final:
            holds.append(live.recognition.latency_ms - live.recognition.prediction.latency_ms)
    window.worker.recognised.connect(hold)
    window.show()
    window.start()
    deadline = time.monotonic() + 120
    while window.state.entry is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no {kind} entry in {registry} was loaded within 120 s")
        app.processEvents()
        time.sleep(0.005)
    started = time.monotonic()
    finished = []
    window.worker.source_finished.connect(lambda: finished.append(time.monotonic()))
    peak = resident_mb()
    sampled = started
    while not finished:
        app.processEvents()
        time.sleep(0.002)
        if time.monotonic() - sampled >= 0.25:
            sampled = time.monotonic()
            peak = {name: max(mb, peak[name]) for name, mb in resident_mb().items()}
    for _ in range(50):
        app.processEvents()
        time.sleep(0.002)
    seconds = finished[0] - started
    capture = window.worker._capture
    paint = np.array(window.video.paint_latencies_ms)
    phrase = np.array(window.phrase_latencies_ms)
    memory = {"peak_anon": round(peak["anon"], 1), "peak_file": round(peak["file"], 1),
              "gpu_libraries": round(sum(m["Rss"] for m in file_mappings()) / 1024, 1)}
    window.close()
    return {"frames_in_file": frames, "frames_captured": capture.captured,
            "frames_painted": window.video.painted_frames, "fps": round(capture.captured / seconds, 2),
            "dropped": capture.dropped, "dropped_pct": round(100 * capture.dropped / max(capture.captured, 1), 2),
            "frame_to_paint_ms": {"median": round(float(np.median(paint)), 1),
                                  "p95": round(float(np.percentile(paint, 95)), 1)},
            "utterances": int(len(phrase)),
            "end_to_phrase_ms": {"median": round(float(np.median(phrase)), 1) if len(phrase) else None,
                                 "max": round(float(phrase.max()), 1) if len(phrase) else None},
            "segmenter_hold_ms": {"median": float(np.median(holds)) if holds else None},
            "memory_mb": memory}


def measure(video: Path, frames: int, registry: Path, kind: str) -> str:
    """One kind's JSON line, measured in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        result = play(video, registry, Path(tmp), frames, kind)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["goal"] = {"fps": 30, "dropped_pct": 1, "frame_to_paint_ms": 40, "end_to_phrase_ms": 100,
                      "peak_rss_mb": 1000}
    return json.dumps({"benchmark": "app_speed", "kind": kind, **result})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--kind", default="landmark_cnn",
                        help="the recogniser the window uses; several, comma-separated, one by one")
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)    # a child's, made already
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    kinds = args.kind.split(",")
    if args.video is not None:
        print(measure(args.video, args.frames, args.registry, kinds[0]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        registry = args.registry or train_registry(tmp)
        video = tmp / "grid_30fps.mp4"
        frames = build_video(video, args.sentences)
        if len(kinds) == 1:
            print(measure(video, frames, registry, kinds[0]))
            return
        for kind in kinds:
            done = subprocess.run([sys.executable, __file__, "--registry", str(registry), "--kind", kind,
                                   "--video", str(video), "--frames", str(frames)],
                                  cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
