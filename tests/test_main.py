"""The entry point: clear errors before anything opens."""
from main import main


def test_main_errors_name_the_problem(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["--headless"]) == 2
    assert "--source" in capsys.readouterr().err
