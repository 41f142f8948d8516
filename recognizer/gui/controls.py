"""The recogniser bar: kind switch, model picker from the registry, entry details, settings."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QWidget,
)

from features.text import spoken_text
from recognizer.predictor import find_entry, sure_above
from recognizer.reading import ReadMode
from recognizer.state import AppState, Change
from training.card import Card
from training.kinds import KINDS, get_kind
from training.registry import RegistryEntry, list_entries


def entry_label(name: str, card: Card) -> str:
    """A model list line: the entry's name with its test accuracy, or WER for a sentence reader."""
    wer = card.wer
    if wer is not None:
        return f"{name}  (WER {wer:.0%})"
    return f"{name}  ({card.accuracy:.0%})" if card.accuracy is not None else name


def registry_choice(registry_root: str | Path, kind: str) -> str | None:
    """The name of the entry the registry would have ``kind`` use (:func:`find_entry`), or None."""
    chosen = find_entry(registry_root, kind)
    return chosen.name if chosen else None


READ_MODES = ((ReadMode.PHRASES, "phrase list"), (ReadMode.TRANSCRIPT, "words"))


class ElidedLabel(QLabel):
    """One line of text that takes the room it gets and ends in "..." where it does not fit
    (the whole text is its tooltip)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def shown_text(self) -> str:
        """The text as painted: elided to the label's width."""
        return self.fontMetrics().elidedText(self.text(), Qt.ElideRight, self.contentsRect().width())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.drawText(self.contentsRect(), int(Qt.AlignLeft | Qt.AlignVCenter), self.shown_text())
        painter.end()


class RecogniserBar(QWidget):
    """Chooses the recogniser kind and registry entry; ``on_pick(kind, entry_path)`` loads it.

    ``entry_path`` is None when the registry has no entry of that kind. Shows
    the active entry's classes and accuracy and edits the state's settings.
    ``default_entry(kind)`` names the entry a kind starts with (default: the
    registry's active one, else its newest) and ``listed(entry)`` which entries
    the list offers (default: all); the window gives the few-shot kind the
    current patient's entry only, never another patient's.
    """

    def __init__(self, state: AppState, registry_root: str | Path,
                 on_pick: Callable[[str, Path | None], None],
                 default_entry: Callable[[str], str | None] | None = None,
                 listed: Callable[[RegistryEntry], bool] | None = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.registry_root = Path(registry_root)
        self._on_pick = on_pick
        self._default_entry = default_entry or (lambda kind: registry_choice(self.registry_root, kind))
        self._listed = listed or (lambda entry: True)
        self.kind = QComboBox()
        for kind in KINDS:
            self.kind.addItem(get_kind(kind).label, kind)
        self.model = QComboBox(minimumContentsLength=12)
        # A long entry name never widens the bar past a small screen: it shows elided.
        self.model.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.read_mode = QComboBox()
        for mode, text in READ_MODES:
            self.read_mode.addItem(text, mode.value)
        self.read_mode.setToolTip("A sentence reader answers a phrase of the list (the default "
                                  "phrases and every recorded one), or the words it reads")
        self.read_mode.setCurrentIndex(self.read_mode.findData(state.read_mode))
        self.details = ElidedLabel()      # long class lists never widen the window
        self.threshold = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2,
                                        value=state.confidence_threshold)
        # Typing "0.7" passes through "0." on the way: only a finished value is taken.
        self.threshold.setKeyboardTracking(False)
        self.threshold.setToolTip("How far from chance to certainty a reading must be to count as "
                                  "sure: 0.5 asks 75% of two phrases, 57% of seven")
        self.sure_at = QLabel()
        self.speak = QCheckBox("Speak aloud", checked=state.speak_aloud)
        self.speech_badge = QLabel("\u26a0 no speech")
        self.speech_badge.setStyleSheet("color: #b00020; font-weight: bold;")
        layout = QHBoxLayout(self)
        layout.setSpacing(6)
        self.read_label = QLabel("Read")
        for widget in (QLabel("Recogniser"), self.kind, QLabel("Model"), self.model,
                       self.read_label, self.read_mode, self.details):
            widget.setFont(QFont("Sans", 12))
            layout.addWidget(widget, stretch=1 if widget is self.details else 0)
        sure = QLabel("Sure \u2265")
        sure.setToolTip(self.threshold.toolTip())
        for widget in (sure, self.threshold, self.sure_at, self.speak,
                       self.speech_badge):
            layout.addWidget(widget)
        self.kind.setCurrentIndex(self.kind.findData(state.kind))
        self.kind.currentIndexChanged.connect(lambda _: self.refresh_models())
        self.model.activated.connect(lambda _: self._picked())
        self.read_mode.currentIndexChanged.connect(
            lambda _: setattr(state, "read_mode", self.read_mode.currentData()))
        self.threshold.valueChanged.connect(lambda v: setattr(state, "confidence_threshold", v))
        self.speak.toggled.connect(lambda on: setattr(state, "speak_aloud", on))
        for field in ("entry", "classes", "accuracy", "wer", "measured_by", "reads_sentences",
                      "read_mode"):
            state.subscribe(field, self._show_details)
        state.subscribe("confidence_threshold", lambda c: self.threshold.setValue(c.value))
        for field in ("speak_aloud", "speech_problem"):
            state.subscribe(field, lambda _: self._show_speech())
        for field in ("confidence_threshold", "classes", "reads_sentences", "read_mode"):
            state.subscribe(field, lambda _: self._show_sure_at())
        self._show_details(None)
        self._show_speech()
        self._show_sure_at()

    def _show_speech(self) -> None:
        """Ticked while phrases are spoken; unticked, greyed and badged, with the reason as
        the badge's tooltip, where they cannot be."""
        problem = self.state.speech_problem
        self.speak.blockSignals(True)
        self.speak.setChecked(self.state.speak_aloud and not problem)
        self.speak.blockSignals(False)
        self.speak.setEnabled(not problem)
        self.speech_badge.setVisible(bool(problem))
        self.speech_badge.setToolTip(problem)
        self.speak.setToolTip(problem or "Say sure phrases aloud")

    def _show_sure_at(self) -> None:
        """What the threshold asks of the phrases in use: it counts from chance."""
        state = self.state
        candidates = (0 if state.reads_sentences and state.read_mode == ReadMode.TRANSCRIPT
                      else len(state.classes))
        if candidates < 2:
            self.sure_at.setText("")
            return
        chance, needed = 1.0 / candidates, sure_above(candidates, state.confidence_threshold)
        self.sure_at.setText(f"= {needed:.0%}")
        self.sure_at.setToolTip(f"Chance among {candidates} phrases is {chance:.0%}: a reading is "
                                f"sure at {needed:.0%} or more ({state.confidence_threshold:.0%} "
                                "of the way from chance to certain)")

    def refresh_models(self, select: str | None = None, load: bool = True) -> None:
        """Fill the model list for the chosen kind; select (and ``load``) ``select``, default the active entry."""
        kind = self.kind.currentData()
        entries = [e for e in list_entries(self.registry_root)
                   if e.card.kind == kind and self._listed(e)]
        if select is None:
            select = self._default_entry(kind)
        self.model.blockSignals(True)
        self.model.clear()
        for entry in entries:
            self.model.addItem(entry_label(entry.name, entry.card), str(entry.path))
        names = [e.name for e in entries]
        self.model.setCurrentIndex(names.index(select) if select in names else -1)
        self.model.blockSignals(False)
        if load:
            self._picked()

    def show_kind(self, kind: str) -> None:
        """Show ``kind`` as the chosen recogniser without loading a model of it (the caller
        refreshes the model list, or loads one itself)."""
        self.kind.blockSignals(True)
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self.kind.blockSignals(False)

    def _picked(self) -> None:
        path = self.model.currentData()
        self._on_pick(self.kind.currentData(), Path(path) if path else None)

    def _show_details(self, change: Change | None) -> None:
        state = self.state
        for widget in (self.read_label, self.read_mode):
            widget.setVisible(state.reads_sentences)
        index = self.read_mode.findData(state.read_mode)
        if index != self.read_mode.currentIndex():
            self.read_mode.setCurrentIndex(index)
        if state.entry is None:
            self.details.setText("no trained model")
            return
        classes = ", ".join(spoken_text(c) for c in state.classes)
        shown = classes if len(classes) <= 60 else classes[:57] + "..."
        if state.reads_sentences:
            wer = f"{state.wer:.1%}" if state.wer is not None else "unknown"
            reads = (f"reads sentences of {len(state.classes)} words"
                     if state.read_mode == ReadMode.TRANSCRIPT else f"{len(state.classes)} phrases")
            head = f"test WER {wer} · {reads}"
        else:
            accuracy = f"{state.accuracy:.1%}" if state.accuracy is not None else "unknown"
            head = f"{state.measured_by} accuracy {accuracy} · {len(state.classes)} phrases"
        self.details.setText(f"{head}: {shown}")
        self.details.setToolTip(f"{head}: {classes}")     # the whole line a narrow bar elides
