"""Take the README's screenshot of the main window: a real run on a video file.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot.py --demo --out docs/sentence.png
    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot.py --source FILE --registry MODELS \
        [--kind landmark_ctc --mode transcript]

``--demo`` is what ``python main.py --demo`` shows on a fresh clone: the
shipped sentence reader reading the bundled GRID sentence sgav6p (from its
test split: it never saw it), in transcript mode.

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
from recognizer.reading import DEMO_CLIP, DEMO_KIND  # noqa: E402
from recognizer.settings import Settings, save_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", action="store_true", help="what main.py --demo shows")
    parser.add_argument("--source")
    parser.add_argument("--registry", default=str(ROOT / "models"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "sentence.png"))
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--kind", default="landmark_cnn")
    parser.add_argument("--mode", default="phrases", help="a sentence reader's read mode")
    args = parser.parse_args()
    if args.demo:
        args.source, args.kind, args.mode = str(DEMO_CLIP), DEMO_KIND, "transcript"
    if not args.source:
        parser.error("give --source FILE, or --demo")
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
