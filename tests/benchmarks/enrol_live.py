"""From "Keep" to the updated few-shot recogniser reading, in the real window.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/enrol_live.py [--takes 5]

A patient starts with 2 samples each of the 12 GRID words (cut from sentences
the shipped reader never saw). The window plays a GRID sentence as the camera
in real time, reading with the patient's few-shot recogniser; ``--takes``
times a sample is recorded in the Record tab and kept. Prints JSON: per take,
milliseconds from the Keep click to the window reading with the rewritten
entry (the clip saved, the sample embedded, leave-one-out calibration, the
entry written, a predictor loaded and swapped in), and the median.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recognizer.gui  # noqa: E402,F401  (before any Qt object)
from PySide6.QtWidgets import QApplication  # noqa: E402

from features.dataset import Sidecar, read_sidecar  # noqa: E402
from features.extract import extract_many  # noqa: E402
from features.cache import DEFAULT_CACHE_DIR, FeatureCache  # noqa: E402
from few_shot_grid import SHIPPED, word_clips  # noqa: E402
from live_sentences import split_sentences  # noqa: E402

PATIENT = "bed 4"


def wait_until(app, condition, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.005)


def main() -> None:
    from recognizer.gui.app import source_spec
    from recognizer.gui.window import MainWindow

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    sentences = [video for video, _ in split_sentences(SHIPPED, "test")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = word_clips(sentences[:60], tmp / "words", 4)
        extract_many([p for _, _, p in clips], FeatureCache(DEFAULT_CACHE_DIR), workers=2)
        videos, taken = tmp / "videos", {}
        for word, _, path in clips:
            if taken.setdefault(word, 0) < 2:
                taken[word] += 1
                (videos / word).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, videos / word)
                old = read_sidecar(path.with_suffix(".json"))
                (videos / word / path.with_suffix(".json").name).write_text(
                    Sidecar(speaker=PATIENT, source=old.source).to_json(), encoding="utf-8")
        window = MainWindow(source_spec(source=str(sentences[0]), loop=True), tmp / "models",
                            videos, tmp / "history.csv", settings_path=tmp / "settings.json")
        window.show()
        window.start()
        window.state.patient = PATIENT
        window.bar.kind.setCurrentIndex(window.bar.kind.findData("few_shot"))
        wait_until(app, lambda: window.state.entry == "few-shot-bed-4", 60)
        panel = window.recorder
        panel.countdown.setValue(0)
        for take in range(args.takes):
            panel.phrase.setEditText(sorted(taken)[take % len(taken)])
            panel.record_button.click()
            wait_until(app, panel.keep_button.isEnabled, 30)
            before = len(window.enrol_latencies_ms)
            panel.keep_button.click()
            wait_until(app, lambda: len(window.enrol_latencies_ms) > before, 30)
        latencies = [round(ms, 1) for ms in window.enrol_latencies_ms]
        samples = sum(p["samples"] for p in window.state.per_phrase.values())
        window.close()
    print(json.dumps({"benchmark": "enrol_live", "patient_samples": samples,
                      "keep_to_live_ms": latencies, "median_ms": statistics.median(latencies),
                      "goal_ms": 1000}))


if __name__ == "__main__":
    main()
