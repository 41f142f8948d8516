"""How soon the demo reads on a fresh clone: from starting the app to words on screen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/demo_time.py

Does what ``python main.py --demo`` does -- the window, the shipped sentence
reader, the bundled GRID clip played as the camera in real time -- in this
process, and prints JSON: ``words_s``, seconds from the start of the process
(imports, model loading and MediaPipe's start-up included) until the first
reading is on screen; ``final_s`` until it is confirmed (spoken, in the
history); ``text``: what it read.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import recognizer.gui  # noqa: E402,F401  (before any Qt object)
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    from recognizer.gui.app import source_spec
    from recognizer.gui.window import MainWindow
    from recognizer.reading import DEMO_CLIP, DEMO_KIND
    from recognizer.settings import Settings, save_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "settings.json"
        save_settings(settings, Settings(kind=DEMO_KIND, read_mode="transcript"))
        window = MainWindow(source_spec(source=str(DEMO_CLIP), loop=True), ROOT / "models",
                            Path(tmp) / "videos", Path(tmp) / "history.csv",
                            settings_path=settings)

        def seen(_change) -> None:
            if window.state.phrase and "words_s" not in times:
                times["words_s"] = time.monotonic() - STARTED

        def confirmed(item) -> None:
            times.setdefault("final_s", time.monotonic() - STARTED)
            times.setdefault("text", item.phrase)
            app.quit()
        window.state.subscribe("phrase", seen)
        window.state.subscribe_recorded(confirmed)
        window.show()
        window.start()
        QTimer.singleShot(60_000, app.quit)
        app.exec()
        window.close()
    print(json.dumps({"benchmark": "demo_time", "clip": DEMO_CLIP.name,
                      **{k: round(v, 2) if isinstance(v, float) else v for k, v in times.items()},
                      "goal_s": 10}))


if __name__ == "__main__":
    main()
