"""The entry point: clear errors before anything opens."""
from main import main


def test_main_errors_name_the_problem(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["--headless"]) == 2
    assert "--source" in capsys.readouterr().err


def test_an_unreadable_source_is_refused_before_any_window_opens(tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path, reason in ((empty, "empty"), (text, "not a readable video"), (tmp_path, "folder")):
        assert main(["--source", str(path)]) == 2
        error = capsys.readouterr().err
        assert str(path) in error and reason in error
