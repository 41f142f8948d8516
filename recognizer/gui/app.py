"""Starting the window: the source from the command line, the app's folders, the Qt event loop."""
from __future__ import annotations

import sys
from pathlib import Path

from features.video import CameraSource, VideoError, VideoFileSource
from recognizer.gui.window import MainWindow, SourceSpec
from recognizer.reading import DEMO_CLIP, DEMO_KIND

NO_CAMERA_HINT = ("Plug in a webcam (it is found by itself within seconds), or start the app "
                  "with a video file:  python main.py --source FILE")
NO_FILE_HINT = "Choose a video file that exists, or leave out --source to use the camera."
BAD_FILE_HINT = "Choose another video file, or leave out --source to use the camera."


def source_spec(camera: int = 0, source: str | None = None, loop: bool = False) -> SourceSpec:
    """A file played as the camera at its own frame rate (``loop`` to repeat), else webcam
    ``camera``. A file that is missing or cannot be played is not refused here: the window
    opens and says so where the video would be, naming the file by its name alone."""
    if source:
        path = Path(source)

        def open_file():
            try:
                return VideoFileSource(path, realtime=True, loop=loop)
            except VideoError as error:
                raise VideoError(str(error).replace(str(path), path.name, 1)) from error
        usable = path.is_file() and path.stat().st_size > 0
        return SourceSpec(open_file, retry=False, describe=f"The video file {path.name}",
                          missing_hint=BAD_FILE_HINT if usable else NO_FILE_HINT,
                          ended_hint="" if loop else "Start the app with --loop to play it again and again.")

    def open_camera():
        if camera < 0:
            raise VideoError(f"camera {camera}: there is no such camera; cameras are numbered "
                             "from 0 (--camera 0 is the first)")
        return CameraSource(camera)
    return SourceSpec(open_camera, retry=camera >= 0, describe=f"Camera {camera}",
                      missing_hint=NO_CAMERA_HINT)


def default_history_path() -> Path:
    """``history.csv`` in the user's application-data folder (kept across sessions)."""
    from PySide6.QtCore import QStandardPaths

    folder = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)
    return Path(folder or Path.home() / ".lipreader") / "history.csv"


def run_demo(registry_root: str | Path, videos_root: str | Path,
             max_seconds: float | None = None) -> int:
    """The registry's sentence reader (on a fresh clone the shipped one) reading the bundled
    GRID sentence :data:`DEMO_CLIP` again and again, in a window whose history and settings
    are temporary: the demo leaves the user's own untouched."""
    import tempfile

    from recognizer.settings import Settings, save_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "settings.json"
        save_settings(settings, Settings(kind=DEMO_KIND, read_mode="transcript"))
        return run_app(source_spec(source=str(DEMO_CLIP), loop=True), registry_root, videos_root,
                       Path(tmp) / "history.csv", max_seconds, settings)


def run_app(source: SourceSpec, registry_root: str | Path, videos_root: str | Path,
            history_path: str | Path | None = None, max_seconds: float | None = None,
            settings_path: str | Path | None = None) -> int:
    """Open the window and run until it is closed (or for ``max_seconds``); the exit code."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("bedside-lip-reader")
    window = MainWindow(source, registry_root, videos_root, history_path or default_history_path(),
                        settings_path=settings_path)
    window.show()
    window.start()
    if max_seconds:
        QTimer.singleShot(int(max_seconds * 1000), window.close)
    return app.exec()

