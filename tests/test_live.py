"""The live recognition core on real GRID clips: predictor, live recogniser, headless run, state."""
import io
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from features.frame_features import FEATURE_NAMES, FeaturePipeline
from features.video import VideoFileSource
from recognizer.headless import run_headless
from recognizer.live import PLOT_NAMES, LiveConfig, LiveRecognizer, PlotHistory
from recognizer.predictor import Predictor, utterance_clip
from recognizer.segmenter import Utterance
from recognizer.state import AppState, HistoryLog
from training import registry
from training.config import DataConfig
from training.evaluate import input_spec
from training.models import build_model
from tests.conftest import WORDS



@pytest.fixture(scope="module")
def trained(word_models):
    return word_models


@pytest.fixture(scope="module")
def predictor(trained):
    return Predictor.from_entry(trained[2] / "t", device="cpu")


def _clips(videos: Path, per_word: int) -> list[tuple[str, Path]]:
    return [(word, path) for word in WORDS
            for path in sorted((videos / word).glob("*.mp4"))[:per_word]]


def _live_rows(path: Path, crops: bool = False) -> list:
    """The FeaturePipeline rows of a file, frame by frame as the live app makes them.

    The extractor resets its pipeline before each clip, and a reset landmarker
    tracks slightly differently from a fresh one (lip points differ by ~0.005
    from the second frame on), so parity needs the same reset here.
    """
    with FeaturePipeline(crops=crops) as pipeline:
        pipeline.reset()
        return [pipeline.process(frame) for frame in VideoFileSource(path)]


def test_predictor_reads_cached_word_clips(trained, predictor):
    videos, cache, _ = trained
    hits = 0
    for word, path in _clips(videos, 3):
        prediction = predictor.predict(cache.load(path))
        probs = [p for _, p in prediction.top3]
        assert len(prediction.top3) == 3 and probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1 + 1e-6 and prediction.confidence == probs[0]
        assert math.isclose(sum(prediction.probabilities), 1, abs_tol=1e-5)
        assert prediction.kind == "landmark_cnn" and prediction.entry == "t"
        hits += prediction.phrase == word
    assert hits >= 9, f"only {hits} of 12 word clips recognised"


def test_live_buffer_and_cache_give_the_same_probabilities(trained, predictor):
    videos, cache, _ = trained
    path = _clips(videos, 1)[2][1]
    live = predictor.probabilities(utterance_clip(_live_rows(path)))
    offline = predictor.probabilities(cache.load(path))
    np.testing.assert_allclose(live, offline, atol=1e-4)


def test_margin_cuts_the_utterance_out_of_the_buffer(trained):
    rows = _live_rows(_clips(trained[0], 1)[0][1])
    clip = utterance_clip(rows, utterance=Utterance(6, 9, 240, 360), margin=4)
    assert len(clip.valid) == 12 and clip.timestamps_ms[0] == rows[2].timestamp_ms
    assert clip.fps == pytest.approx(25.0) and clip.crops.shape == (12, 0, 0)
    with pytest.raises(ValueError, match="buffer"):
        utterance_clip(rows, utterance=Utterance(900, 950), margin=4)


def test_r2plus1d_entry_predicts_the_same_from_live_crops_and_the_cache(trained, tmp_path):
    videos, cache, _ = trained
    data = DataConfig(crop_frames=8, crop_size=32)
    card = {"kind": "r2plus1d", "arch_args": {"num_classes": 4, "frames": 8, "size": 32},
            "classes": list(WORDS), "feature_names": [], "normalisation": None,
            "input": input_spec("r2plus1d", data), "metrics": {}}
    model = build_model("r2plus1d", card["arch_args"])
    entry = registry.write_entry(tmp_path, "video", model, card)
    video = Predictor.from_entry(entry, device="cpu")
    path = _clips(videos, 1)[0][1]
    live = video.predict(utterance_clip(_live_rows(path, crops=True)))
    offline = video.predict(cache.load(path))
    np.testing.assert_allclose(live.probabilities, offline.probabilities, atol=1e-4)
    assert video.needs_crops and live.kind == "r2plus1d"
    with pytest.raises(ValueError, match="crops=True"):
        video.predict(utterance_clip(_live_rows(path, crops=False)))


def test_entry_with_other_features_is_refused_with_a_retrain_hint(trained, tmp_path):
    loaded = registry.load_entry(trained[2] / "t", device="cpu")
    names = list(loaded.card["feature_names"])
    names[7] = "lip99_x"
    stale = type(loaded)(loaded.name, loaded.path, {**loaded.card, "feature_names": names},
                         loaded.model, loaded.device)
    with pytest.raises(ValueError, match="re-train.*training.run"):
        Predictor(stale)


@pytest.fixture(scope="module")
def sentence_rows(grid_dir):
    """Rows of 'bin blue at f two now' then 'lay blue at x eight now': two files, one stream."""
    rows = []
    with FeaturePipeline(crops=False) as pipeline:
        for name in ("bbaf2n", "lbax8n"):
            for frame in VideoFileSource(grid_dir / "video" / f"{name}.mp4"):
                offset = len(rows)
                rows.append(pipeline.process(type(frame)(offset, offset * 40, frame.rgb)))
    return rows


def test_live_recognizer_over_sentences_draws_and_recognises(sentence_rows, predictor):
    live = LiveRecognizer(FEATURE_NAMES, predictor)
    results = [live.process(row) for row in sentence_rows]
    recognitions = [r.recognition for r in results if r.recognition] + live.finish()
    assert recognitions, "no utterance recognised in two GRID sentences"
    for recognition in recognitions:
        assert recognition.prediction.phrase in WORDS and recognition.start_ms < recognition.end_ms
        assert recognition.sure == (recognition.prediction.confidence >= 0.5)
        assert recognition.latency_ms >= 0
    assert {r.state for r in results} >= {"resting", "mouthing", "recognised"}
    for row, result in zip(sentence_rows, results, strict=True):
        assert result.has_face == (row.face is not None) and result.error is None
        if result.has_face:
            assert result.outer_lip.shape == result.inner_lip.shape == (20, 2)
            assert result.crop_box.shape == (4, 2)
            assert np.isfinite(result.values).all() and len(result.values) == len(PLOT_NAMES)
        else:
            assert np.isnan(result.values).all()
    history = PlotHistory(100)
    for result in results:
        history.append(result)
    times, values = history.series()
    assert values.shape == (100, len(PLOT_NAMES)) and np.all(np.diff(times) > 0)


def test_switching_predictor_mid_stream(sentence_rows, trained, predictor):
    other = Predictor.from_entry(trained[2] / "t2", device="cpu")
    live = LiveRecognizer(FEATURE_NAMES, None)
    entries = []
    for row in sentence_rows:
        if row.index == 10:
            live.set_predictor(predictor)
        if row.index == 75:
            live.set_predictor(other)
        result = live.process(row)
        if result.recognition:
            entries.append(result.recognition.prediction.entry)
    entries += [r.prediction.entry for r in live.finish()]
    assert entries[0] == "t" and entries[-1] == "t2", entries


def test_per_frame_cost_beyond_the_pipeline_is_small(sentence_rows, predictor):
    import time

    live = LiveRecognizer(FEATURE_NAMES, predictor, LiveConfig())
    costs = []
    for row in sentence_rows:
        started = time.perf_counter()
        live.process(row)
        costs.append(time.perf_counter() - started)
    assert np.median(costs) < 0.005, f"median {1000 * np.median(costs):.2f} ms per frame"


def test_headless_prints_json_lines(trained, grid_dir):
    out, err = io.StringIO(), io.StringIO()
    code = run_headless(grid_dir / "video" / "bbaf2n.mp4", trained[2], "landmark_cnn",
                        out=out, err=err)
    assert code == 0, err.getvalue()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and "frames" in err.getvalue()
    for line in lines:
        assert set(line) == {"start_ms", "end_ms", "phrase", "confidence", "top3"}
        assert line["phrase"] in WORDS and line["top3"][0] == [line["phrase"], line["confidence"]]


def test_headless_without_an_entry_says_how_to_train(tmp_path, grid_dir):
    out, err = io.StringIO(), io.StringIO()
    code = run_headless(grid_dir / "video" / "bbaf2n.mp4", tmp_path / "empty", "landmark_cnn",
                        out=out, err=err)
    assert code == 2 and out.getvalue() == ""
    assert str(tmp_path / "empty") in err.getvalue() and "training.run" in err.getvalue()


def test_app_state_notifies_only_real_changes():
    state, seen, phrases = AppState(), [], []
    state.events.connect(lambda change: seen.append((change.field, change.value)))
    state.subscribe("phrase", lambda change: phrases.append(change.value))
    state.phrase = "bin"
    state.phrase = "bin"
    state.fps = float("nan")
    state.fps = float("nan")
    state.update(sure=False, speak_aloud=False)
    state.record("lay", 0.8, [("lay", 0.8), ("bin", 0.1)], True, datetime(2024, 1, 1, 9, 0))
    assert phrases == ["bin", "lay"]
    assert [f for f, _ in seen] == ["phrase", "fps", "speak_aloud", "phrase", "confidence",
                                    "top3", "sure", "history"]
    assert state.history[-1].phrase == "lay"
    with pytest.raises(ValueError, match="no field"):
        state.subscribe("phrse", print)
    with pytest.raises(AttributeError):
        state.phrse = "x"


def test_history_log_appends_rows_and_survives_an_unwritable_path(tmp_path):
    state = AppState()
    log = HistoryLog(tmp_path / "logs" / "history.csv")
    for phrase in ("bin", "lay"):
        assert log.append(state.record(phrase, 0.7, [(phrase, 0.7), ("set", 0.2)], True))
    lines = (tmp_path / "logs" / "history.csv").read_text().splitlines()
    assert lines[0] == "time,phrase,confidence,top3" and len(lines) == 3
    assert lines[2].endswith(",lay,0.7000,lay:0.700;set:0.200")
    (tmp_path / "a_file").write_text("")
    errors = []
    broken = HistoryLog(tmp_path / "a_file" / "history.csv", on_error=errors.append)
    assert not broken.append(state.history[-1])
    assert errors and "a_file" in errors[0] and broken.error == errors[0]
