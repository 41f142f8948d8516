"""The phrase display, the top-3 bars, confirming, and the history list: views of :class:`AppState`.

Each widget takes the state and subscribes to the fields it shows (napari's
``QtDims(dims)``); none holds the truth itself.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from features.text import spoken_text
from recognizer.gui.speech import ALERT_PHRASES
from recognizer.reading import ReadMode
from recognizer.state import AppState, Change, HistoryItem

PANEL_STYLE = "background: #101418; color: #ffffff;"
ALERT_STYLE = "background: #b00020; color: #ffffff;"
ALERT_MS = 4000


class FittedLabel(QLabel):
    """Large text that always fits its box: wrapped at word boundaries, then shrunk
    (from ``largest_pt`` down to ``smallest_pt``) until the whole text shows.

    It never asks for more room than it has, so a long phrase or a sentence
    cannot grow the window or push its neighbours away.
    """

    def __init__(self, text: str = "", largest_pt: int = 64, smallest_pt: int = 14, parent=None):
        super().__init__(text, parent)
        self.largest_pt, self.smallest_pt = largest_pt, smallest_pt
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignCenter)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self._fit()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def minimumSizeHint(self) -> QSize:
        return QSize(0, 0)

    def fits(self, point_size: int) -> bool:
        """Whether the text set at ``point_size`` fits the label's box, wrapped."""
        font = QFont(self.font())
        font.setPointSize(point_size)
        box = self.contentsRect()
        needed = QFontMetrics(font).boundingRect(QRect(0, 0, max(box.width(), 1), 100_000),
                                                 int(Qt.AlignCenter | Qt.TextWordWrap), self.text())
        return needed.width() <= box.width() and needed.height() <= box.height()

    def _fit(self) -> None:
        size = self.largest_pt
        while size > self.smallest_pt and not self.fits(size):
            size -= 2 if size > 24 else 1
        if self.font().pointSize() != size:
            font = QFont(self.font())
            font.setPointSize(size)
            self.setFont(font)


class PhrasePanel(QWidget):
    """The last phrase in very large type, with the top 3 as bars to choose from.

    Below the confidence threshold it says it is not sure and asks to pick one
    of the three (a sentence reader reading the words still shows them: an
    unsure sentence is mostly right); a click on a choice calls ``on_choose(phrase)``. Every sure
    "help" -- recognised, recognised again, or picked from the three -- turns
    the panel red for ``ALERT_MS`` milliseconds, visible from across the bed.

    "Right" (``on_confirm()``) and "Wrong..." (a menu of the phrases,
    ``on_correct(phrase)``) confirm what was read, while ``state.confirmable``:
    the utterance is then saved as a sample, and teaches the few-shot recogniser.
    """

    def __init__(self, state: AppState, on_choose: Callable[[str], None],
                 on_confirm: Callable[[], None] | None = None,
                 on_correct: Callable[[str], None] | None = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.setAutoFillBackground(True)
        self.setStyleSheet(PANEL_STYLE)
        self.headline = QLabel("Mouth a phrase")
        self.headline.setFont(QFont("Sans", 20))
        self.phrase = FittedLabel("\u2014")
        self.phrase.setFont(QFont("Sans", 64, QFont.Bold))
        self.headline.setAlignment(Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.phrase, stretch=1)
        self.right_button = QPushButton("\u2713 Right")
        self.wrong_button = QPushButton("\u2717 Wrong\u2026")
        self.right_button.setToolTip("It read the right phrase: keep this as a sample of it")
        self.wrong_button.setToolTip("It read the wrong phrase: pick the right one, kept as a "
                                     "sample of it")
        self.wrong_menu = QMenu(self)
        confirm_row = QHBoxLayout()
        for button in (self.right_button, self.wrong_button):
            button.setFont(QFont("Sans", 14, QFont.Bold))
            button.setMinimumHeight(40)
            confirm_row.addWidget(button)
        layout.addLayout(confirm_row)
        self.right_button.clicked.connect(lambda: on_confirm and on_confirm())
        self.wrong_button.clicked.connect(self._show_wrong_menu)
        self.wrong_menu.triggered.connect(lambda action: on_correct and on_correct(action.data()))
        self.choices: list[tuple[QPushButton, QProgressBar]] = []
        for _ in range(3):
            button = QPushButton()
            button.setFont(QFont("Sans", 18, QFont.Bold))
            button.setMinimumHeight(48)
            button.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)   # a sentence never widens the panel
            button.setStyleSheet("text-align: left; padding: 4px 12px;")
            button.clicked.connect(lambda _=False, b=button: on_choose(b.property("phrase")))
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setMinimumHeight(36)
            bar.setFont(QFont("Sans", 14))
            row = QHBoxLayout()
            row.addWidget(button, stretch=3)
            row.addWidget(bar, stretch=2)
            layout.addLayout(row)
            self.choices.append((button, bar))
        self._calm = QTimer(self, singleShot=True, interval=ALERT_MS)
        self._calm.timeout.connect(lambda: self.setStyleSheet(PANEL_STYLE))
        for field in ("entry", "kind", "patient", "phrase", "top3", "sure", "read_mode", "confirmable"):
            state.subscribe(field, self._changed)
        state.subscribe_recorded(self._recorded)
        self._changed(None)

    def _changed(self, change: Change | None) -> None:
        state = self.state
        if state.entry is None and state.kind == "few_shot":
            self.headline.setText("No samples of this patient yet" if state.patient
                                  else "No patient chosen")
            self.phrase.setText("Record one of each phrase" if state.patient
                                else "Type the patient in the Record tab")
        elif state.entry is None:
            self.headline.setText("No trained model yet")
            self.phrase.setText("Record samples, then train")
        elif state.phrase is None:
            self.headline.setText("Mouth a phrase")
            self.phrase.setText("\u2014")
        elif state.reads_sentences and state.read_mode == ReadMode.TRANSCRIPT:
            # The words read always show: an unsure sentence is mostly right, word by word.
            self.headline.setText("Read" if state.sure else
                                  "Read, not sure of every word \u2014 or one of these?")
            self.phrase.setText(spoken_text(state.phrase))
        elif state.sure:
            self.headline.setText("Recognised")
            self.phrase.setText(spoken_text(state.phrase))
        else:
            self.headline.setText("Not sure \u2014 did you mean one of these?")
            self.phrase.setText("?")
        transcript = state.reads_sentences and state.read_mode == ReadMode.TRANSCRIPT
        self.right_button.setEnabled(state.confirmable)
        self.wrong_button.setEnabled(state.confirmable and not transcript and len(state.classes) > 1)
        for index, (button, bar) in enumerate(self.choices):
            phrase, probability = state.top3[index] if index < len(state.top3) else (None, 0.0)
            button.setProperty("phrase", phrase)
            button.setText(spoken_text(phrase) if phrase else "")
            button.setToolTip(spoken_text(phrase) if phrase else "")
            button.setEnabled(phrase is not None)
            bar.setValue(round(probability * 100))
            bar.setFormat(f"{probability:.0%}" if phrase else "")

    def _show_wrong_menu(self) -> None:
        """The phrases it could have meant, the one it read left out."""
        self.wrong_menu.clear()
        for phrase in self.state.classes:
            if phrase != self.state.phrase:
                self.wrong_menu.addAction(spoken_text(phrase)).setData(phrase)
        self.wrong_menu.popup(self.wrong_button.mapToGlobal(self.wrong_button.rect().bottomLeft()))

    def _recorded(self, item: HistoryItem) -> None:
        # On the recognition, not on a field change: a repeated "help" changes no field.
        if item.sure and item.phrase in ALERT_PHRASES:
            self.setStyleSheet(ALERT_STYLE)
            self._calm.start()


class HistoryPanel(QListWidget):
    """Recognised phrases with their times, newest on top; those kept as a sample say so."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setFont(QFont("Sans", 14))
        state.subscribe("history", self._changed)
        self._changed(None)

    def item_at(self, row: int) -> HistoryItem | None:
        """The history item shown on ``row`` (newest first)."""
        history = self.state.history
        return history[len(history) - 1 - row] if 0 <= row < len(history) else None

    def _changed(self, change: Change | None) -> None:
        row = self.currentRow()
        self.clear()
        for item in reversed(self.state.history):
            mark = "  (chosen)" if item.chosen else "" if item.sure else "  (not sure)"
            kept = "  \u2713 kept as a sample" if item.saved else ""
            self.addItem(f"{item.time:%H:%M:%S}   {spoken_text(item.phrase)}   "
                         f"{item.confidence:.0%}{mark}{kept}")
        self.setCurrentRow(min(row, self.count() - 1))


class HistoryTab(QWidget):
    """The history list with "Undo sample": ``on_undo(item)`` for a kept confirmation."""

    def __init__(self, history: HistoryPanel, on_undo: Callable[[HistoryItem], None], parent=None):
        super().__init__(parent)
        self.history = history
        self.on_undo = on_undo
        self.undo_button = QPushButton("Undo sample")
        self.undo_button.setToolTip("Delete the sample this confirmation kept")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(history, stretch=1)
        layout.addWidget(self.undo_button)
        history.currentRowChanged.connect(lambda _: self._selected())
        history.state.subscribe("history", lambda _: self._selected())
        self.undo_button.clicked.connect(self._undo)
        self._selected()

    def _selected(self) -> None:
        item = self.history.item_at(self.history.currentRow())
        self.undo_button.setEnabled(item is not None and item.saved is not None)

    def _undo(self) -> None:
        item = self.history.item_at(self.history.currentRow())
        if item is not None and item.saved:
            self.undo_button.setEnabled(False)
            self.on_undo(item)
