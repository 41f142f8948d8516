"""Take the README's screenshot of the main window: a real run on a video file.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot.py \
        --source ../shared/data/grid_s1_train/video/bbiz3a.mp4 --registry MODELS \
        --kind landmark_ctc --mode transcript --out docs/sentence.png

MODELS: a registry whose sentence reader never saw the sentence (the README's
``tests/benchmarks/train_grid_sentences.py --keep MODELS``, whose test split holds bbiz3a).

Opens the window on the file (looping) with the given recogniser, waits until a
phrase has been recognised and the next utterance is being mouthed, then
grabs the screen.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import recognizer.gui  # noqa: E402,F401  (before any Qt object: see its docstring)
from PySide6.QtWidgets import QApplication  # noqa: E402

from recognizer.gui.app import source_spec  # noqa: E402
from recognizer.gui.window import MainWindow  # noqa: E402
from recognizer.live import LiveState  # noqa: E402
from recognizer.settings import Settings, save_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs" / "sentence.png"))
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--kind", default="landmark_cnn")
    parser.add_argument("--mode", default="phrases", help="a sentence reader's read mode")
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        save_settings(Path(tmp) / "settings.json", Settings(kind=args.kind, read_mode=args.mode))
        window = MainWindow(source_spec(source=args.source, loop=True), args.registry,
                            Path(tmp) / "videos", Path(tmp) / "history.csv",
                            settings_path=Path(tmp) / "settings.json")
        window.resize(1600, 1000)
        window.show()
        window.start()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
            frame = window.video._frame
            if window.state.history and frame is not None and frame.result.state == LiveState.MOUTHING:
                break
        else:
            print("no phrase was recognised in time", file=sys.stderr)
            return 1
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        window.grab().save(args.out)          # renders the window itself: works offscreen too
        print(f"saved {args.out}: {window.state.phrase} ({window.state.confidence:.0%})")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
