"""The model registry: atomic entries, active pointers, safe loading, CLI."""
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training import registry
from training.card import Card
from training.kinds import get_kind
from training.kinds.landmark_cnn import LandmarkInput
from training.kinds.r2plus1d import load_pretrained
from training.registry import (activate, active_entry, damaged_entries, delete, list_entries,
                               load_entry, write_entry)
from training.registry import cli as registry_cli

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARCH_ARGS = {"in_channels": 4, "num_classes": 2, "length": 8, "width": 8, "depth": 1}
CARD = Card("landmark_cnn", ARCH_ARGS, ("yes", "no"),
            LandmarkInput(8, True, 3, ("a", "b", "c", "d"), (0.0,) * 4, (1.0,) * 4),
            metrics={"accuracy": 0.875})

KILLED_WRITER = f"""
import json, sys, time
from training import registry
from training.card import Card
from training.kinds import get_kind

def stalled_card_write(path, data):
    print("weights written", flush=True)
    time.sleep(60)

registry._write_json = stalled_card_write
registry.write_entry(sys.argv[1], "victim", get_kind("landmark_cnn").build({ARCH_ARGS!r}),
                     Card.from_json(json.loads({json.dumps(CARD.to_json())!r}), "test card"))
"""


def _model() -> torch.nn.Module:
    return get_kind("landmark_cnn").build(ARCH_ARGS)


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
    assert entries[0].card.files == ("report.txt",)
    damaged = {d.name: d.reason for d in damaged_entries(tmp_path)}
    assert sorted(damaged) == ["bad-card", "no-card", "no-weights"]
    assert "bad-card/card.json: unreadable card" in damaged["bad-card"]
    assert "no-card/card.json" in damaged["no-card"]
    assert "no weights.safetensors" in damaged["no-weights"]
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
    (folder / "card.json").write_text(json.dumps(CARD.to_json()))
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
    model = get_kind("r2plus1d").build({"num_classes": 3})
    with pytest.raises(FileNotFoundError, match="r2plus1d_18-91a641e6.pth"):
        load_pretrained(model, tmp_path / "r2plus1d_18-91a641e6.pth")
    torch.save(_model().state_dict(), tmp_path / "landmarks.pth")
    with pytest.raises(ValueError, match="landmarks.pth"):
        load_pretrained(model, tmp_path / "landmarks.pth")

    kinetics = get_kind("r2plus1d").build({"num_classes": 400})
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


def test_card_round_trip_and_refusals_name_the_entry_and_field(tmp_path):
    entry = write_entry(tmp_path, "typed", _model(), CARD)
    card = registry.read_card(entry)
    assert card == replace(CARD, name="typed", created_at=card.created_at, tensors=card.tensors)
    assert card.input.mean == (0.0,) * 4 and card.accuracy == 0.875
    stored = json.loads((entry / "card.json").read_text())
    assert stored["schema"] == 2 and stored["input"]["feature_names"] == ["a", "b", "c", "d"]

    def refused(change, match):
        broken = json.loads((entry / "card.json").read_text())
        change(broken)
        (entry / "card.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=match):
            registry.read_card(entry)
        (entry / "card.json").write_text(json.dumps(stored))

    refused(lambda c: c.update(schema=7), r"typed/card.json: unknown card schema version 7")
    refused(lambda c: c.pop("classes"), r"typed/card.json: missing field 'classes'")
    refused(lambda c: c["input"].pop("std"), r"typed/card.json: field 'input': missing field 'std'")
    refused(lambda c: c.update(classes="yes"), r"field 'classes': expected a list")
    refused(lambda c: c.update(kind="lstm"), r"field 'kind': unknown model kind 'lstm'")
    refused(lambda c: c.update(arch_args={**ARCH_ARGS, "num_classes": 3}), "num_classes=3")


def test_card_of_schema_1_is_upgraded(tmp_path):
    entry = write_entry(tmp_path, "old", _model(), CARD)
    new = json.loads((entry / "card.json").read_text())
    old = {k: v for k, v in new.items() if k not in ("schema", "input")}
    old.update(input={"sequence_length": 8, "velocities": True, "max_gap": 3},
               feature_names=new["input"]["feature_names"],
               normalisation={"mean": new["input"]["mean"], "std": new["input"]["std"]})
    (entry / "card.json").write_text(json.dumps(old))
    assert registry.read_card(entry).input == CARD.input
    assert load_entry(entry, device="cpu").card.input == CARD.input


def test_a_damaged_entry_is_listed_with_its_file_and_reason(tmp_path, capsys):
    write_entry(tmp_path, "good", _model(), CARD)
    broken = write_entry(tmp_path, "broken", _model(), CARD)
    text = (broken / "card.json").read_text()
    (broken / "card.json").write_text(text[: len(text) // 2])
    assert registry_cli.main(["list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and f"DAMAGED broken: {broken / 'card.json'}: unreadable card" in out
    (tmp_path / "good" / "card.json").unlink()
    assert registry_cli.main(["list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no entries" not in out and out.count("DAMAGED") == 2


def test_the_app_names_the_damaged_entry_it_cannot_use(tmp_path, grid_dir):
    import io

    from recognizer.headless import run_headless

    broken = write_entry(tmp_path, "broken", _model(), CARD)
    activate(tmp_path, "broken")
    text = (broken / "card.json").read_text()
    (broken / "card.json").write_text(text[: len(text) // 2])
    for pointer in (True, False):
        if not pointer:
            (tmp_path / "active.json").unlink()
        out, err = io.StringIO(), io.StringIO()
        assert run_headless(grid_dir / "video" / "bbaf2n.mp4", tmp_path, "landmark_cnn",
                            out=out, err=err) == 2
        assert f"{broken / 'card.json'}: unreadable card" in err.getvalue(), err.getvalue()
        assert "no trained" not in err.getvalue() or "damaged entry" in err.getvalue()


def test_entries_shipped_with_the_app_are_listed_and_used_but_never_deleted(tmp_path, capsys):
    shipped = tmp_path / registry.SHIPPED_DIR
    write_entry(shipped, "reader", _model(), CARD)
    assert registry_cli.main(["list", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["reader", "(shipped)", "landmark_cnn"]
    [entry] = list_entries(tmp_path)
    assert entry.name == "reader" and entry.shipped and entry.path == shipped / "reader"
    assert registry.entry_path(tmp_path, "reader") == shipped / "reader"
    activate(tmp_path, "reader")
    assert active_entry(tmp_path, "landmark_cnn") == shipped / "reader"
    assert load_entry(active_entry(tmp_path, "landmark_cnn"), "cpu").card.classes == ("yes", "no")
    with pytest.raises(ValueError, match="ships with the app"):
        delete(tmp_path, "reader", force=True)
    assert (shipped / "reader").is_dir()
    # The user's own entry of that name comes first.
    write_entry(tmp_path, "reader", _model(), replace(CARD, classes=("no", "yes")))
    assert [(e.name, e.shipped) for e in list_entries(tmp_path)] == [("reader", False)]
    assert active_entry(tmp_path, "landmark_cnn") == tmp_path / "reader"


def _shipped_reader():
    """The sentence reader a fresh clone ships, and the digests of its test split's clips."""
    [shipped] = [e for e in list_entries(registry.DEFAULT_ROOT)
                 if e.shipped and e.card.kind == "landmark_ctc"]
    return shipped, set(json.loads((shipped.path / registry.CLIPS_FILE).read_text())["test"])


def test_the_shipped_sentence_reader_reads_sentences_it_never_saw(grid_cache):
    """Measured on its whole test split (200 sentences): WER 0.058 with the lexicon, the
    language model and the word head, as transcript mode reads."""
    from features.cache import file_digest
    from features.grid import parse_align
    from recognizer.predictor import Predictor
    from training.decoding import word_error_rate

    shipped, test = _shipped_reader()
    cache, paths = grid_cache
    held_out = [p for p in paths if file_digest(p) in test]
    assert len(held_out) >= 50
    predictor = Predictor.from_entry(shipped.path, "cpu", mode="transcript")
    align = paths[0].parent.parent / "align"
    references = [" ".join(w.word for w in parse_align(align / f"{p.stem}.align") if not w.is_silence)
                  for p in held_out]
    readings = [predictor.predict(cache.load(p)).text for p in held_out]
    # 0.048 measured on these 77, as the reader before it (100 epochs in plain batches); the
    # one before that (weight decay 0.01) 0.056, the one trained without the word head
    # 0.071, the landmark-only one before it 0.134.
    assert word_error_rate(references, readings) <= 0.10
    # A phrase list that lacks the sentence is not sure of any phrase; with it, it is.
    right = next(i for i, (said, read) in enumerate(zip(references, readings)) if said == read)
    clip, sentence = cache.load(held_out[right]), references[right]
    others = ("help", "doctor", "glasses", "phone", "pillow", "i need to move")
    assert Predictor.from_entry(shipped.path, "cpu", phrases=others).predict(clip).confidence < 0.2
    listed = Predictor.from_entry(shipped.path, "cpu", phrases=others + (sentence,)).predict(clip)
    assert listed.phrase == sentence and listed.confidence > 0.5


def test_evaluate_finds_an_entry_by_the_name_the_registry_lists(tmp_path):
    """Shipped entries too: ``training.evaluate grid-sentences-...`` as ``registry list``
    names it, not only by its folder."""
    from training.evaluate import _entry_path

    shipped, _ = _shipped_reader()
    assert _entry_path(Path(shipped.name), registry.DEFAULT_ROOT) == shipped.path
    assert _entry_path(shipped.path, tmp_path) == shipped.path
    with pytest.raises(FileNotFoundError, match="no-such-entry: no registry entry there"):
        _entry_path(Path("no-such-entry"), registry.DEFAULT_ROOT)


def test_the_demo_reads_its_bundled_sentence_with_the_shipped_reader(capsys):
    """A sentence of the shipped reader's test split: it never trained or tuned on it."""
    from features.cache import file_digest
    from main import main
    from recognizer.reading import DEMO_CLIP

    assert file_digest(DEMO_CLIP) in _shipped_reader()[1]
    assert main(["--headless", "--demo"]) == 0
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["text"] == line["phrase"] == "set green at v six please"


def test_an_entry_being_replaced_when_its_writer_died_is_put_back(tmp_path):
    """Its writer had moved the old entry aside and not yet moved the new one in."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    entry = registry.write_entry(tmp_path, "ward", _model(), CARD)
    entry.rename(tmp_path / f".del-ward-{dead}")
    (tmp_path / f".tmp-ward-{dead}").mkdir()               # the new one, half-written
    registry.remove_stale_temps(tmp_path)
    assert registry.read_card(entry).name == "ward"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ward"]


def _cut(weights: Path, keep: int) -> None:
    weights.write_bytes(weights.read_bytes()[:keep])


def test_an_entry_whose_weights_are_damaged_is_listed_damaged_with_its_reason(tmp_path, capsys):
    """Told from the weights file's header, without loading a model: cut short (the shipped
    reader copied and truncated), a corrupt header, bytes added, tensors of another model."""
    root = tmp_path / "models"
    write_entry(root, "good", _model(), CARD)
    [shipped] = [e for e in list_entries(registry.DEFAULT_ROOT) if e.shipped]
    shutil.copytree(shipped.path, root / "cut")
    weights = root / "cut" / registry.WEIGHTS_FILE
    _cut(weights, weights.stat().st_size // 2)
    _cut(write_entry(root, "stub", _model(), CARD) / registry.WEIGHTS_FILE, 5)
    header = write_entry(root, "header", _model(), CARD) / registry.WEIGHTS_FILE
    header.write_bytes(header.read_bytes()[:8] + b"#" * 20 + header.read_bytes()[28:])
    grown = write_entry(root, "grown", _model(), CARD) / registry.WEIGHTS_FILE
    grown.write_bytes(grown.read_bytes() + b"\0" * 16)
    wider = replace(CARD, arch_args={**ARCH_ARGS, "width": 16})
    with pytest.raises(ValueError, match="the card does not describe the model to save"):
        write_entry(root, "other", _model(), wider)         # and nothing is left
    write_entry(root, "wider", get_kind("landmark_cnn").build(wider.arch_args), wider)
    write_entry(root, "other", _model(), CARD)
    shutil.copyfile(root / "wider" / registry.WEIGHTS_FILE, root / "other" / registry.WEIGHTS_FILE)

    assert [e.name for e in list_entries(root)] == ["good", "wider"]
    damaged = {d.name: d for d in damaged_entries(root)}
    assert sorted(damaged) == ["cut", "grown", "header", "other", "stub"]
    assert "weights.safetensors is cut short: " in damaged["cut"].reason
    assert "cut short: 5 bytes, not even a header" in damaged["stub"].reason
    assert "weights.safetensors is corrupt: its header is not readable" in damaged["header"].reason
    assert "corrupt: 16 bytes after its last tensor" in damaged["grown"].reason
    assert "does not fit the card's landmark_cnn model" in damaged["other"].reason
    assert "of other shapes" in damaged["other"].reason
    assert damaged["cut"].advice == "train it again, or delete the folder models/cut"

    assert registry_cli.main(["list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("DAMAGED") == 5
    assert (f"DAMAGED cut: {damaged['cut'].reason}; train it again, or delete the folder "
            "models/cut") in out
    assert "DAMAGED other: weights.safetensors does not fit" in out
    for name in damaged:
        with pytest.raises(ValueError, match=r"weights\.safetensors"):
            load_entry(root / name, device="cpu")
        with pytest.raises(ValueError, match=r"weights\.safetensors"):
            activate(root, name)


def test_weights_are_checked_once_per_version_of_the_file(tmp_path, monkeypatch):
    """Listing again reads no header; a file written anew is read again."""
    from training.registry import weights as weights_module

    entry = write_entry(tmp_path, "good", _model(), CARD)
    assert [e.name for e in list_entries(tmp_path)] == ["good"]
    read = []
    real = weights_module.header_shapes
    monkeypatch.setattr(weights_module, "header_shapes",
                        lambda *args: read.append(args[0]) or real(*args))
    assert [e.name for e in list_entries(tmp_path)] == ["good"] and read == []
    _cut(entry / registry.WEIGHTS_FILE, 100)
    assert list_entries(tmp_path) == [] and read == [str(entry / registry.WEIGHTS_FILE)]


def test_active_problem_says_why_the_saved_model_cannot_be_used(tmp_path):
    from recognizer.predictor import find_entry

    root = tmp_path / "models"
    assert registry.active_problem(root, "landmark_cnn") is None      # nothing saved yet
    write_entry(root, "older", _model(), CARD)
    chosen = write_entry(root, "chosen", _model(), CARD)
    activate(root, "chosen")
    assert registry.active_problem(root, "landmark_cnn") is None
    _cut(chosen / registry.WEIGHTS_FILE, 300)
    problem = registry.active_problem(root, "landmark_cnn")
    assert problem.startswith("The saved model chosen is damaged: weights.safetensors is cut short")
    assert problem.endswith("Train it again, or delete the folder models/chosen")
    assert str(tmp_path) not in problem
    assert active_entry(root, "landmark_cnn") is None
    # The app is pointed at the damaged entry, whose loading says why, not at another.
    assert find_entry(root, "landmark_cnn") == chosen
    assert registry.active_problem(root, "r2plus1d") is None

    shutil.rmtree(chosen)
    assert registry.active_problem(root, "landmark_cnn") == (
        "The saved model chosen is gone (no folder models/chosen): choose another model, or train one")
    (root / "active.json").write_text("{not json")
    assert "models/active.json) cannot be read" in registry.active_problem(root, "landmark_cnn")


LIST_IN_A_FRESH_PROCESS = """
import sys
from training.registry import damaged_entries, list_entries
print([e.name for e in list_entries(sys.argv[1])], [d.name for d in damaged_entries(sys.argv[1])],
      "torchvision" in sys.modules)
"""


def test_a_video_entry_is_checked_without_importing_its_model_library(tmp_path):
    """The card's tensor digest says the weights fit: listing the registry (which the window
    does at start) imports no torchvision, whose libraries cost every recogniser ~300 MB.
    A card without the digest (written before it) is still checked by building the model."""
    from tests.conftest import write_tiny_video_entry

    entry = write_tiny_video_entry(tmp_path, "video")
    card = json.loads((entry / "card.json").read_text())
    assert len(card["tensors"]) == 32

    def listed() -> str:
        result = subprocess.run([sys.executable, "-c", LIST_IN_A_FRESH_PROCESS, str(tmp_path)],
                                cwd=PROJECT_ROOT, env=_subprocess_env(), capture_output=True,
                                text=True, check=True)
        return result.stdout.strip()

    assert listed() == "['video'] [] False"
    (entry / "card.json").write_text(json.dumps({**card, "tensors": "0" * 32}))
    assert listed() == "['video'] [] True"                 # a wrong digest: the model decides
    del card["tensors"]
    (entry / "card.json").write_text(json.dumps({**card, "arch_args": {**card["arch_args"],
                                                                       "num_classes": 5},
                                                 "classes": ["a", "b", "c", "d", "e"]}))
    assert listed() == "[] ['video'] True"                 # no digest, another model: damaged


def test_a_model_is_loaded_with_its_weights_in_memory_once(tmp_path, monkeypatch):
    """Built on ``meta``, it takes the file's tensors; a tensor the file cannot give (a
    buffer kept out of the state dict) is named, not left on ``meta`` to fail mid-reading."""
    model = _model()
    loaded = load_entry(write_entry(tmp_path, "once", model, CARD), device="cpu").model
    assert not any(p.is_meta for p in loaded.parameters())
    batch = torch.randn(3, 4, 8)
    with torch.no_grad():
        assert torch.equal(loaded(batch), model.eval()(batch))

    kind = get_kind("landmark_cnn")
    real_build = kind.build

    def with_a_buffer(arch_args):
        built = real_build(arch_args)
        built.register_buffer("window", torch.ones(8), persistent=False)
        return built

    monkeypatch.setattr(kind, "build", with_a_buffer)
    with pytest.raises(ValueError, match=r"weights\.safetensors: the landmark_cnn model has "
                                         r"tensors its weights file cannot give \(window\)"):
        load_entry(tmp_path / "once", device="cpu")
