"""The record panel's layout under pytest-qt: takes replay inside a fixed space, the counts fit."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QRectF, Qt

from recognizer.gui.record_panel import RecordPanel
from recognizer.recording import MAX_LENGTH, UTTERANCE_END, Take, sample_hint

SCREEN_HEIGHT = 1000          # the 1600x1000 screen of the report


def _take(height: int, width: int, frames: int, fps: float, ended_by: str) -> Take:
    """A take of ``frames`` RGB frames (height, width, 3), each a different grey."""
    return Take(tuple(np.full((height, width, 3), i % 255, np.uint8) for i in range(frames)), fps, ended_by)


# Landscape and portrait, tiny and full HD, short and long: each once, one after another.
TAKES = ((288, 360, 30, 25.0, UTTERANCE_END), (1080, 1920, 180, 30.0, MAX_LENGTH),
         (640, 480, 5, 25.0, UTTERANCE_END), (720, 1280, 90, 30.0, MAX_LENGTH),
         (120, 160, 300, 25.0, UTTERANCE_END))


@pytest.fixture
def window(qtbot, new_window):
    """The whole window at its default size, not started (no camera), on the Record tab."""
    made = new_window(start=False)
    made.tabs.setCurrentWidget(made.record_page)
    made.recorder._start_recording = lambda config: None
    qtbot.waitExposed(made)
    qtbot.wait(50)
    return made


def _record_takes(qtbot, panel: RecordPanel, measure) -> list:
    """Record, show and discard each of :data:`TAKES` (a refused phrase in between); ``measure()`` each time."""
    sizes = [measure()]
    for index, shape in enumerate(TAKES):
        panel.phrase.setEditText("../x" if index == 2 else "i need to go to the toilet please")
        panel.record()
        if index == 2:
            sizes.append(measure())
            panel.phrase.setEditText("help")
            panel.record()
        panel.show_take(_take(*shape))
        qtbot.wait(120)                                 # a few replayed frames
        sizes.append(measure())
        panel.discard_button.click()
        qtbot.wait(20)
        sizes.append(measure())
    return sizes


def test_showing_takes_never_resizes_the_window(window, qtbot):
    panel = window.recorder

    def measure():
        qtbot.wait(10)
        return (window.size().toTuple(), window.minimumSizeHint().height(), panel.size().toTuple(),
                panel.minimumSizeHint().height(), window.phrase.size().toTuple())
    sizes = _record_takes(qtbot, panel, measure)
    assert sizes == [sizes[0]] * len(sizes)
    assert window.height() < SCREEN_HEIGHT and window.minimumSizeHint().height() < SCREEN_HEIGHT


def test_the_replay_scales_into_the_panel_at_a_fixed_size(qtbot, tmp_path):
    panel = RecordPanel(tmp_path / "videos", lambda config: None, lambda: None)
    qtbot.addWidget(panel)
    panel.resize(560, 420)
    panel.show()
    qtbot.waitExposed(panel)

    def measure():
        qtbot.wait(10)
        if panel.replay.isVisible():
            replay = panel.replay.geometry().translated(panel.replay.parentWidget().mapTo(panel, QPoint()))
            assert panel.rect().contains(replay) and replay.height() >= 100
            drawn = panel.replay.image_rect()
            assert drawn.isEmpty() or QRectF(panel.replay.rect()).contains(drawn)
        return panel.size().toTuple(), panel.minimumSizeHint().height()
    sizes = _record_takes(qtbot, panel, measure)
    assert sizes == [sizes[0]] * len(sizes) and sizes[0][1] <= 420


def test_the_sample_counts_fit_the_list_without_a_horizontal_cut(window, qtbot):
    panel, counts = window.recorder, window.recorder.counts
    window.state.patient = "bed 4"
    panel.label_counts = lambda: {"help": 1, "doctor": 5, "i_need_to_go_to_the_toilet_please": 0}
    panel.refresh_counts()
    qtbot.wait(20)
    room = counts.viewport().width()
    assert counts.count() >= 8 and counts.horizontalScrollBar().maximum() == 0
    for row in range(counts.count()):
        item = counts.item(row)
        assert counts.fontMetrics().horizontalAdvance(item.text()) <= room, item.text()
    texts = {counts.item(row).text().split(":")[0]: counts.item(row) for row in range(counts.count())}
    assert "usable" in texts["help"].text() and "record one" in texts["phone"].text()
    assert sample_hint({"help": 1}, "help") in texts["help"].toolTip()   # the whole story


def test_the_counts_say_what_the_patients_samples_promise(window, qtbot):
    """Per phrase: the current patient's samples, and the leave-one-out accuracy to expect."""
    panel, state = window.recorder, window.state
    state.patient = "bed 4"
    panel.label_counts = lambda: {"help": 4, "doctor": 3}
    state.per_phrase = {"help": {"samples": 4, "expected_accuracy": 1.0},
                        "doctor": {"samples": 3, "expected_accuracy": 0.6667}}
    texts = [panel.counts.item(row).text() for row in range(panel.counts.count())]
    assert "help: 4  \u2014 expect 100%" in texts and "doctor: 3  \u2014 expect 67%, record more" in texts
    state.patient = ""                 # everybody's samples: no recogniser's promise
    assert [panel.counts.item(r).text() for r in range(2)] == ["help: 4", "doctor: 3"]


def test_a_refused_phrase_says_what_to_type_instead(window):
    panel = window.recorder
    panel.phrase.setEditText("../x")
    panel.record_button.click()
    text = panel.message.text()
    assert "../x" in text and "i_need_water" in text and "hidden folder" not in text
    assert panel.record_button.isEnabled()
    assert panel.message.heightForWidth(panel.message.width()) <= panel.message.height()   # all of it shows


def test_enter_presses_the_button_with_the_keyboard(qtbot, tmp_path):
    panel = RecordPanel(tmp_path / "videos", lambda config: None, lambda: None)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    panel.phrase.setEditText("help")
    panel.record()
    panel.show_take(_take(288, 360, 30, 25.0, UTTERANCE_END))
    discarded = []
    panel.discard_button.clicked.connect(lambda: discarded.append(True))
    panel.discard_button.setFocus()
    qtbot.keyClick(panel.discard_button, Qt.Key_Return)
    assert discarded == [True] and not panel.keep_button.isEnabled()
