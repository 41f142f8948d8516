"""Take the README's screenshot of the main window: a real run on a video file.

    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python docs/screenshot.py \
        --source ../shared/data/grid_s1/video/bbaf2n.mp4 --registry MODELS --out docs/main_window.png
    ... --kind landmark_ctc --mode transcript --out docs/sentence.png     (a sentence read)

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
    parser.add_argument("--out", default=str(ROOT / "docs" / "main_window.png"))
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
        image = app.primaryScreen().grabWindow(0)
        image.save(args.out)
        print(f"saved {args.out}: {window.state.phrase} ({window.state.confidence:.0%})")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
