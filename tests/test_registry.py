"""The model registry: atomic entries, active pointers, safe loading, CLI."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import registry
from training.models import build_model, load_pretrained
from training.registry import (activate, active_entry, delete, list_entries, load_entry,
                               write_entry)
from training.registry import cli as registry_cli

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARCH_ARGS = {"in_channels": 4, "num_classes": 2, "length": 8, "width": 8, "depth": 1}
CARD = {"kind": "landmark_cnn", "arch_args": ARCH_ARGS, "classes": ["yes", "no"],
        "metrics": {"accuracy": 0.875}}

KILLED_WRITER = f"""
import sys, time
from training import registry
from training.registry import cli as registry_cli
from training.models import build_model

def stalled_card_write(path, data):
    print("weights written", flush=True)
    time.sleep(60)

registry._write_json = stalled_card_write
registry.write_entry(sys.argv[1], "victim", build_model("landmark_cnn", {ARCH_ARGS!r}),
                     {CARD!r})
"""


def _model() -> torch.nn.Module:
    return build_model("landmark_cnn", ARCH_ARGS)


def _subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def test_writer_killed_mid_write_leaves_no_entry(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
                              cwd=PROJECT_ROOT, env=_subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = writer.stdout.readline()
        assert line.strip() == "weights written", writer.stderr.read()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
    leftovers = list(tmp_path.glob(".tmp-victim-*"))
    assert leftovers and (leftovers[0] / registry.WEIGHTS_FILE).is_file()
    assert list_entries(tmp_path) == []
    assert not (tmp_path / "victim").exists()

    write_entry(tmp_path, "victim", _model(), CARD)
    assert [e.name for e in list_entries(tmp_path)] == ["victim"]
    assert not any(p.exists() for p in leftovers)


def test_only_complete_entries_are_listed(tmp_path):
    good = write_entry(tmp_path, "good", _model(), CARD, {"report.txt": b"ok"})
    shutil.copytree(good, tmp_path / ".tmp-half-123")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "face_landmarker.task").write_bytes(b"model")
    (tmp_path / "no-card").mkdir()
    shutil.copytree(good, tmp_path / "bad-card")
    (tmp_path / "bad-card" / "card.json").write_text("{not json")
    shutil.copytree(good, tmp_path / "no-weights")
    (tmp_path / "no-weights" / "weights.safetensors").unlink()
    entries = list_entries(tmp_path)
    assert [e.name for e in entries] == ["good"]
    assert entries[0].card["files"] == ["report.txt"]
    assert (good / "report.txt").read_bytes() == b"ok"
    with pytest.raises(FileExistsError, match="good"):
        write_entry(tmp_path, "good", _model(), CARD)
    assert "assets" not in [e.name for e in list_entries(registry.DEFAULT_ROOT)]


def test_activate_and_delete(tmp_path):
    write_entry(tmp_path, "first", _model(), CARD)
    write_entry(tmp_path, "second", _model(), CARD)
    assert active_entry(tmp_path, "landmark_cnn") is None
    activate(tmp_path, "first")
    assert active_entry(tmp_path, "landmark_cnn") == tmp_path / "first"
    activate(tmp_path, "second")
    assert active_entry(tmp_path, "landmark_cnn") == tmp_path / "second"
    assert json.loads((tmp_path / "active.json").read_text()) == {"landmark_cnn": "second"}

    delete(tmp_path, "first")
    with pytest.raises(ValueError, match="active"):
        delete(tmp_path, "second")
    delete(tmp_path, "second", force=True)
    assert active_entry(tmp_path, "landmark_cnn") is None
    assert list_entries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["active.json"]
    with pytest.raises(FileNotFoundError, match="first"):
        activate(tmp_path, "first")


class _RunsCode:
    """Unpickling this calls os.makedirs(marker): a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _entry_with_pt(folder: Path, state: dict) -> Path:
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(CARD))
    torch.save(state, folder / "weights.pt")
    return folder


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    entry = _entry_with_pt(tmp_path / "evil", {"fc.weight": _RunsCode(marker)})
    with pytest.raises(ValueError, match="weights_only"):
        load_entry(entry, device="cpu")
    assert not marker.exists()
    torch.load(entry / "weights.pt", weights_only=False)  # the payload is live
    assert marker.exists()


def test_plain_pt_weights_still_load(tmp_path):
    model = _model().eval()
    entry = _entry_with_pt(tmp_path / "legacy", model.state_dict())
    batch = torch.randn(3, 4, 8)
    with torch.no_grad():
        assert torch.equal(load_entry(entry, device="cpu").model(batch), model(batch))


def test_pretrained_weights_come_only_from_a_named_local_file(tmp_path):
    model = build_model("r2plus1d", {"num_classes": 3})
    with pytest.raises(FileNotFoundError, match="r2plus1d_18-91a641e6.pth"):
        load_pretrained(model, tmp_path / "r2plus1d_18-91a641e6.pth")
    torch.save(_model().state_dict(), tmp_path / "landmarks.pth")
    with pytest.raises(ValueError, match="landmarks.pth"):
        load_pretrained(model, tmp_path / "landmarks.pth")

    kinetics = build_model("r2plus1d", {"num_classes": 400})
    torch.save(kinetics.state_dict(), tmp_path / "kinetics.pth")
    fc_before = model.fc.weight.clone()
    load_pretrained(model, tmp_path / "kinetics.pth")
    assert torch.equal(model.layer4[1].conv2[0][0].weight, kinetics.layer4[1].conv2[0][0].weight)
    assert torch.equal(model.fc.weight, fc_before)


def test_cli_list_show_activate_delete(tmp_path, capsys):
    write_entry(tmp_path, "landmark_cnn-20250101-120000", _model(), CARD)
    root = ["--root", str(tmp_path)]
    assert registry_cli.main(["activate", "landmark_cnn-20250101-120000", *root]) == 0
    assert registry_cli.main(["list", *root]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines()
               if "landmark_cnn-20250101-120000" in line and not line.startswith("activated"))
    assert row[:5] == ["*", "landmark_cnn-20250101-120000", "landmark_cnn", "2", "87.5%"]
    assert registry_cli.main(["show", "landmark_cnn-20250101-120000", *root]) == 0
    assert '"kind": "landmark_cnn"' in capsys.readouterr().out
    assert registry_cli.main(["show", "missing", *root]) == 1
    assert "missing" in capsys.readouterr().err
    assert registry_cli.main(["delete", "landmark_cnn-20250101-120000", *root]) == 1

    done = subprocess.run([sys.executable, "-m", "training.registry", "list", *root],
                          cwd=PROJECT_ROOT, env=_subprocess_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "landmark_cnn-20250101-120000" in done.stdout
