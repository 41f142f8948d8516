"""`python -m training.run` end to end on real GRID word clips: entry, reports, resume, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from features.cache import FeatureCache, file_digest
from features.dataset import build_manifest
from features.extract import extract_many, find_videos
from features.grid import grid_sentences, import_grid
from training import registry
from training.config import OptimConfig, TrainConfig, load_config, saved_config
from training.decoding import word_error_rate
from training.run import main

REPO = Path(__file__).resolve().parent.parent
WORDS = ("bin", "lay", "place", "set")


@pytest.fixture(scope="module")
def words(tmp_path_factory, grid_dir):
    """48 GRID sentences' command words as clips, with their features cached: (videos, cache)."""
    root = tmp_path_factory.mktemp("words")
    videos, cache = root / "videos", root / "cache"
    import_grid(grid_dir, videos, words=list(WORDS), padding=2,
                sentences=grid_sentences(grid_dir)[::6][:48])
    summary = extract_many(find_videos(videos), FeatureCache(cache), workers=2)
    assert not summary.failed
    return videos, cache


def tiny_config(path: Path, **changes) -> Path:
    values = {"optim": {"epochs": 4, "batch_size": 16, "patience": 10},
              "arch": {"width": 16, "depth": 2}, "split": {"val_fraction": 0.2, "test_fraction": 0.2}}
    values.update(changes)
    path.write_text(yaml.safe_dump(values))
    return path


def run_args(words, tmp_path, name, *extra):
    videos, cache = words
    return ["--config", str(tiny_config(tmp_path / f"{name}.yaml")), "--videos", str(videos),
            "--cache", str(cache), "--registry", str(tmp_path / "models"), "--runs",
            str(tmp_path / "runs"), "--name", name, "--no-progress", *extra]


@pytest.fixture(scope="module")
def trained(words, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trained")
    events = tmp_path / "events.jsonl"
    assert main(run_args(words, tmp_path, "first", "--events", str(events))) == 0
    return tmp_path, tmp_path / "models" / "first", events


def test_run_writes_a_self_describing_entry_with_reports(trained):
    tmp_path, entry, events = trained
    card = json.loads((entry / "card.json").read_text())
    assert card["schema"] == 2 and card["kind"] == "landmark_cnn" and card["classes"] == sorted(WORDS)
    spec = card["input"]
    assert len(spec["feature_names"]) == card["arch_args"]["in_channels"] == 223
    assert len(spec["mean"]) == len(spec["std"]) == 223 and spec["sequence_length"] == 32
    assert card["data"]["clips"] == 48 and set(card["data"]["split_sizes"]) == {"train", "val", "test"}
    for name in ("confusion_matrix.png", "roc_curves.png", "learning_curves.png", "embedding.png",
                 "class_feature_curves.png", "preview.png", "final_report.json",
                 "TRAINING_SUMMARY.md", "split_analysis.json", "weights.safetensors"):
        assert (entry / name).stat().st_size > 0, name
    report = json.loads((entry / "final_report.json").read_text())
    low, high = report["test"]["accuracy_ci95"]
    assert low <= report["test"]["accuracy"] <= high
    best = report["history"][card["training"]["best_epoch"] - 1]
    assert best["epoch"] == report["best_epoch"] == card["training"]["best_epoch"]
    assert card["metrics"]["val_accuracy"] == best["val_accuracy"]
    summary = (entry / "TRAINING_SUMMARY.md").read_text()
    for metric, goal in (("accuracy", 0.8), ("macro_f1", 0.75)):
        value = report["test"][metric]
        verdict = "achieved" if value >= goal else "NOT achieved"
        assert f"- {metric} >= {goal}: {value:.3f} -- {verdict}" in summary
    assert registry.active_names(tmp_path / "models") == {"landmark_cnn": "first"}
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["epoch"] for e in lines if e["event"] == "epoch_end"] == [1, 2, 3, 4]
    assert lines[-1]["event"] == "done" and lines[-1]["entry"] == str(entry)
    last_batches = [e for e in lines if e["event"] == "batch" and e["batch"] == e["batches"]]
    assert [e["epoch"] for e in last_batches] == [1, 2, 3, 4]


def test_batch_events_are_throttled_but_each_epoch_end_is_kept(tmp_path):
    from features.progress import ProgressOutput

    path = tmp_path / "events.jsonl"
    output = ProgressOutput(str(path), progress=False, batch_interval=3600)
    for batch in range(1, 6):
        output({"event": "batch", "epoch": 1, "batch": batch, "batches": 5, "loss": 1.0})
    output({"event": "epoch_end", "epoch": 1})
    output.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["event"], e.get("batch")) for e in lines] == [("batch", 1), ("batch", 5), ("epoch_end", None)]


def test_off_a_terminal_progress_is_one_line_per_stage_or_epoch():
    import io

    from features.progress import ProgressOutput, stage_progress

    log = io.StringIO()
    output = ProgressOutput(None, progress=True, stderr=log)
    step = stage_progress(output, "extract", 200)
    for clip in range(200):
        step(clip, None)
    for epoch in range(1, 31):
        output({"event": "epoch_start", "epoch": epoch, "epochs": 30})
        for batch in range(1, 51):
            output({"event": "batch", "epoch": epoch, "batch": batch, "batches": 50, "loss": 1.0})
        output({"event": "epoch_end", "epoch": epoch, "train_loss": 0.5, "val_accuracy": 0.75})
    output({"event": "done", "text": "registered x"})
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2 + 30 + 1
    assert lines[1] == "extracting lip features: done, 200/200"
    assert lines[2] == "epoch 1/30: train loss 0.500, validation accuracy 0.750"


def test_the_progress_of_a_cross_validated_run_names_its_fold_on_and_off_a_terminal():
    import io

    from features.progress import ProgressOutput

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for log in (io.StringIO(), Terminal()):
        output = ProgressOutput(None, progress=True, stderr=log)
        for fit in ({"fold": 2, "folds": 3, "part": 2, "parts": 4}, {"part": 4, "parts": 4}):
            output({"event": "epoch_start", "epoch": 7, "epochs": 30, **fit})
            output({"event": "batch", "epoch": 7, "batch": 1, "batches": 2, "loss": 1.0, **fit})
            output({"event": "epoch_end", "epoch": 7, "train_loss": 0.5, "val_accuracy": 0.75,
                    **fit})
        output.close()
        assert "Fold 2 of 3 · epoch 7/30" in log.getvalue()
        assert "Final fit on every clip · epoch 7/30" in log.getvalue()


def test_a_failed_run_can_be_retried_under_its_name_and_logs_stay_short(words, tmp_path, capfd):
    (tmp_path / "empty").mkdir()
    failing = run_args(words, tmp_path, "retry")
    failing[failing.index("--videos") + 1] = str(tmp_path / "empty")
    assert main(failing) == 2
    assert (tmp_path / "runs" / "retry").is_dir()
    capfd.readouterr()
    args = [a for a in run_args(words, tmp_path, "retry") if a != "--no-progress"]
    assert main(args) == 0
    err = capfd.readouterr().err
    assert "\r" not in err and len(err.splitlines()) <= 12, err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("epoch")] == [
        "epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"]
    assert main(args) == 2
    err = capfd.readouterr().err
    assert f"registry entry {tmp_path / 'models' / 'retry'} already exists" in err


def test_the_app_predictor_scores_the_test_split_as_the_report_does(trained, words):
    from features.cache import file_digest
    from recognizer.predictor import Predictor

    _, entry, _ = trained
    videos, cache = words
    test = set(json.loads((entry / registry.CLIPS_FILE).read_text())["test"])
    clips = [p for p in find_videos(videos) if file_digest(p) in test]
    predictor = Predictor.from_entry(entry, device="cpu")
    hits = [predictor.predict(FeatureCache(cache).load(p)).phrase == p.parent.name for p in clips]
    report = json.loads((entry / "final_report.json").read_text())
    assert len(clips) == report["test"]["n"] > 0
    assert np.mean(hits) == pytest.approx(report["test"]["accuracy"])


def test_evaluate_cli_reports_compares_and_warns_about_training_clips(trained, words, tmp_path,
                                                                      capsys):
    from training.evaluate import main as evaluate

    _, entry, _ = trained
    out = tmp_path / "eval"
    assert evaluate([str(entry), "--videos", str(words[0]), "--cache", str(words[1]),
                     "--compare", str(entry), "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["test"]["n"] == 48 and result["compare"]["mcnemar"]["p_value"] == 1.0
    assert (out / "confusion_matrix.png").is_file()
    digests = json.loads((entry / registry.CLIPS_FILE).read_text())
    assert len(digests["test"]) == json.loads((entry / "card.json").read_text())["metrics"]["test_clips"]
    assert len(set(digests["train"]) | set(digests["val"])) == 48 - len(digests["test"])
    assert result["clips_seen_in_training"] == 48 - len(digests["test"])
    assert f"warning: {48 - len(digests['test'])} of 48 clips were used to train" in capsys.readouterr().err


def _cli(*args):
    return [sys.executable, "-m", "training.run", *args]


def _wait_for_epochs(events: Path, count: int, process, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.is_file() and events.read_text().count('"epoch_end"') >= count:
            return
        assert process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no progress events")


def test_kill_9_then_resume_reaches_the_same_place(words, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    straight = subprocess.run(_cli(*run_args(words, tmp_path, "straight")), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    events = tmp_path / "killed.jsonl"
    process = subprocess.Popen(_cli(*run_args(words, tmp_path, "killed", "--events", str(events))),
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_epochs(events, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert "killed" not in [e.name for e in registry.list_entries(tmp_path / "models")]
    resumed = subprocess.run(_cli("--resume", str(tmp_path / "runs" / "killed"), "--no-progress",
                                  "--runs", str(tmp_path / "runs")),
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = {name: json.loads((tmp_path / "models" / name / "final_report.json").read_text())["history"]
               for name in ("straight", "killed")}
    assert len(history["killed"]) == len(history["straight"]) == 4
    for a, b in zip(history["straight"], history["killed"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
    card = json.loads((tmp_path / "models" / "killed" / "card.json").read_text())
    assert card["training"]["resumed_from"] >= 2


def test_ddp_with_two_cpu_processes_finishes(words, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "training.run", *run_args(words, tmp_path, "ddp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "models" / "ddp" / "card.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["epochs_run"] == 4


def test_r2plus1d_trains_from_scratch_end_to_end(words, tmp_path):
    config = tiny_config(tmp_path / "r2plus1d.yaml", model="r2plus1d", arch={},
                         data={"crop_frames": 8, "crop_size": 32},
                         optim={"epochs": 1, "batch_size": 8, "patience": 5})
    events = tmp_path / "video.jsonl"
    args = run_args(words, tmp_path, "video", "--events", str(events))
    args[1] = str(config)
    assert main(args) == 0
    card = json.loads((tmp_path / "models" / "video" / "card.json").read_text())
    assert card["kind"] == "r2plus1d" and card["input"]["crop_frames"] == 8
    assert "from scratch" in events.read_text()


def test_config_overrides_and_unknown_keys(tmp_path):
    config = load_config(tiny_config(tmp_path / "c.yaml"), {"optim.epochs": 9, "model": "r2plus1d"})
    assert config.optim.epochs == 9 and config.optim.batch_size == 16 and config.model == "r2plus1d"
    (tmp_path / "bad.yaml").write_text("optim: {epoch: 3}\n")
    with pytest.raises(ValueError, match="epoch"):
        load_config(tmp_path / "bad.yaml")


def test_a_kind_trains_with_its_own_defaults_however_it_is_started():
    from training.config import kind_defaults
    from training.run import config_from_args, parse_args

    reader = kind_defaults("landmark_ctc")
    assert (reader.data.appearance, reader.optim.epochs, reader.optim.weight_decay) == (8, 170, 0.1)
    assert reader.arch == {"dropout": 0.2, "word_frames": 1.5} and reader.augment.mirror == 0.0
    for argv in (["--model", "landmark_ctc"], ["--model", "landmark_ctc", "--config",
                                               str(REPO / "training" / "config.yaml")]):
        assert config_from_args(parse_args(argv)) == reader
    assert load_config(None, {"model": "landmark_ctc"}) == reader
    assert config_from_args(parse_args([])) == kind_defaults("landmark_cnn") == load_config()
    for kind in ("landmark_cnn", "r2plus1d", "few_shot"):     # no defaults file of their own
        assert kind_defaults(kind) == load_config(None, {"model": kind}) == TrainConfig(model=kind)


def test_a_config_file_and_the_flags_win_over_the_kinds_defaults(tmp_path):
    from training.run import config_from_args, parse_args

    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"model": "landmark_ctc", "data": {"appearance": 0},
                                      "arch": {"rnn_width": 16}, "optim": {"epochs": 3}}))
    mine = config_from_args(parse_args(["--config", str(config), "--lr", "0.01"]))
    assert (mine.data.appearance, mine.optim.epochs, mine.optim.lr) == (0, 3, 0.01)
    # what the file does not name stays the kind's, section by section
    assert mine.arch == {"dropout": 0.2, "word_frames": 1.5, "rnn_width": 16}
    assert (mine.optim.weight_decay, mine.optim.batch_size, mine.split.strategy) == (
        0.1, 16, "sentence")
    config.write_text(yaml.safe_dump({"optim": {"epochs": 3}}))      # the kind from the flag
    flagged = config_from_args(parse_args(["--config", str(config), "--model", "landmark_ctc",
                                           "--epochs", "5"]))
    assert (flagged.model, flagged.optim.epochs, flagged.data.appearance) == ("landmark_ctc", 5, 8)
    assert load_config(config) == TrainConfig(optim=OptimConfig(epochs=3))


def test_a_kinds_defaults_file_is_named_in_its_errors(tmp_path, monkeypatch):
    import training.config

    (tmp_path / "landmark_ctc.yaml").write_text("optim: {epoch: 3}\n")
    monkeypatch.setattr(training.config, "KIND_SETTINGS", tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path / 'landmark_ctc.yaml'}.*epoch"):
        load_config(None, {"model": "landmark_ctc"})
    assert load_config(None, {"model": "landmark_cnn"}) == TrainConfig()


def test_a_resumed_run_keeps_its_saved_config_when_the_kinds_defaults_change(tmp_path, monkeypatch):
    import training.config
    from training.run import config_from_args, parse_args, resolve_run

    flags = ["--registry", str(tmp_path / "models"), "--runs", str(tmp_path / "runs")]
    args = parse_args(["--model", "landmark_ctc", "--name", "reader", *flags])
    run_dir, started, resume = resolve_run(args, config_from_args(args))
    assert not resume and started.optim.epochs == 170 and started.data.appearance == 8
    kinds = tmp_path / "kinds"
    kinds.mkdir()
    (kinds / "landmark_ctc.yaml").write_text(
        "optim: {epochs: 99, patience: 5}\narch: {rnn_width: 16}\ndata: {appearance: 4}\n")
    monkeypatch.setattr(training.config, "KIND_SETTINGS", kinds)
    assert load_config(None, {"model": "landmark_ctc"}).optim.epochs == 99
    args = parse_args(["--resume", str(run_dir), *flags])
    _, resumed, resume = resolve_run(args, config_from_args(args))
    assert resume and resumed == started


def test_a_missing_or_empty_videos_folder_is_named_in_the_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder, reason in (("nope", "no such folder"), ("empty", "no clips found")):
        assert main(["--videos", str(tmp_path / folder), "--registry", str(tmp_path / "models"),
                     "--runs", str(tmp_path / "runs"), "--name", folder, "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert str(tmp_path / folder) in error and reason in error
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


@pytest.mark.parametrize("command", ["training.run", "training.evaluate", "features.extract"])
def test_the_command_lines_share_their_common_flags(command, tmp_path):
    import importlib

    parse = importlib.import_module(command).parse_args
    positional = {"training.run": [], "training.evaluate": ["entry", "--videos", "v"],
                  "features.extract": ["v"]}[command]
    common = ["--no-progress", "--cache", str(tmp_path / "c"), "--events", str(tmp_path / "e")]
    if command != "features.extract":
        common += ["--registry", str(tmp_path / "m")]
    args = parse(positional + common)
    assert args.no_progress and Path(args.cache) == tmp_path / "c" and args.events == str(tmp_path / "e")
    if command != "features.extract":
        assert Path(args.registry) == tmp_path / "m"


def test_a_sentence_reader_trains_into_a_self_describing_entry(sentence_entry):
    entry, videos, _ = sentence_entry
    card = json.loads((entry / "card.json").read_text())
    manifest = build_manifest(videos)
    words = {w for text in manifest["text"] for w in text.split()}
    assert card["kind"] == "landmark_ctc" and "".join(card["classes"]) == "".join(
        sorted(set(" ".join(manifest["text"]))))
    assert card["arch_args"]["num_symbols"] == len(card["classes"]) + 1
    assert set(card["input"]["lexicon"]) <= words and len(card["input"]["lexicon"]) > 20
    # The training transcripts' language model knows exactly the lexicon's words, gathered
    # into classes (8 for these 40 words when measured; GRID has 6 slots).
    model = card["input"]["language_model"]
    assert sorted(model["words"]) == sorted(card["input"]["lexicon"])
    assert len(set(model["classes"])) <= len(model["words"]) / 2
    assert card["data"]["split"] == "auto"       # the kind's own: sentence-disjoint
    digests = json.loads((entry / registry.CLIPS_FILE).read_text())
    text_of = {file_digest(p): t for p, t in zip(manifest["path"], manifest["text"])}
    seen = {name: {text_of[d] for d in digests[name]} for name in ("train", "val", "test")}
    assert not seen["test"] & (seen["train"] | seen["val"]), "a sentence is in two splits"
    report = json.loads((entry / "final_report.json").read_text())
    losses = [h["train_loss"] for h in report["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    examples = json.loads((entry / "transcripts.json").read_text())
    assert len(examples) == card["metrics"]["test_clips"] == len(digests["test"])
    greedy = [e["greedy"] for e in examples]
    assert card["metrics"]["wer"] == pytest.approx(
        word_error_rate([e["reference"] for e in examples], greedy))
    summary = (entry / "TRAINING_SUMMARY.md").read_text()
    assert f"| greedy | {card['metrics']['wer']:.3f} | {card['metrics']['cer']:.3f} |" in summary
    for name in ("learning_curves.png", "split_analysis.json"):
        assert (entry / name).stat().st_size > 0


def test_evaluate_prints_wer_for_a_sentence_reader_and_scores_a_phrase_list(
        sentence_entry, grid_dir, grid_cache, tmp_path, capsys):
    from training.evaluate import main as evaluate

    entry, _, cache = sentence_entry
    paths = grid_cache[1]
    import_grid(grid_dir, tmp_path / "other", sentences=[p.stem for p in paths[1::3][:10]], whole=True)
    assert evaluate([str(entry), "--videos", str(tmp_path / "other"), "--cache", str(cache.root),
                     "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    out = capsys.readouterr().out
    assert f"WER {result['greedy']['wer']:.3f}, CER {result['greedy']['cer']:.3f}" in out
    assert result["greedy"]["n"] == 10
    import_grid(grid_dir, tmp_path / "words", words=["bin", "lay", "place", "set"], padding=4,
                sentences=[p.stem for p in paths[1::3][:10]])
    assert evaluate([str(entry), "--videos", str(tmp_path / "words"), "--cache", str(cache.root),
                     "--out", str(tmp_path / "phrases"), "--phrases", "bin,lay,place,set,help",
                     "--no-progress"]) == 0
    scored = json.loads((tmp_path / "phrases" / "phrase_list.json").read_text())
    assert scored["n"] == 10 and scored["phrases"] == ["bin", "lay", "place", "set", "help"]
    assert f"accuracy {scored['accuracy']:.3f}, top-3 {scored['top3_accuracy']:.3f}" in capsys.readouterr().out


def test_headless_reads_with_a_sentence_reader_among_the_given_phrases(sentence_entry, grid_dir):
    import io

    from recognizer.headless import run_headless

    entry, _, _ = sentence_entry
    phrases = ("bin blue at f two now", "lay white with e one soon", "place red by q nine again")
    out, err = io.StringIO(), io.StringIO()
    assert run_headless(grid_dir / "video" / "bbaf2n.mp4", entry.parent, "landmark_ctc",
                        out=out, err=err, phrases=phrases) == 0, err.getvalue()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines, err.getvalue()
    for line in lines:
        assert sorted(p for p, _ in line["top3"]) == sorted(phrases)
        shares = [p for _, p in line["top3"]]      # the rest: none of these phrases
        assert shares == sorted(shares, reverse=True) and 0 <= sum(shares) <= 1 + 1e-3


def test_the_shipped_sentence_reader_was_trained_with_the_readers_config():
    from tests.conftest import SHIPPED_READER

    config = load_config(None, {"model": "landmark_ctc"})    # what --model landmark_ctc uses
    assert (config.model, config.split.strategy, config.augment.mirror) == ("landmark_ctc", "sentence", 0.0)
    assert config.augment.word_crop > 0 and config.data.appearance == 8
    # As trained (a setting added since reads as its default, which that training had).
    trained = saved_config(json.loads((SHIPPED_READER / "card.json").read_text())["training"]
                           ["config"], "the shipped reader's card")
    for part in ("arch", "augment", "split"):
        assert getattr(trained, part) == getattr(config, part), part
    # and the optimiser's, but for the training's seed: the best of three on validation
    assert trained.optim == replace(config.optim, seed=2)
    assert replace(trained.data, videos="", cache="") == replace(config.data, videos="", cache="")


def test_a_sentence_reader_trains_with_ddp_on_two_cpu_processes(sentence_entry, tmp_path):
    """The CTC loss, its variable-length batches (of like lengths, as the shipped reader
    trains) and WER validation under DistributedDataParallel."""
    entry, videos, cache = sentence_entry
    config = tmp_path / "ctc.yaml"
    config.write_text(yaml.safe_dump({
        "model": "landmark_ctc", "arch": {"conv_width": 16, "conv_layers": 1, "rnn_width": 16,
                                          "rnn_layers": 1, "dropout": 0.1},
        "optim": {"epochs": 2, "batch_size": 8, "label_smoothing": 0.0, "length_groups": 2},
        "split": {"val_fraction": 0.15, "test_fraction": 0.15}}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29534",
         "-m", "training.run", "--config", str(config), "--videos", str(videos), "--cache",
         str(cache.root), "--registry", str(tmp_path / "models"), "--runs", str(tmp_path / "runs"),
         "--name", "ddp-reader", "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "models" / "ddp-reader" / "card.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["epochs_run"] == 2
    assert card["kind"] == "landmark_ctc" and 0 <= card["metrics"]["wer"]
    history = json.loads((tmp_path / "models" / "ddp-reader" / "final_report.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["val_wer"]) for h in history)


def test_a_missing_weights_file_is_named_before_any_clip_is_read(tmp_path, capsys):
    from training.run import main as run

    code = run(["--model", "r2plus1d", "--pretrained", str(tmp_path / "r2plus1d_18.pth"),
                "--videos", str(tmp_path / "no_videos_here"), "--cache", str(tmp_path / "cache"),
                "--registry", str(tmp_path / "models"), "--runs", str(tmp_path / "runs"),
                "--no-progress"])
    said = capsys.readouterr()
    assert code == 2 and "r2plus1d_18.pth" in said.out + said.err
    assert "no_videos_here" not in said.out + said.err and not (tmp_path / "cache").exists()
