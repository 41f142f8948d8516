"""The phrase display, the top-3 bars, confirming, and the history list: views of :class:`AppState`.

Each widget takes the state and subscribes to the fields it shows (napari's
``QtDims(dims)``); none holds the truth itself.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
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

from features.text import patient_key, spoken_text
from recognizer.reading import ReadMode
from recognizer.recording import DEFAULT_PHRASES
from recognizer.state import AppState, Change, HistoryItem, same_item

# A greyed button must look greyed on the dark panel: nothing to press there.
PANEL_STYLE = ("* { background: #101418; color: #ffffff; }"
               "QPushButton { border: 2px solid #9aa5b1; border-radius: 6px; }"
               "QPushButton:pressed { background: #2d3741; }"
               "QPushButton:disabled { color: #4b5661; border-color: #2d3741; }")
ALERT_STYLE = "background: #b00020; color: #ffffff;"
LEAD_STYLE = "background: #ffd54f; color: #101418; padding: 6px 12px;"
PHRASE_SMALLEST_PT = 28      # about 1 cm high on a bedside screen: readable from 2 m
PHRASE_MIN_HEIGHT = 96       # two lines of it


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


class ClickableLabel(QLabel):
    """A label that is one big button: a click anywhere on it emits :attr:`clicked`."""

    clicked = Signal()

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()


class ChoiceButton(QPushButton):
    """A top-3 choice: its phrase in words, shrunk (``largest_pt`` down to ``smallest_pt``)
    and then ended in "..." until it fits, never cut off unseen; the whole phrase is the tooltip."""

    def __init__(self, largest_pt: int = 18, smallest_pt: int = 11, parent=None):
        super().__init__(parent)
        self.largest_pt, self.smallest_pt = largest_pt, smallest_pt
        self.phrase: str | None = None

    def set_phrase(self, phrase: str | None) -> None:
        self.phrase = phrase
        self.setProperty("phrase", phrase)
        self.setToolTip(spoken_text(phrase) if phrase else "")
        self.setEnabled(phrase is not None)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        words = spoken_text(self.phrase) if self.phrase else ""
        room = max(self.contentsRect().width() - 28, 10)       # the padding of the style
        font = QFont(self.font())
        for size in range(self.largest_pt, self.smallest_pt - 1, -1):
            font.setPointSize(size)
            if QFontMetrics(font).horizontalAdvance(words) <= room:
                break
        self.setFont(font)
        self.setText(QFontMetrics(font).elidedText(words, Qt.ElideRight, room))


class PhrasePanel(QWidget):
    """The last phrase in very large type, with the top 3 as bars to choose from.

    Below the confidence threshold it says it is not sure and asks to pick one
    of the three (a sentence reader reading the words still shows them: an
    unsure sentence is mostly right); a reading that is none of the phrases
    says so. A click on a choice calls ``on_choose(reading, phrase)``.

    "Right" (``on_confirm(reading)``) and "Wrong..." (a menu of the phrases,
    ``on_correct(reading, phrase)``) confirm what was read while a reading is
    held (``state.reading``): the utterance is then saved as a sample, and
    teaches the few-shot recogniser. Each acts on the reading on screen when
    it was pressed (or its menu opened), whatever reading arrives meanwhile.
    Above the phrase, ``lead`` says what to do first while there is no patient
    or no phrase of theirs yet; a click on it calls ``on_lead()``.
    """

    def __init__(self, state: AppState, on_choose: Callable[[HistoryItem | None, str], None],
                 on_confirm: Callable[[HistoryItem | None], None] | None = None,
                 on_correct: Callable[[HistoryItem | None, str], None] | None = None,
                 on_lead: Callable[[], None] | None = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.setAutoFillBackground(True)
        self.setStyleSheet(PANEL_STYLE)
        self.lead = ClickableLabel(wordWrap=True)
        self.lead.setFont(QFont("Sans", 13, QFont.Bold))
        self.lead.setStyleSheet(LEAD_STYLE)
        self.lead.setCursor(Qt.PointingHandCursor)
        self.lead.clicked.connect(lambda: on_lead and on_lead())
        self.headline = QLabel("Mouth a phrase")
        self.headline.setFont(QFont("Sans", 20))
        self.headline.setWordWrap(True)
        self.phrase = FittedLabel("\u2014", smallest_pt=PHRASE_SMALLEST_PT)
        self.phrase.setFont(QFont("Sans", 64, QFont.Bold))
        self.phrase.setMinimumHeight(PHRASE_MIN_HEIGHT)
        self.headline.setAlignment(Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addWidget(self.lead)
        layout.addWidget(self.headline)
        layout.addWidget(self.phrase, stretch=1)
        self.right_button = QPushButton("\u2713 Right")
        self.wrong_button = QPushButton("\u2717 Wrong\u2026")
        self.right_button.setToolTip("It read the right phrase: keep this as a sample of it")
        self.wrong_button.setToolTip("It read the wrong phrase: pick the right one, kept as a "
                                     "sample of it")
        self.wrong_menu = QMenu(self)
        self.wrong_menu.setFont(QFont("Sans", 16))
        confirm_row = QHBoxLayout()
        for button in (self.right_button, self.wrong_button):
            button.setFont(QFont("Sans", 14, QFont.Bold))
            button.setMinimumHeight(40)
            confirm_row.addWidget(button)
        layout.addLayout(confirm_row)
        # The reading on screen at the last press, and the phrase of the button pressed.
        self._pressed: tuple[HistoryItem | None, str | None] = (None, None)
        self._menu_reading: HistoryItem | None = None
        self.right_button.pressed.connect(self._press)
        self.right_button.clicked.connect(lambda: on_confirm and on_confirm(self._pressed[0]))
        self.wrong_button.clicked.connect(self._show_wrong_menu)
        self.wrong_menu.triggered.connect(
            lambda action: on_correct and on_correct(self._menu_reading, action.data()))
        self.choices: list[tuple[ChoiceButton, QProgressBar]] = []
        for _ in range(3):
            button = ChoiceButton()
            button.setMinimumHeight(38)
            button.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)   # a sentence never widens the panel
            button.setStyleSheet("text-align: left; padding: 4px 12px;")
            button.pressed.connect(lambda b=button: self._press(b.phrase))
            button.clicked.connect(lambda _=False: on_choose(*self._pressed))
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setMinimumHeight(30)
            bar.setFont(QFont("Sans", 14))
            row = QHBoxLayout()
            row.addWidget(button, stretch=3)
            row.addWidget(bar, stretch=2)
            layout.addLayout(row)
            self.choices.append((button, bar))
        for field in ("entry", "kind", "patient", "phrase", "top3", "sure", "chosen", "read_mode",
                      "reading", "off_list", "per_phrase", "classes", "model_problem"):
            state.subscribe(field, self._changed)
        self._changed(None)

    @property
    def pinned_reading(self) -> HistoryItem | None:
        """The reading an open Wrong... menu will correct (None while it is closed)."""
        return self._menu_reading if self.wrong_menu.isVisible() else None

    def _press(self, phrase: str | None = None) -> None:
        self._pressed = (self.state.reading, phrase)

    def _changed(self, change: Change | None) -> None:
        state = self.state
        self._show_lead()
        if state.entry is None and state.kind == "few_shot":
            self.headline.setText("One phrase so far: it needs two to tell apart"
                                  if state.per_phrase else "No samples of this patient yet"
                                  if state.patient else "No patient chosen")
            self.phrase.setText("Record a second phrase" if state.per_phrase
                                else "Record one of each phrase" if state.patient
                                else "Type the patient in the Record tab")
        elif state.entry is None and state.model_problem:
            self.headline.setText(state.model_problem)
            self.phrase.setText("Choose another model")
        elif state.entry is None:
            self.headline.setText("No trained model yet")
            self.phrase.setText("Record samples, then train")
        elif state.phrase is None:
            self.headline.setText("Mouth a phrase")
            self.phrase.setText("\u2014")
        elif state.off_list:
            self.headline.setText("Not one of the phrases \u2014 or one of these?")
            self.phrase.setText("?")
        elif state.reads_sentences and state.read_mode == ReadMode.TRANSCRIPT:
            # The words read always show: an unsure sentence is mostly right, word by word.
            self.headline.setText("Read" if state.sure else
                                  "Read, not sure of every word \u2014 or one of these?")
            self.phrase.setText(spoken_text(state.phrase))
        elif state.chosen:
            self.headline.setText("Chosen")
            self.phrase.setText(spoken_text(state.phrase))
        elif state.sure:
            self.headline.setText("Recognised")
            self.phrase.setText(spoken_text(state.phrase))
        else:
            # Right confirms the likeliest, so it is named; the three below are the choice.
            self.headline.setText(f"Not sure: \u201c{spoken_text(state.phrase)}\u201d? "
                                  "Or one of these?")
            self.phrase.setText("?")
        transcript = state.reads_sentences and state.read_mode == ReadMode.TRANSCRIPT
        self.right_button.setEnabled(state.confirmable and not state.off_list)
        self.wrong_button.setEnabled(state.confirmable and not transcript and len(state.classes) > 1)
        for index, (button, bar) in enumerate(self.choices):
            phrase, probability = state.top3[index] if index < len(state.top3) else (None, 0.0)
            button.set_phrase(phrase)
            # A reading that names none of the phrases gives them no share worth a figure,
            # and a phrase picked by hand is no reading's confidence.
            figures = bool(phrase) and not (state.off_list or state.chosen)
            bar.setValue(round(probability * 100) if figures else 0)
            bar.setFormat(f"{probability:.0%}" if figures else "")

    def _show_lead(self) -> None:
        """What to do first: a patient, then a first (and a second) phrase of theirs."""
        state = self.state
        phrases = len(state.per_phrase)
        if not state.patient:
            text = "Start here: type the patient\u2019s name in the Record tab \u2192"
        elif phrases == 0:
            text = f"Next: record a first phrase of {state.patient} in the Record tab \u2192"
        elif phrases == 1 and state.kind == "few_shot":
            text = f"Next: record a second phrase of {state.patient} in the Record tab \u2192"
        else:
            text = ""
        self.lead.setText(text)
        self.lead.setToolTip(text)
        self.lead.setVisible(bool(text))

    def _show_wrong_menu(self) -> None:
        """The phrases it could have meant, the one it read left out; the reading on screen
        now is the one a pick corrects."""
        reading = self._menu_reading = self.state.reading
        self.wrong_menu.clear()
        # Which reading a pick corrects, named: a newer one may take the screen meanwhile.
        if reading is not None:
            self.wrong_menu.addSection(f"It read \u201c{spoken_text(reading.phrase)}\u201d at "
                                       f"{reading.time:%H:%M:%S}; it meant:")
        # The default phrases too: a correction to one not recorded yet teaches it.
        for phrase in dict.fromkeys(self.state.classes + DEFAULT_PHRASES):
            if reading is None or phrase != reading.phrase:
                self.wrong_menu.addAction(spoken_text(phrase)).setData(phrase)
        self.wrong_menu.popup(self.wrong_button.mapToGlobal(self.wrong_button.rect().bottomLeft()))


class HistoryPanel(QListWidget):
    """The current patient's phrases (everybody's while there is none) with their times,
    newest on top; those kept as a sample say so. The row chosen stays on its phrase as
    new ones arrive above it."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._chosen: HistoryItem | None = None       # the item of the row the user chose
        self._rows: list[HistoryItem] = []             # the items listed, row by row
        self.setFont(QFont("Sans", 14))
        # A narrow tab elides a long row (the middle of its phrase) rather than scroll sideways.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.ElideMiddle)
        state.subscribe("history", self._changed)
        state.subscribe("patient", self._changed)
        self.currentRowChanged.connect(lambda row: setattr(self, "_chosen", self.item_at(row)))
        self._changed(None)

    def shown(self) -> list[HistoryItem]:
        """The history items listed, newest first."""
        key = patient_key(self.state.patient)
        return [item for item in reversed(self.state.history)
                if key is None or patient_key(item.patient) == key]

    def item_at(self, row: int) -> HistoryItem | None:
        """The history item listed on ``row`` (newest first)."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def selected(self) -> HistoryItem | None:
        """The item of the row chosen (as it is now: marked saved or not)."""
        return self.item_at(self.currentRow()) if self.currentItem() is not None else None

    def _changed(self, change: Change | None) -> None:
        chosen, anchor = self._chosen, self._top_item()
        self.blockSignals(True)
        self.clear()
        self._rows = self.shown()
        for item in self._rows:
            # A phrase picked by hand has no confidence of its own to show.
            how = ("chosen" if item.chosen else f"{item.confidence:.0%}" if item.sure
                   else f"{item.confidence:.0%} (not sure)")
            kept = "  \u2713 kept as a sample" if item.saved else ""
            self.addItem(f"{item.time:%H:%M:%S}   {spoken_text(item.phrase)}   {how}{kept}")
        rows = [r for r in range(self.count()) if chosen is not None
                and same_item(self.item_at(r), chosen)]
        self.setCurrentRow(rows[0] if rows else -1)
        self._keep_at_top(anchor)
        self.blockSignals(False)
        self._chosen = self.selected()
        self.currentRowChanged.emit(self.currentRow())

    def _top_item(self) -> HistoryItem | None:
        """The item of the top row in view, when the rows must not move (the list is
        scrolled, or the pointer is over it, about to choose a row); else None."""
        if self.verticalScrollBar().value() == 0 and not self.underMouse():
            return None
        return self.item_at(self.indexAt(QPoint(1, 1)).row())

    def _keep_at_top(self, anchor: HistoryItem | None) -> None:
        """Scroll the row of ``anchor`` back to the top: the rows in view stay where they
        were as new ones arrive above them."""
        row = next((r for r in range(self.count())
                    if anchor is not None and same_item(self.item_at(r), anchor)), None)
        if row is not None:
            self.doItemsLayout()             # the new rows' places, before scrolling to one
            self.scrollToItem(self.item(row), QAbstractItemView.PositionAtTop)


class HistoryTab(QWidget):
    """The history list with "Undo sample" (the row chosen) and "Undo last sample" (the newest
    kept), each calling ``on_undo(item)``; ``said`` tells what the last undo removed."""

    def __init__(self, history: HistoryPanel, on_undo: Callable[[HistoryItem], None], parent=None):
        super().__init__(parent)
        self.history = history
        self.on_undo = on_undo
        self.undo_button = QPushButton("Undo sample")
        self.undo_button.setToolTip("Delete the sample the chosen row's confirmation kept")
        self.undo_last_button = QPushButton("Undo last sample")
        self.undo_last_button.setToolTip("Delete the newest sample kept by a confirmation")
        self.said = QLabel(wordWrap=True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.undo_last_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(history, stretch=1)
        layout.addLayout(buttons)
        layout.addWidget(self.said)
        history.currentRowChanged.connect(lambda _: self._selected())
        history.state.subscribe("history", lambda _: self._selected())
        self.undo_button.clicked.connect(lambda: self._undo(self.history.selected()))
        self.undo_last_button.clicked.connect(lambda: self._undo(self.last_saved()))
        self._selected()

    def last_saved(self) -> HistoryItem | None:
        return next((i for i in self.history.shown() if i.saved), None)

    def _selected(self) -> None:
        item = self.history.selected()
        self.undo_button.setEnabled(item is not None and item.saved is not None)
        self.undo_last_button.setEnabled(self.last_saved() is not None)

    def _undo(self, item: HistoryItem | None) -> None:
        if item is not None and item.saved:
            self.undo_button.setEnabled(False)
            self.on_undo(item)

    def show_undone(self, item: HistoryItem) -> None:
        """Say which sample an undo removed."""
        self.said.setText(f"Removed the sample of \u201c{spoken_text(item.phrase)}\u201d "
                          f"kept at {item.time:%H:%M:%S}")
