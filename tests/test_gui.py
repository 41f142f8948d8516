"""The bedside window under pytest-qt, offscreen, driven by real GRID clips used as the camera."""
import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("pytestqt")

from features.dataset import build_manifest
from features.video import VideoError, VideoFileSource
from PySide6.QtCore import Qt

from recognizer.gui import alarm as alarm_module
from recognizer.gui.app import source_spec
from recognizer.gui.phrase import PANEL_STYLE
from recognizer.gui.speech import Speaker, alert_tone
from recognizer.gui.train_panel import describe, progress_fraction
from recognizer.gui.window import MainWindow, SourceSpec
from recognizer.gui.worker import LiveRecognition
from recognizer.headless import run_headless
from recognizer.live import Recognition
from recognizer.predictor import Prediction
from recognizer.segmenter import Utterance
from training import registry
from tests.conftest import FakeSpeaker, no_camera, write_tiny_video_entry

SENTENCE = "bbaf2n.mp4"          # "bin blue at f two now", spoken over frames 24-53


@pytest.fixture
def registry_copy(word_models, tmp_path):
    """A private copy of the tiny word registry (the window activates entries in it)."""
    models = tmp_path / "models"
    shutil.copytree(word_models[2], models)
    return models


@pytest.fixture
def open_window(new_window, registry_copy):
    """Makes, shows and starts a window on ``source`` with the word registry."""
    def make(source: SourceSpec, videos: Path | None = None, train_args=()) -> MainWindow:
        return new_window(source, registry_copy, videos, train_args)
    return make


def file_source(grid_dir, loop=False) -> SourceSpec:
    return source_spec(source=str(grid_dir / "video" / SENTENCE), loop=loop)


def test_window_opens_without_a_camera_and_keeps_trying(open_window, qtbot):
    attempts = []

    def no_camera():
        attempts.append(1)
        raise VideoError("camera 0: cannot be opened; check it is plugged in")
    window = open_window(SourceSpec(no_camera, retry=True, describe="Camera 0",
                                    missing_hint="Plug in a webcam"))
    window.worker._capture._retry_s = 0.05
    qtbot.waitUntil(lambda: len(attempts) >= 2, timeout=5000)
    assert window.isVisible() and "camera 0: cannot be opened" in window.video._message
    assert "Plug in a webcam" in window.video._message
    assert window.video.painted_frames == 0


def test_a_camera_lost_mid_session_is_reported_and_reopened(open_window, qtbot, grid_dir):
    opened = []

    def flaky_camera():
        opened.append(1)
        if len(opened) == 2:
            raise VideoError("camera 0: stopped delivering frames")
        return _FramesThenFailure(grid_dir / "video" / SENTENCE, frames=10 if len(opened) == 1 else 10_000)
    window = open_window(SourceSpec(flaky_camera, retry=True, describe="Camera 0"))
    window.worker._capture._retry_s = 0.05
    qtbot.waitUntil(lambda: len(opened) >= 3 and window.video.painted_frames > 12, timeout=20000)
    assert any("stopped delivering frames" in m for m in window.messages)
    assert any("back" in m for m in window.messages)


class _FramesThenFailure:
    """A camera stand-in: ``frames`` real frames, then it stops delivering."""

    def __init__(self, path, frames):
        self._file, self._frames, self.fps = VideoFileSource(path, realtime=True), frames, 25.0

    def __iter__(self):
        for frame in self._file:
            if frame.index >= self._frames:
                raise VideoError("camera 0: stopped delivering frames")
            yield frame

    def close(self):
        self._file.close()


@pytest.fixture(scope="module")
def file_reading(word_models, grid_dir) -> dict:
    """What the headless run (same pipeline, no window) reads first in :data:`SENTENCE` with ``t``."""
    out, err = io.StringIO(), io.StringIO()
    assert run_headless(grid_dir / "video" / SENTENCE, word_models[2], "landmark_cnn",
                        out=out, err=err) == 0, err.getvalue()
    return json.loads(out.getvalue().splitlines()[0])


def test_a_file_plays_and_its_phrase_is_shown_spoken_and_logged(open_window, qtbot, grid_dir, tmp_path,
                                                                 file_reading):
    window = open_window(file_source(grid_dir))
    window.state.confidence_threshold = 0.0
    qtbot.waitUntil(lambda: len(window.state.history) >= 1, timeout=20000)
    phrase = window.state.phrase
    # The window shows the model's reading of the file, not some other class.
    assert phrase == file_reading["phrase"] and window.state.entry == "t"
    assert window.state.confidence == pytest.approx(file_reading["confidence"], abs=0.02)
    assert window.phrase.phrase.text() == phrase and window.history.count() == 1
    assert phrase in window.history.item(0).text()
    assert window.speaker.said == [phrase]
    assert [b.text() for b, _ in window.phrase.choices][0] == phrase
    assert window.video.painted_frames > 30 and window.state.fps > 5
    with open(tmp_path / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["phrase"] == phrase and rows[0]["confidence"] == f"{window.state.confidence:.4f}"
    qtbot.waitUntil(lambda: "has ended" in window.video._message, timeout=10000)


def test_an_unsure_phrase_offers_the_top3_to_choose_from(open_window, qtbot, grid_dir):
    window = open_window(file_source(grid_dir))
    window.state.confidence_threshold = 1.0
    qtbot.waitUntil(lambda: len(window.state.history) >= 1, timeout=20000)
    assert window.phrase.phrase.text() == "?" and "Not sure" in window.phrase.headline.text()
    assert window.speaker.said == []
    second = window.phrase.choices[1][0]
    second.click()
    assert window.state.phrase == second.property("phrase") and window.state.sure
    assert window.speaker.said == [second.property("phrase")]


def test_switching_model_and_recogniser_live(open_window, qtbot, grid_dir, registry_copy):
    write_tiny_video_entry(registry_copy)
    window = open_window(file_source(grid_dir, loop=True))
    qtbot.waitUntil(lambda: window.state.entry == "t", timeout=10000)
    bar = window.bar
    assert [bar.model.itemData(i) for i in range(bar.model.count())] == [
        str(registry_copy / "t"), str(registry_copy / "t2")]
    bar.model.setCurrentIndex(1)
    bar.model.activated.emit(1)
    qtbot.waitUntil(lambda: window.state.entry == "t2", timeout=10000)
    assert registry.active_names(registry_copy)["landmark_cnn"] == "t2"
    bar.kind.setCurrentIndex(bar.kind.findData("r2plus1d"))
    qtbot.waitUntil(lambda: window.state.entry == "video", timeout=20000)
    assert window.state.kind == "r2plus1d" and "test accuracy unknown" in bar.details.text()
    qtbot.waitUntil(lambda: window.worker._pipeline is not None and window.worker._pipeline.crops,
                    timeout=5000)
    qtbot.waitUntil(lambda: any(i.phrase for i in window.state.history), timeout=30000)
    assert window.worker._recognizer.predictor.kind == "r2plus1d"


def test_recording_from_a_file_saves_a_clip_and_sidecar(open_window, qtbot, grid_dir, tmp_path):
    videos = tmp_path / "videos"
    window = open_window(file_source(grid_dir, loop=True), videos)
    panel = window.recorder
    qtbot.waitUntil(lambda: window.video.painted_frames > 0, timeout=10000)
    panel.phrase.setEditText("ça va")
    panel.patient.setEditText("bed 4")
    panel.gender.setCurrentText("female")
    panel.age_band.setCurrentText("40-64")
    panel.countdown.setValue(0)
    panel.record_button.click()
    qtbot.waitUntil(lambda: panel.keep_button.isEnabled(), timeout=20000)
    assert "utterance ended" in panel.message.text()
    assert not list(videos.rglob("*.mp4"))            # nothing is written before Keep
    with qtbot.waitSignal(panel.saved, timeout=20000):
        panel.keep_button.click()
    manifest = build_manifest(videos)
    assert list(manifest["label"]) == ["ça_va"]
    row = manifest.iloc[0]
    assert (row["speaker"], row["gender"], row["age_band"]) == ("bed 4", "female", "40-64")
    frames = VideoFileSource(row["path"]).frame_count
    assert 10 <= frames <= 60                          # the utterance with its margins, not the loop
    assert any("ça va: 1" in panel.counts.item(i).text() for i in range(panel.counts.count()))
    assert window.state.patient == "bed 4" and panel.patient.currentText() == "bed 4"


def test_cancelling_a_recording_writes_nothing(open_window, qtbot, grid_dir, tmp_path):
    videos = tmp_path / "videos"
    window = open_window(file_source(grid_dir, loop=True), videos)
    panel = window.recorder
    panel.countdown.setValue(1)
    panel.record_button.click()
    qtbot.waitUntil(lambda: window.video._frame is not None
                    and window.video._frame.recorder.state != "idle", timeout=10000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: window.video._frame.recorder.state == "idle", timeout=5000)
    qtbot.wait(2500)
    assert not panel.keep_button.isEnabled() and panel.record_button.isEnabled()
    assert not videos.exists() or not list(videos.rglob("*"))


def test_a_bad_phrase_name_is_refused_with_the_reason(open_window, grid_dir):
    panel = open_window(file_source(grid_dir)).recorder
    panel.phrase.setEditText("../escape")
    panel.record_button.click()
    assert "../escape" in panel.message.text() and panel.record_button.isEnabled()


def _tiny_training(word_models, tmp_path) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"optim": {"batch_size": 16, "patience": 30},
                                      "arch": {"width": 16, "depth": 2},
                                      "split": {"val_fraction": 0.2, "test_fraction": 0.2}}))
    return ["--config", str(config), "--cache", str(word_models[1].root), "--runs", str(tmp_path / "runs")]


def test_training_from_the_panel_registers_an_entry_weighs_it_and_reports_it_apart(
        open_window, qtbot, grid_dir, word_models, tmp_path, registry_copy):
    # No camera: nothing but the training changes the window.
    window = open_window(no_camera(), word_models[0], _tiny_training(word_models, tmp_path))
    panel = window.trainer
    panel.epochs.setValue(3)
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: window.state.entry == "t", timeout=10000)
    with qtbot.waitSignal(panel.finished, timeout=180000) as finished:
        panel.start_button.click()
        # Sizes once the window has settled (the first epoch takes seconds): the window's own
        # size hint follows the live plots' axes, but the smallest it can be must stay, and
        # the Train tab must ask for no more room when the run ends than while it ran.
        qtbot.waitUntil(lambda: any(e["event"] == "epoch_end" for e in panel.events), timeout=120000)
        sizes = (window.minimumSizeHint(), panel.sizeHint(), panel.minimumSizeHint())
        largest = window.size().expandedTo(window.minimumSizeHint())
    entry = Path(finished.args[0])
    assert entry.parent == registry_copy and (entry / "card.json").is_file()
    assert [e["epoch"] for e in panel.events if e["event"] == "epoch_end"] == [1, 2, 3]
    assert (window.minimumSizeHint(), panel.sizeHint(), panel.minimumSizeHint()) == sizes
    assert largest.expandedTo(window.size()) == largest                     # never grows
    assert panel.progress.value() == 1000 and str(tmp_path) not in panel.status.text()
    verdict = panel.verdict          # 3 epochs: near chance, or against "t" in use
    assert verdict is not None and verdict.text in panel.status.text()
    assert panel.activate_button.isEnabled() == (verdict.better_than_chance is not False)
    assert panel.activate_button.text() == ("Use this model" if verdict.usable else "Use it anyway")
    assert entry.name in [window.bar.model.itemText(i).split()[0] for i in range(window.bar.model.count())]
    panel.report_button.click()
    qtbot.waitExposed(panel.report)
    assert "accuracy" in panel.report.summary.toPlainText()
    assert [panel.report.tabs.tabText(i) for i in range(panel.report.tabs.count())] == [
        "Summary", "Confusion matrix", "Learning curves"]
    panel.report.resize(420, 300)
    panel.report.tabs.setCurrentIndex(1)
    figure = panel.report.tabs.currentWidget()
    qtbot.waitUntil(lambda: figure.pixmap() is not None and not figure.pixmap().isNull())
    assert figure.pixmap().width() <= figure.width() and figure.pixmap().height() <= figure.height()
    if verdict.better_than_chance:
        panel.activate_button.click()
        qtbot.waitUntil(lambda: window.state.entry == entry.name, timeout=10000)


def test_cancelling_training_leaves_no_entry(open_window, qtbot, grid_dir, word_models, tmp_path,
                                             registry_copy):
    window = open_window(file_source(grid_dir), word_models[0], _tiny_training(word_models, tmp_path))
    panel = window.trainer
    panel.epochs.setValue(400)
    before = {e.name for e in registry.list_entries(registry_copy)}
    panel.start_button.click()
    qtbot.waitUntil(lambda: any(e["event"] == "epoch_end" for e in panel.events), timeout=120000)
    with qtbot.waitSignal(panel.finished, timeout=20000) as finished:
        panel.cancel_button.click()
    assert finished.args == [""] and "cancelled" in panel.status.text()
    assert panel.progress.value() == 0
    assert {e.name for e in registry.list_entries(registry_copy)} == before
    assert not [p for p in registry_copy.iterdir() if p.name.startswith(".tmp-")]


def test_training_progress_events_become_a_bar_and_text():
    assert progress_fraction({"event": "batch", "epoch": 2, "batch": 5, "batches": 10}, 4) == 0.375
    assert progress_fraction({"event": "epoch_end", "epoch": 4}, 4) == 1.0
    assert progress_fraction({"event": "message", "text": "x"}, 4) is None
    assert describe({"event": "epoch_end", "epoch": 3, "val_accuracy": 0.5, "train_loss": 1.25}) == \
        "Epoch 3: validation accuracy 50.0%, loss 1.250"


def test_without_a_speech_engine_the_app_says_so_once(qtbot, monkeypatch):
    monkeypatch.setitem(sys.modules, "PySide6.QtTextToSpeech", None)
    messages = []
    speaker = Speaker(messages.append)
    speaker.say("doctor")
    speaker.say("help")
    spoken = [m for m in messages if "spoken" in m]
    assert len(spoken) == 1 and not speaker.can_speak and speaker.speech_problem == spoken[0]


def test_alert_tone_is_a_valid_wav():
    import io
    import wave

    with wave.open(io.BytesIO(alert_tone()), "rb") as tone:
        samples = np.frombuffer(tone.readframes(tone.getnframes()), dtype="<i2")
        assert tone.getframerate() == 16000 and np.abs(samples).max() > 20000


def test_many_signal_emits_do_not_abort_the_interpreter():
    """PySide6 6.12 drops a reference to True per emit; on CPython 3.11 that aborted live runs."""
    import subprocess

    code = ("import recognizer.gui\n"
            "from PySide6.QtCore import QObject, Signal\n"
            "class E(QObject):\n    s = Signal(object)\n"
            "e = E()\nfor i in range(50000):\n    e.s.emit(i)\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_broken_file_keeps_its_error_on_screen(open_window, qtbot):
    def broken():
        raise VideoError("/data/clip.mp4: no frame could be decoded; the file is truncated")
    window = open_window(SourceSpec(broken, retry=False, describe="The video file /data/clip.mp4",
                                    missing_hint="Check the file"))
    qtbot.waitUntil(lambda: window.worker.isFinished(), timeout=10000)
    qtbot.wait(100)
    assert "truncated" in window.video._message and "has ended" not in window.video._message


def test_without_a_trained_model_the_phrase_panel_says_what_to_do(new_window, grid_dir):
    window = new_window(file_source(grid_dir))
    assert window.phrase.headline.text() == "No trained model yet"
    assert any("Record tab" in m for m in window.messages)


def _recognised(phrase: str, top3) -> LiveRecognition:
    """What the worker sends when the model reads ``phrase`` with these top 3."""
    prediction = Prediction(phrase=phrase, confidence=top3[0][1], top3=top3, kind="landmark_cnn",
                            entry="t", latency_ms=1.0)
    recognition = Recognition(Utterance(10, 30, 400, 1200), prediction, top3[0][1] >= 0.5, 2.0)
    return LiveRecognition(recognition, time.monotonic())


def test_a_sure_help_raises_an_alarm_that_stays_until_acknowledged(qtbot, new_window, monkeypatch):
    """Recognised, or picked from the top 3, "help" raises the alarm over the window: it sounds
    again and stays, whatever is read next and after Right, until Acknowledge or Esc; the
    phrase panel itself is never painted red."""
    monkeypatch.setattr(alarm_module, "ALARM_REPEAT_MS", 50)
    window = new_window()
    window.state.use_entry("landmark_cnn", "t", ("bin", "help", "lay"), 0.9)
    banner = window.alarm
    sure = (("help", 0.9), ("bin", 0.06), ("lay", 0.04))
    window.on_recognised(_recognised("help", sure))
    assert banner.isVisible() and "HELP" in banner.text.text()
    qtbot.waitUntil(lambda: window.speaker.alerts >= 3, timeout=5000)    # it sounds again
    window.on_recognised(_recognised("bin", (("bin", 0.9), ("help", 0.06), ("lay", 0.04))))
    assert banner.isVisible() and window.phrase.styleSheet() == PANEL_STYLE
    window.phrase.right_button.click()
    assert banner.isVisible()
    qtbot.keyClick(window, Qt.Key_Escape)
    assert not banner.isVisible() and window.state.alarm is None
    alerts = window.speaker.alerts
    qtbot.waitUntil(lambda: not banner.timer.isActive(), timeout=1000)
    assert window.speaker.alerts == alerts and any("acknowledged" in m for m in window.messages)

    unsure = (("help", 0.4), ("bin", 0.35), ("lay", 0.25))
    window.on_recognised(_recognised("help", unsure))
    assert not banner.isVisible() and window.phrase.phrase.text() == "?"
    [help_button] = [b for b, _ in window.phrase.choices if b.property("phrase") == "help"]
    help_button.click()
    assert banner.isVisible() and window.state.sure
    banner.acknowledge.click()
    assert not banner.isVisible()
    assert window.speaker.said == ["help", "bin", "help"]


def test_an_alarm_without_a_sound_device_says_it_is_silent(new_window):
    window = new_window(speaker=FakeSpeaker(alarm_problem="the alarm cannot sound: no sound device"))
    window.state.use_entry("landmark_cnn", "t", ("bin", "help"), 0.9)
    window.on_recognised(_recognised("help", (("help", 0.95), ("bin", 0.05))))
    assert window.alarm.isVisible()
    assert window.alarm.sound.text() == "Silent: the alarm cannot sound: no sound device"
