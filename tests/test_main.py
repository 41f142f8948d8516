"""The entry point on a real clip: utterances as JSON lines, clear errors."""
import json

from main import main


def test_main_prints_the_utterance_of_a_grid_sentence(grid_dir, capsys):
    assert main(["--source", str(grid_dir / "video" / "bbaf2n.mp4")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    # "bin blue at f two now" is spoken over frames 24-53.
    assert 18 <= lines[0]["start_frame"] <= 33 and 48 <= lines[0]["end_frame"] <= 60


def test_main_errors_name_the_problem(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["--headless"]) == 2
    assert "--source" in capsys.readouterr().err
