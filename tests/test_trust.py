"""A window a nurse can trust: a confirmation saves the clip it was shown with, missing speech
and sound say so where it stays, undo acts on the row chosen, the window fits a small screen,
the numbers say what they mean, a first start says what to do, a take without a face is not
kept. Offscreen, under pytest-qt, waiting on conditions."""
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QAbstractItemView
from PySide6.QtGui import QImage

from features.cache import ClipFeatures
from features.video import VideoFileSource
from recognizer.confirmations import HeardUtterance, save_confirmation
from recognizer.gui import window as window_module
from recognizer.gui.record_panel import count_line
from recognizer.gui.worker import LiveRecognition
from recognizer.live import Recognition
from recognizer.patients import few_shot_name
from recognizer.predictor import Prediction
from recognizer.recording import Take
from recognizer.segmenter import Utterance
from recognizer.settings import load_settings
from tests.conftest import SHIPPED_READER, FakeSpeaker
from tests.test_patients import copy_as

PHRASES = ("bin", "help", "lay")


def heard_of(shade: int, phrase: str, confidence: float) -> HeardUtterance:
    """An utterance of 12 frames of one grey ``shade``, which tells saved clips apart."""
    frames = tuple(np.full((48, 64, 3), shade, np.uint8) for _ in range(12))
    return HeardUtterance(frames, 25.0, None, phrase, confidence, "t")


def reading(phrase: str, top3, shade: int | None = None, final: bool = True,
            probabilities=()) -> LiveRecognition:
    """What the worker sends for a reading of ``phrase``; held (a final one) when ``shade``."""
    prediction = Prediction(phrase, top3[0][1], top3, "landmark_cnn", "t", 1.0,
                            tuple(probabilities))
    recognition = Recognition(Utterance(10, 30, 400, 1200), prediction, True, 2.0, final)
    heard = heard_of(shade, phrase, top3[0][1]) if shade is not None else None
    return LiveRecognition(recognition, time.monotonic(), None, heard)


def saved_shade(path: str) -> int:
    return int(next(iter(VideoFileSource(path))).rgb.mean().round())


@pytest.fixture
def reading_window(new_window, tmp_path):
    """A started window reading :data:`PHRASES` with no camera; its videos folder."""
    window = new_window(videos=tmp_path / "videos")
    window.state.use_entry("landmark_cnn", "t", PHRASES, 0.9)
    return window


def saved_items(window):
    return [i for i in window.state.history if i.saved]


def test_a_correction_saves_the_reading_its_menu_was_opened_on(reading_window, qtbot):
    window = reading_window
    window.on_recognised(reading("bin", (("bin", 0.6), ("lay", 0.3), ("help", 0.1)), shade=40))
    panel = window.phrase
    assert panel.right_button.isEnabled() and panel.wrong_button.isEnabled()
    panel.wrong_button.click()                    # the menu opens on "bin"...
    window.on_recognised(reading("help", (("help", 0.94), ("bin", 0.04), ("lay", 0.02)), shade=200))
    # The menu names the reading it corrects, though "help" now takes the screen.
    header = panel.wrong_menu.actions()[0]
    assert header.isSeparator() and header.text().startswith("It read \u201cbin\u201d at ")
    assert "help" in [a.data() for a in panel.wrong_menu.actions()]
    [lay] = [a for a in panel.wrong_menu.actions() if a.data() == "lay"]
    lay.trigger()                                 # ...and "lay" is picked after "help" arrived
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    [item] = saved_items(window)
    sidecar = json.loads(Path(item.saved).with_suffix(".json").read_text())
    assert Path(item.saved).parent.name == "lay" and sidecar["recognised_as"] == "bin"
    assert sidecar["how"] == "corrected" and saved_shade(item.saved) == pytest.approx(40, abs=3)


def test_right_acts_on_the_reading_it_was_pressed_on(reading_window, qtbot):
    window = reading_window
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1)), shade=40))
    button = window.phrase.right_button
    qtbot.mousePress(button, Qt.LeftButton)
    window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1)), shade=200))
    qtbot.mouseRelease(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    [item] = saved_items(window)
    assert Path(item.saved).parent.name == "lay" and saved_shade(item.saved) == pytest.approx(40, abs=3)


def test_a_pick_from_the_top3_keeps_the_reading_it_was_shown_with(reading_window, qtbot):
    window = reading_window
    window.on_recognised(reading("bin", (("bin", 0.5), ("help", 0.3), ("lay", 0.2)), shade=40))
    third = window.phrase.choices[2][0]
    qtbot.mousePress(third, Qt.LeftButton)
    # The next reading orders the three otherwise: the third button now says "bin".
    window.on_recognised(reading("help", (("help", 0.5), ("lay", 0.3), ("bin", 0.2)), shade=200))
    qtbot.mouseRelease(third, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    [item] = saved_items(window)
    assert Path(item.saved).parent.name == "lay" and saved_shade(item.saved) == pytest.approx(40, abs=3)


def test_nothing_to_confirm_disables_right_and_wrong(reading_window):
    window = reading_window
    panel = window.phrase
    assert not panel.right_button.isEnabled() and not panel.wrong_button.isEnabled()
    window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1)), shade=40))
    assert panel.right_button.isEnabled()
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1)), final=False))
    assert not panel.right_button.isEnabled() and not panel.wrong_button.isEnabled()
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1))))      # no frames held
    assert not panel.right_button.isEnabled()


def test_missing_speech_shows_a_badge_and_unticks_speak_aloud(new_window):
    problem = "Phrases cannot be spoken aloud: no text-to-speech engine is installed"
    window = new_window(speaker=FakeSpeaker(speech_problem=problem))
    bar = window.bar
    assert not bar.speak.isChecked() and not bar.speak.isEnabled()
    assert bar.speech_badge.isVisible() and bar.speech_badge.toolTip() == problem
    window.state.use_entry("landmark_cnn", "t", PHRASES, 0.9)
    window.on_recognised(reading("bin", (("bin", 0.95), ("lay", 0.05))))
    assert window.speaker.said == [] and window.state.history[-1].phrase == "bin"


def test_a_speaker_without_engine_or_sound_device_says_why(qtbot, monkeypatch):
    """Qt's own modules stand in, with no engine and no sound device (a bedside PC may have
    neither; this machine's Qt cannot even load its sound module without PulseAudio)."""
    from recognizer.gui.speech import Speaker

    class NoEngine:
        @staticmethod
        def availableEngines():
            return []

    class NoDevices:
        @staticmethod
        def audioOutputs():
            return []
    monkeypatch.setitem(sys.modules, "PySide6.QtTextToSpeech", SimpleNamespace(QTextToSpeech=NoEngine))
    monkeypatch.setitem(sys.modules, "PySide6.QtMultimedia",
                        SimpleNamespace(QMediaDevices=NoDevices, QSoundEffect=object))
    messages = []
    speaker = Speaker(messages.append)
    assert not speaker.can_speak and "no text-to-speech engine" in speaker.speech_problem
    assert "no sound device" in speaker.alarm_problem and len(messages) == 2
    speaker.alert()                                     # the system beep; said once only
    assert len(messages) == 2


def seed_confirmed(videos: Path, patient: str, shades=(40, 90)) -> list[Path]:
    """Samples of ``patient`` confirmed in an earlier session, a second apart."""
    base = time.time() - 600
    return [save_confirmation(videos, "lay" if i else "bin", heard_of(shade, "bin", 0.8),
                              "confirmed", patient, when=_at(base + i))
            for i, shade in enumerate(shades)]


def _at(seconds: float):
    from datetime import datetime

    return datetime.fromtimestamp(round(seconds))


def test_undo_acts_on_the_row_chosen_while_new_readings_arrive(new_window, tmp_path, qtbot):
    videos = tmp_path / "videos"
    first, second = seed_confirmed(videos, "bed 4")
    (tmp_path / "settings.json").write_text(json.dumps({"patient": "bed 4"}))
    window = new_window(videos=videos)
    window.state.use_entry("landmark_cnn", "t", PHRASES, 0.9)
    assert [i.saved for i in saved_items(window)] == [str(first), str(second)]   # after a restart
    history = window.history
    row = next(r for r in range(history.count()) if history.item_at(r).saved == str(first))
    history.setCurrentRow(row)
    for phrase in ("bin", "lay", "help", "bin"):           # the camera goes on reading
        window.on_recognised(reading(phrase, ((phrase, 0.3), ("x", 0.2))))
    assert history.selected().saved == str(first)
    window.history_tab.undo_button.click()
    qtbot.waitUntil(lambda: not first.exists(), timeout=10000)
    assert second.exists()
    qtbot.waitUntil(lambda: "Removed the sample of \u201cbin\u201d" in window.history_tab.said.text(),
                    timeout=10000)
    window.history_tab.undo_last_button.click()
    qtbot.waitUntil(lambda: not second.exists(), timeout=10000)
    assert not saved_items(window) and not window.history_tab.undo_last_button.isEnabled()


def test_the_window_fits_a_small_screen_and_the_phrase_keeps_the_most_room(new_window, qtbot,
                                                                             monkeypatch):
    window = new_window()
    small = QRect(0, 0, 1280, 720)
    monkeypatch.setattr(window, "screen", lambda: _Screen(small))
    window.fit_screen()
    assert window.width() <= 1280 and window.height() <= 720
    assert window.minimumSizeHint().boundedTo(QSize(1280, 650)) == window.minimumSizeHint()
    window.resize(1280, 650)
    window.state.use_entry("landmark_cnn", "t", PHRASES, 0.9)
    window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1)), shade=10))
    qtbot.waitUntil(lambda: window.phrase.phrase.height() >= 96, timeout=5000)
    assert window.phrase.phrase.font().pointSize() >= 28
    assert window.phrase.height() > window.tabs.height()
    inside = window.rect()
    for widget in (window.phrase.wrong_button, window.bar.speak, window.statusBar(),
                   window.phrase.choices[2][0]):
        top_left = widget.mapTo(window, widget.rect().topLeft())
        assert widget.isVisible() and inside.contains(QRect(top_left, widget.size())), widget
    window.tabs.setCurrentWidget(window.history_tab)
    button = window.history_tab.undo_last_button
    assert inside.contains(QRect(button.mapTo(window, button.rect().topLeft()), button.size()))
    # A take to keep: Keep and the take's replay are in view together.
    window.tabs.setCurrentWidget(window.record_page)
    window.recorder.phrase.setEditText("help")
    window.recorder.record()
    frames = tuple(np.full((288, 360, 3), 90, np.uint8) for _ in range(20))
    window.worker.take_ready.emit(Take(frames, 25.0, "utterance_end"))
    viewport = window.record_page.viewport()
    seen = QRect(viewport.mapTo(window, viewport.rect().topLeft()), viewport.size())
    for widget in (window.recorder.keep_button, window.recorder.replay):
        top_left = widget.mapTo(window, widget.rect().topLeft())
        assert seen.contains(QRect(top_left, widget.size())), widget
    assert window.recorder.replay.height() >= 120


class _Screen:
    def __init__(self, rect: QRect):
        self._rect = rect

    def availableGeometry(self) -> QRect:
        return self._rect


def test_the_numbers_say_what_they_mean(new_window, qtbot):
    assert "expect" not in count_line("help", 3, 1.0, phrases=1)
    assert count_line("help", 4, None, phrases=2) != count_line("help", 1, None, phrases=2)
    assert "2nd sample" not in count_line("help", 4, None, phrases=2)
    assert count_line("i_need_to_move", 0).startswith("i need to move: 0")
    window = new_window()
    window.state.use_entry("landmark_cnn", "t", PHRASES, 0.9)
    assert window.bar.sure_at.text() == "= 67%" and "among 3 phrases is 33%" in window.bar.sure_at.toolTip()
    assert window.bar.details.toolTip() == "test accuracy 90.0% · 3 phrases: bin, help, lay"
    seen = []
    window.state.subscribe("confidence_threshold", lambda change: seen.append(change.value))
    spin = window.bar.threshold
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "0.7")
    qtbot.keyClick(spin.lineEdit(), Qt.Key_Return)
    assert seen == [pytest.approx(0.7)]
    assert load_settings(window.settings_path)[0].confidence_threshold == pytest.approx(0.7)
    assert window.bar.sure_at.text() == "= 80%"
    # Typed, then the nurse clicks elsewhere in the window (on the phrase): it is taken.
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "0.6")
    assert seen == [pytest.approx(0.7)]
    qtbot.mouseClick(window.phrase.phrase, Qt.LeftButton)
    qtbot.waitUntil(lambda: seen == [pytest.approx(0.7), pytest.approx(0.6)])


def test_a_first_start_says_what_to_do_and_logs_no_reading_that_names_nothing(new_window, qtbot,
                                                                                tmp_path):
    window = new_window()
    lead = window.phrase.lead
    assert lead.isVisible() and "patient" in lead.text()
    qtbot.mouseClick(lead, Qt.LeftButton, pos=lead.rect().bottomRight() - QPoint(4, 4))
    assert window.tabs.currentWidget() is window.record_page
    window.state.choose_patient("bed 4")
    assert lead.isVisible() and "first phrase of bed 4" in lead.text()
    window.state.use_entry("landmark_ctc", "reader", PHRASES, None, 0.2, True)
    nothing = reading("bin", (("bin", 0.05), ("lay", 0.03), ("help", 0.02)),
                      probabilities=(0.05, 0.02, 0.03))
    window.on_recognised(nothing)
    assert window.state.history == () and window.speaker.said == []
    assert "Not one of the phrases" in window.phrase.headline.text()
    assert not (tmp_path / "history.csv").exists()


def test_a_take_without_a_face_cannot_be_kept(new_window):
    window = new_window()
    panel = window.recorder
    panel.phrase.setEditText("help")
    panel.countdown.setValue(0)
    panel.record_button.click()
    frames = tuple(np.zeros((48, 64, 3), np.uint8) for _ in range(30))
    clip = ClipFeatures(np.zeros((30, 4), np.float32), np.zeros(30, bool), np.arange(30) * 40,
                        np.zeros((30, 0, 0), np.uint8), ("a", "b", "c", "d"), 25.0)
    panel.show_take(Take(frames, 25.0, "max_length", clip=clip))
    assert not panel.keep_button.isEnabled() and panel.discard_button.isEnabled()
    assert "No face" in panel.message.text()


def test_a_typed_patient_without_recordings_stays_listed(new_window):
    window = new_window()
    panel = window.recorder
    for name in ("bed 9", "bed 10"):
        panel.patient.setEditText(name)
        panel._patient_typed()
    listed = {panel.patient.itemText(i) for i in range(panel.patient.count())}
    assert {"bed 9", "bed 10"} <= listed
    again = new_window(start=False)
    again_listed = {again.recorder.patient.itemText(i) for i in range(again.recorder.patient.count())}
    assert {"bed 9", "bed 10"} <= again_listed


def test_the_top3_shrink_and_elide_a_long_phrase_and_the_menu_is_large(reading_window):
    window = reading_window
    long = "please_call_my_wife_and_tell_her_i_am_awake_and_feeling_much_better_today"
    window.state.use_entry("landmark_cnn", "t", (long, "bin", "lay"), 0.9)
    window.on_recognised(reading(long, ((long, 0.6), ("bin", 0.3), ("lay", 0.1)), shade=20))
    button = window.phrase.choices[0][0]
    button.resize(200, button.height())
    assert button.text().endswith("\u2026") and button.toolTip() == long.replace("_", " ")
    assert button.fontMetrics().horizontalAdvance(button.text()) <= button.width()
    assert window.phrase.wrong_menu.font().pointSize() >= 14


def test_a_damaged_model_is_not_left_shown_and_messages_name_no_paths(new_window, qtbot, tmp_path,
                                                                       word_models):
    models = tmp_path / "models"
    shutil.copytree(word_models[2], models)
    window = new_window(registry=models)
    qtbot.waitUntil(lambda: window.state.entry == "t", timeout=10000)
    weights = models / "t2" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    bar = window.bar
    bar.model.setCurrentIndex(bar.model.findText("t2", Qt.MatchStartsWith))
    bar.model.activated.emit(bar.model.currentIndex())
    qtbot.waitUntil(lambda: any("Cannot use the model t2" in m for m in window.messages),
                    timeout=10000)
    assert bar.model.currentText().startswith("t ") and window.state.entry == "t"
    assert not [m for m in window.messages if str(tmp_path) in m]


def test_the_patients_few_shot_recogniser_replaces_the_general_reader(new_window, qtbot, tmp_path,
                                                                       colour_clips):
    models = tmp_path / "models" / "assets" / "entries"
    shutil.copytree(SHIPPED_READER, models / SHIPPED_READER.name)
    videos = tmp_path / "videos"
    for word in ("blue", "green", "red"):
        copy_as("bed 4", colour_clips[1][word][:2], videos, word)
    window = new_window(registry=tmp_path / "models", videos=videos)
    qtbot.waitUntil(lambda: window.state.entry == SHIPPED_READER.name, timeout=30000)
    window.state.choose_patient("bed 4")
    qtbot.waitUntil(lambda: window.state.entry == few_shot_name("bed 4"), timeout=60000)
    assert window.state.kind == "few_shot" and set(window.state.classes) == {"blue", "green", "red"}
    assert any("now reads with 3 phrases" in m for m in window.messages)
    assert window.bar.kind.currentData() == "few_shot"
    window.state.choose_patient("bed 9")          # nobody recorded yet: the general reader
    qtbot.waitUntil(lambda: window.state.entry == SHIPPED_READER.name, timeout=30000)
    assert any("No few-shot recogniser of bed 9 yet: reading with the general" in m
               for m in window.messages)


def test_a_restart_on_a_patient_with_no_recogniser_yet_reads_with_the_general_model(
        new_window, qtbot, tmp_path):
    """The few-shot kind was the last in use; this patient has no entry (no phrase, or one):
    the window reads with the shipped reader, not with nothing."""
    from recognizer.settings import Settings, save_settings

    shutil.copytree(SHIPPED_READER, tmp_path / "models" / "assets" / "entries" / SHIPPED_READER.name)
    save_settings(tmp_path / "settings.json", Settings(kind="few_shot", patient="bed 9",
                                                       patients=("bed 9",)))
    window = new_window(registry=tmp_path / "models")
    qtbot.waitUntil(lambda: window.state.entry == SHIPPED_READER.name, timeout=30000)
    assert window.state.kind == "landmark_ctc" and window.state.patient == "bed 9"
    assert any("No few-shot recogniser of bed 9 yet" in m for m in window.messages)


def test_a_damaged_saved_model_is_named_on_the_screen_not_silently_replaced(new_window, qtbot,
                                                                          tmp_path, word_models):
    models = tmp_path / "models"
    shutil.copytree(word_models[2], models)
    weights = models / "t" / "weights.safetensors"             # "t" is the saved choice
    weights.write_bytes(weights.read_bytes()[:100])
    window = new_window(registry=models)
    qtbot.waitUntil(lambda: "is damaged" in window.phrase.headline.text(), timeout=10000)
    assert "The saved model t is damaged" in window.phrase.headline.text()
    assert window.state.entry is None and window.predictor is None      # not t2 instead
    window.bar.model.setCurrentIndex(window.bar.model.findText("t2", Qt.MatchStartsWith))
    window.bar.model.activated.emit(window.bar.model.currentIndex())
    qtbot.waitUntil(lambda: window.state.entry == "t2", timeout=10000)
    assert window.phrase.headline.text() == "Mouth a phrase"


def brightest(widget) -> int:
    """The brightest grey level of ``widget`` as painted (its text, on the dark panel)."""
    image = widget.grab().toImage().convertToFormat(QImage.Format_Grayscale8)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return int(rows[:, :image.width()].max())          # not the padding at each row's end


def test_greyed_buttons_look_greyed(reading_window):
    window = reading_window
    button = window.phrase.right_button
    greyed = brightest(button)
    assert not button.isEnabled() and greyed < 128                  # dim text on dark
    window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1)), shade=40))
    assert button.isEnabled() and brightest(button) > greyed + 60


def test_a_late_correction_says_the_phrase_meant_but_keeps_no_sample(reading_window):
    window = reading_window
    window.on_recognised(reading("bin", (("bin", 0.6), ("lay", 0.4)), shade=40))
    bin_reading = window.state.reading
    for shade in (100, 200):                      # two more readings: "bin" is let go
        window.on_recognised(reading("lay", (("lay", 0.6), ("bin", 0.4)), shade=shade))
    window.confirm_wrong(bin_reading, "doctor")   # (an open menu would have kept it)
    item = window.state.history[-1]                  # what was meant is said all the same...
    assert (item.phrase, item.chosen) == ("doctor", True) and window.speaker.said[-1] == "doctor"
    assert "no longer held" in window.messages[-1]   # ...but no sample is kept
    window.enroller.wait()
    assert not saved_items(window) and not list((window.videos_root).rglob("*.mp4"))


def test_the_wrong_menu_offers_the_default_phrases_too(reading_window):
    window = reading_window
    window.on_recognised(reading("bin", (("bin", 0.6), ("lay", 0.4)), shade=40))
    window.phrase.wrong_button.click()
    offered = [a.data() for a in window.phrase.wrong_menu.actions()]
    assert "bin" not in offered and {"lay", "help", "glasses", "my_mouth_is_dry"} <= set(offered)


def test_an_alarm_keeps_its_first_time_lies_over_the_window_and_right_on_help_raises_it(
        reading_window, qtbot):
    window = reading_window
    bar_at = window.bar.mapTo(window, window.bar.rect().topLeft())
    window.on_recognised(reading("help", (("help", 0.95), ("bin", 0.05))))
    first = window.state.alarm
    window.on_recognised(reading("help", (("help", 0.95), ("bin", 0.05))))
    assert window.state.alarm is first and f"{first.time:%H:%M:%S}" in window.alarm.text.text()
    assert window.alarm.isVisible() and window.alarm.geometry().top() == 0
    assert window.bar.mapTo(window, window.bar.rect().topLeft()) == bar_at   # nothing moved
    window.alarm.acknowledge.click()
    window.on_recognised(reading("help", (("help", 0.4), ("bin", 0.35), ("lay", 0.25)), shade=30))
    assert window.state.alarm is None                          # not sure: no alarm yet
    window.phrase.right_button.click()                          # ...until it is confirmed
    assert window.state.alarm is not None and window.alarm.isVisible()


def test_the_history_lists_the_current_patients_phrases(reading_window):
    window = reading_window
    window.state.choose_patient("bed 4")
    window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1))))
    window.state.choose_patient("bed 5")
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1))))
    assert [window.history.item(r).text().split()[1] for r in range(window.history.count())] == ["lay"]
    window.state.choose_patient("bed 4")
    assert [window.history.item(r).text().split()[1] for r in range(window.history.count())] == ["bin"]


def test_the_alarm_band_is_painted_red_over_the_bar_with_its_words_whole(reading_window):
    window = reading_window
    window.resize(1280, 650)
    window.state.alarm_problem = "this computer has no sound device: the alarm shows on screen only"
    window.on_recognised(reading("help", (("help", 0.95), ("bin", 0.05))))
    banner = window.alarm
    assert banner.sound.geometry().bottom() < banner.height()          # nothing cut off
    image = window.grab(banner.geometry()).toImage().convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(
        image.height(), image.bytesPerLine())[:, :3 * image.width()].reshape(
        image.height(), image.width(), 3).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 80)
    assert red.mean() > 0.6                                  # not the bar showing through


def test_a_correction_is_kept_however_many_readings_arrive_while_its_menu_is_open(
        reading_window, qtbot):
    """A patient who is not understood repeats themselves: three more readings arrive while
    the nurse looks through Wrong...; the one it was opened on is still kept."""
    window = reading_window
    window.on_recognised(reading("bin", (("bin", 0.6), ("lay", 0.3), ("help", 0.1)), shade=40))
    window.phrase.wrong_button.click()
    qtbot.waitUntil(window.phrase.wrong_menu.isVisible)
    for shade in (90, 140, 200):
        window.on_recognised(reading("bin", (("bin", 0.6), ("lay", 0.3), ("help", 0.1)), shade=shade))
    [lay] = [a for a in window.phrase.wrong_menu.actions() if a.data() == "lay"]
    lay.trigger()
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    [item] = saved_items(window)
    assert Path(item.saved).parent.name == "lay" and saved_shade(item.saved) == pytest.approx(40, abs=3)
    assert len(window._held) == 2                              # the last two, nothing more


def test_a_pick_shows_chosen_and_stays_when_the_recogniser_learns_from_it(reading_window, qtbot,
                                                                            tmp_path):
    window = reading_window
    window.state.choose_patient("bed 4")
    window.on_recognised(reading("bin", (("bin", 0.5), ("help", 0.3), ("lay", 0.2)), shade=40))
    qtbot.mouseClick(window.phrase.choices[2][0], Qt.LeftButton)          # "lay"
    assert (window.phrase.headline.text(), window.phrase.phrase.text()) == ("Chosen", "lay")
    # The patient's recogniser, written again with the sample, takes over: "lay" stays.
    update = SimpleNamespace(patient="bed 4", per_phrase={p: {"samples": 1} for p in PHRASES},
                             entry=tmp_path / few_shot_name("bed 4"))
    predictor = SimpleNamespace(classes=PHRASES, answers=PHRASES, name=few_shot_name("bed 4"),
                                reads_sentences=False, unspellable=(), entry=SimpleNamespace(
                                    path=update.entry, card=SimpleNamespace(
                                        kind="few_shot", accuracy=None, wer=None, metrics={})))
    window._on_enrolled(update, predictor, 0.0)
    assert window.state.entry == few_shot_name("bed 4")
    assert (window.phrase.headline.text(), window.phrase.phrase.text()) == ("Chosen", "lay")


def test_a_pick_from_a_reading_of_none_of_the_phrases_keeps_its_sample(reading_window, qtbot):
    window = reading_window
    nothing = reading("bin", (("bin", 0.0), ("lay", 0.0), ("help", 0.0)), shade=40,
                      probabilities=(0.0, 0.0, 0.0))
    window.on_recognised(nothing)
    assert window.state.off_list and window.phrase.choices[0][1].text() == ""   # no "0%"
    qtbot.mouseClick(window.phrase.choices[1][0], Qt.LeftButton)              # "lay"
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    [item] = saved_items(window)
    assert Path(item.saved).parent.name == "lay" and item.chosen
    assert window.phrase.headline.text() == "Chosen"
    assert [bar.text() for _, bar in window.phrase.choices] == ["", "", ""]   # no "0%"
    assert window.history.item(0).text().split("   ")[1:3] == ["lay", "chosen  \u2713 kept as a sample"]


def test_a_sample_kept_this_session_is_listed_once_after_switching_patients(reading_window, qtbot):
    window = reading_window
    window.state.choose_patient("bed 4")
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1)), shade=40))
    window.phrase.right_button.click()
    qtbot.waitUntil(lambda: bool(saved_items(window)), timeout=10000)
    window.state.choose_patient("bed 5")
    window.state.choose_patient("bed 4")
    assert len(saved_items(window)) == 1
    assert sum("kept as a sample" in window.history.item(r).text()
               for r in range(window.history.count())) == 1


def test_the_history_file_keeps_confirmations_and_alarms(reading_window, tmp_path):
    import csv

    window = reading_window
    window.on_recognised(reading("help", (("help", 0.4), ("bin", 0.35), ("lay", 0.25)), shade=30))
    window.phrase.right_button.click()
    window.alarm.acknowledge.click()
    with open(tmp_path / "history.csv", newline="") as handle:
        rows = [(row["phrase"], row["how"]) for row in csv.DictReader(handle)]
    assert rows == [("help", "not sure"), ("help", "confirmed"), ("help", "alarm raised"),
                    ("help", "alarm acknowledged")]


def test_the_alarm_band_grows_to_its_words_when_it_learns_it_is_silent(reading_window, qtbot):
    window = reading_window
    window.resize(1280, 650)
    window.on_recognised(reading("help", (("help", 0.95), ("bin", 0.05))))
    banner = window.alarm
    window.state.alarm_problem = ("this computer cannot play sound (ask IT to set up its sound): "
                                  "the alarm shows on screen only " * 2)
    sound = banner.sound
    qtbot.waitUntil(lambda: sound.height() >= sound.heightForWidth(sound.width()))   # all lines
    assert sound.geometry().bottom() < banner.height()


def test_the_history_rows_in_view_stay_put_as_new_phrases_arrive(reading_window, qtbot):
    window = reading_window
    window.tabs.setCurrentWidget(window.history_tab)
    for _ in range(40):
        window.on_recognised(reading("bin", (("bin", 0.9), ("lay", 0.1))))
    history = window.history
    history.scrollToItem(history.item(10), QAbstractItemView.PositionAtTop)
    top = history.item_at(history.indexAt(QPoint(1, 1)).row())
    window.on_recognised(reading("lay", (("lay", 0.9), ("bin", 0.1))))
    assert history.item_at(history.indexAt(QPoint(1, 1)).row()) is top
    window.resize(900, 650)                   # a narrow tab: rows elide, no sideways scroll
    long = "i_need_to_go_to_the_toilet_please_and_then_back_to_bed"
    window.on_recognised(reading(long, ((long, 0.9), ("bin", 0.1))))
    assert history.horizontalScrollBar().maximum() == 0
