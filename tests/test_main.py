"""The entry point: a bad source opens the window saying what to do; headless, a clear error."""
import pytest
from PySide6.QtWidgets import QApplication

from main import main
from recognizer.gui.window import MainWindow


def test_main_errors_name_the_problem(tmp_path, capsys):
    assert main(["--headless"]) == 2
    assert "--source" in capsys.readouterr().err


def test_headless_names_a_bad_source_in_one_line_before_loading_a_model(tmp_path, capsys):
    """With an empty registry too: the file is what the user named, so it is told first."""
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path, reason in ((tmp_path / "missing.mp4", "no such video file"), (empty, "empty"),
                         (text, "not a readable video"), (tmp_path, "folder")):
        assert main(["--headless", "--source", str(path), "--registry", str(tmp_path / "models"),
                     "--videos", str(tmp_path / "videos")]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        [line] = captured.err.splitlines()
        assert line.startswith(f"error: {path}: ") and reason in line


def _window_message(qtbot, monkeypatch, tmp_path, source_args: list[str], expected: str) -> str:
    """Run ``main`` with ``source_args``; in place of the event loop, wait until the window's
    video view shows ``expected``, then close the window. The message shown."""
    shown = []

    def exec_until_shown(app):
        [window] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, MainWindow) and w.isVisible()]
        qtbot.addWidget(window)
        qtbot.waitUntil(lambda: expected in window.video._message, timeout=10000)
        shown.append(window.video._message)
        window.close()
        return 0
    monkeypatch.setattr(QApplication, "exec", exec_until_shown)
    assert main([*source_args, "--registry", str(tmp_path / "models"), "--videos",
                 str(tmp_path / "videos"), "--history", str(tmp_path / "history.csv")]) == 0
    [message] = shown
    return message


@pytest.mark.parametrize("name, reason, hint", [
    ("missing.mp4", "missing.mp4: no such video file", "Choose a video file that exists"),
    ("empty.mp4", "empty.mp4: the file is empty", "Choose a video file that exists"),
    ("notes.mp4", "notes.mp4: not a readable video", "Choose another video file"),
])
def test_a_bad_source_opens_the_window_saying_what_to_do(qtbot, monkeypatch, tmp_path,
                                                          name, reason, hint):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "empty.mp4").touch()
    (folder / "notes.mp4").write_text("not a video")
    message = _window_message(qtbot, monkeypatch, tmp_path, ["--source", str(folder / name)], reason)
    assert f"{hint}, or leave out --source to use the camera." in message
    assert str(folder) not in message       # the file's name, not its full path


def test_a_bad_camera_index_opens_the_window_saying_what_to_do(qtbot, monkeypatch, tmp_path):
    message = _window_message(qtbot, monkeypatch, tmp_path, ["--camera", "-1"],
                              "camera -1: there is no such camera")
    assert "cameras are numbered from 0" in message and "Plug in a webcam" in message
