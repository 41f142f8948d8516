"""The record panel: the patient, the phrase, countdown, replay, keep or discard.

The worker records (see :mod:`recognizer.recording`); this panel asks it to
start or cancel, replays the :class:`Take` it sends back, and on "Keep" saves
it with :func:`features.dataset.save_clip` on a background thread, so the live
view never waits for the disk. Nothing is written before "Keep". A kept take
is the current patient's (:attr:`AppState.patient`, the sidecar's speaker);
:attr:`RecordPanel.kept` hands it on to be enrolled, and the counts show per
phrase the patient's samples and the accuracy to expect from them
(:attr:`AppState.per_phrase`). "Delete patient..." asks first, then
:attr:`RecordPanel.delete_requested` names the patient.

Nothing in the panel takes its size from a take or a message: the replay
scales into its place beside the buttons (Keep and the take it keeps are seen
together), and the message has a fixed number of lines, so one take after another never moves
the window's layout or grows it past a small screen.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from features.dataset import Sidecar, build_manifest, save_clip, validate_label
from features.text import patient_key, spoken_text
from recognizer.gui.layout import button_rows, form_rows, form_with_buttons
from recognizer.patients import patient_rows, patients
from recognizer.recording import (DEFAULT_PHRASES, RecordingConfig, Take, expectation, phrase_list,
                                  sample_hint)
from recognizer.state import AppState

GENDERS = ("", "female", "male", "other")
AGE_BANDS = ("", "under 18", "18-39", "40-64", "65+")
MESSAGE_LINES = 3
REPLAY_HINT = "A take replays here before you keep it"
REPLAY_MIN_HEIGHT = 120     # pixels: a face whose lips can be seen moving


MIN_FACE_FRACTION = 0.5     # a take with a face in fewer of its frames is no sample


def count_line(label: str, have: int, expected: float | None = None, phrases: int = 2) -> str:
    """One line of the sample counts: ``label`` in words, how many it has, and in a few words
    what the few-shot recogniser makes of them among ``phrases`` phrases with samples (the
    whole story is :func:`sample_hint`, the tooltip)."""
    return f"{spoken_text(label)}: {have}  \u2014 {expectation(have, expected, phrases)}"


def face_problem(take: Take) -> str | None:
    """Why ``take`` cannot be a sample (no face in most of its frames), or None."""
    seen = 0.0 if take.clip is None or not len(take.clip.valid) else float(take.clip.valid.mean())
    if seen >= MIN_FACE_FRACTION:
        return None
    return (f"No face was found in {1 - seen:.0%} of this take, so it cannot be a sample. "
            "Face the camera in good light, the whole mouth in view, and record again.")


class ReplayView(QWidget):
    """A take's frame, scaled to whatever room the panel gives it (aspect kept, centred).

    Its size policy ignores the frame's size, so a full-HD take and a small one
    take the same place and never ask the window for more.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self._rgb: np.ndarray | None = None
        self._image: QImage | None = None

    def show_frame(self, rgb: np.ndarray) -> None:
        """Show ``rgb`` (H, W, 3) uint8; it is kept, since the image reads its buffer."""
        self._rgb = np.ascontiguousarray(rgb)
        height, width = self._rgb.shape[:2]
        self._image = QImage(self._rgb.data, width, height, 3 * width, QImage.Format_RGB888)
        self.update()

    def clear(self) -> None:
        self._rgb = self._image = None
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is drawn: the largest rectangle of its shape that fits the widget."""
        if self._image is None or self._image.isNull():
            return QRectF()
        scale = min(self.width() / self._image.width(), self.height() / self._image.height())
        width, height = self._image.width() * scale, self._image.height() * scale
        return QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#000000"))
        if self._image is not None:
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawImage(self.image_rect(), self._image)
        else:
            painter.setPen(QColor("#9e9e9e"))
            painter.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, REPLAY_HINT)
        painter.end()


class RecordPanel(QWidget):
    """Records samples of a phrase into ``videos_root/<label>/``.

    ``start_recording(config)`` / ``cancel_recording()`` reach the live worker;
    the window passes each finished take to :meth:`show_take`. :attr:`saved`
    is emitted with the clip's path once it is on disk.
    """

    saved = Signal(str)
    kept = Signal(str, str, object, str)     # label, clip path, its live features (or None), patient
    save_failed = Signal(str)
    delete_requested = Signal(str)           # the patient, once the user has confirmed

    def __init__(self, videos_root: str | Path, start_recording: Callable[[RecordingConfig], None],
                 cancel_recording: Callable[[], None], state: AppState | None = None, parent=None):
        super().__init__(parent)
        self.videos_root = Path(videos_root)
        self.state = state if state is not None else AppState()
        self.keep_clicked = 0.0          # monotonic time of the last "Keep"
        self._start_recording = start_recording
        self._cancel_recording = cancel_recording
        self._take: Take | None = None
        self._label: str | None = None
        self._replay_index = 0
        self.phrase = QComboBox(editable=True)
        self.phrase.setInsertPolicy(QComboBox.NoInsert)
        # A long recorded label must not widen the panel.
        self.phrase.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.phrase.setMinimumContentsLength(16)
        self.patient = QComboBox(editable=True)
        self.patient.setInsertPolicy(QComboBox.NoInsert)
        self.patient.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.patient.setMinimumContentsLength(14)
        self.patient.lineEdit().setPlaceholderText("e.g. bed 4")
        self.patient.setToolTip("Whose samples these are: each patient has their own samples, "
                                "confirmations and few-shot recogniser")
        self.delete_button = QPushButton("Delete patient\u2026")
        self.delete_button.setToolTip("Delete every recording and model of this patient")
        self.gender = QComboBox()
        self.gender.addItems(GENDERS)
        self.age_band = QComboBox()
        self.age_band.addItems(AGE_BANDS)
        self.countdown = QSpinBox(minimum=0, maximum=10, value=3, suffix=" s")
        self.max_length = QSpinBox(minimum=1, maximum=30, value=6, suffix=" s")
        self.record_button = QPushButton("\u25cf Record")
        self.cancel_button = QPushButton("Cancel")
        self.keep_button = QPushButton("Keep")
        self.discard_button = QPushButton("Discard")
        self.message = QLabel(wordWrap=True, alignment=Qt.AlignLeft | Qt.AlignTop)
        # A fixed height: a longer message must not push the layout about or grow the window.
        self.message.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.message.setFixedHeight(MESSAGE_LINES * self.message.fontMetrics().lineSpacing() + 2)
        self.replay = ReplayView()
        self.replay.setMinimumHeight(REPLAY_MIN_HEIGHT)
        self.counts = QListWidget()
        self.counts.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.counts.setTextElideMode(Qt.ElideRight)
        self._replay_timer = QTimer(self)
        self._replay_timer.timeout.connect(self._next_replay_frame)
        self._build_layout()
        self.record_button.clicked.connect(self.record)
        self.cancel_button.clicked.connect(self.cancel)
        self.keep_button.clicked.connect(self.keep)
        self.discard_button.clicked.connect(self.discard)
        self.saved.connect(self._on_saved)
        self.save_failed.connect(lambda text: self._say(text, error=True))
        self.patient.lineEdit().editingFinished.connect(self._patient_typed)
        self.patient.activated.connect(lambda _: self._patient_typed())
        self.delete_button.clicked.connect(self._delete_patient)
        self.state.subscribe("patient", lambda _: self.show_patient())
        self.state.subscribe("per_phrase", lambda _: self.refresh_counts())
        self._set_mode("idle")
        self.show_patient()

    def _build_layout(self) -> None:
        # What a take needs first: its buttons with its replay beside them (Keep and the take
        # it keeps in view together on a small screen) and what it says; the rest below.
        layout = form_with_buttons(
            self, [(("Patient", self.patient), ("", self.delete_button)),
                   (("Phrase", self.phrase), ("Countdown", self.countdown))], [])
        take = QHBoxLayout()
        take.addLayout(button_rows([self.record_button, self.cancel_button, self.keep_button,
                                    self.discard_button], per_row=2), stretch=3)
        take.addWidget(self.replay, stretch=2)
        layout.addLayout(take)
        layout.addWidget(self.message)
        layout.addLayout(form_rows([(("Gender", self.gender), ("Age band", self.age_band),
                                     ("Longest", self.max_length))]))
        layout.addWidget(QLabel("Samples per phrase"))
        layout.addWidget(self.counts, stretch=1)

    def _set_mode(self, mode: str) -> None:
        """``idle``, ``recording`` (countdown or capture) or ``review`` (a take to keep or discard)."""
        self.record_button.setEnabled(mode == "idle")
        self.cancel_button.setEnabled(mode == "recording")
        self.keep_button.setEnabled(mode == "review")
        self.discard_button.setEnabled(mode == "review")
        # Focus on what to press next, which a scrolling tab brings into view.
        {"idle": self.record_button, "recording": self.cancel_button,
         "review": self.keep_button if self.keep_button.isEnabled() else self.discard_button
         }[mode].setFocus()
        self.phrase.setEnabled(mode == "idle")
        self.patient.setEnabled(mode == "idle")
        self.delete_button.setEnabled(mode == "idle" and bool(self.state.patient))

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #ff6b6b;" if error else "")
        self.message.setText(text)
        self.message.setToolTip(text)

    def _patient_typed(self) -> None:
        self.state.choose_patient(self.patient.currentText())

    def show_patient(self) -> None:
        """The patient list (every patient typed or with a recording, and the current one)
        and counts; the last message was about another patient's samples."""
        current = self.state.patient
        self._say("")
        names = list(patients(self.videos_root)) if self.videos_root.is_dir() else []
        for name in (*self.state.patients, current):
            if name and patient_key(name) not in {patient_key(n) for n in names}:
                names.append(name)
        self.patient.blockSignals(True)
        self.patient.clear()
        self.patient.addItems(sorted(names, key=str.casefold))
        self.patient.setEditText(current)
        self.patient.blockSignals(False)
        self.delete_button.setEnabled(bool(current) and self.record_button.isEnabled())
        self.refresh_counts()

    def label_counts(self) -> dict[str, int]:
        """Samples per phrase of the current patient (of everybody when there is none)."""
        manifest = build_manifest(self.videos_root)
        if self.state.patient:
            manifest = patient_rows(manifest, self.state.patient)
        return {str(k): int(v) for k, v in manifest["label"].value_counts().items()}

    def refresh_counts(self) -> None:
        counts = self.label_counts()
        phrases = phrase_list(counts)
        current = self.phrase.currentText()
        self.phrase.clear()
        self.phrase.addItems([spoken_text(p) for p in phrases])
        self.phrase.setEditText(current or spoken_text(DEFAULT_PHRASES[0]))
        self.counts.clear()
        recorded = sum(1 for have in counts.values() if have)
        for label in phrases:
            have = counts.get(label, 0)
            expected = self.state.per_phrase.get(label, {}).get("expected_accuracy")
            # With no patient chosen these are everybody's samples: no recogniser's promise.
            line = (count_line(label, have, expected, recorded) if self.state.patient
                    else f"{spoken_text(label)}: {have}")
            item = QListWidgetItem(line)
            item.setToolTip(f"{spoken_text(label)}: {have} \u2014 "
                            f"{sample_hint(counts, label, expected, recorded)}")
            self.counts.addItem(item)

    def _delete_patient(self) -> None:
        patient = self.state.patient
        if not patient:
            return
        clips = sum(self.label_counts().values())
        if self.confirm_delete(patient, clips):
            self.delete_requested.emit(patient)

    def confirm_delete(self, patient: str, clips: int) -> bool:
        """Ask before deleting ``patient``'s data (tests replace this)."""
        answer = QMessageBox.warning(
            self, "Delete this patient's data",
            (f"Delete all {clips} recording(s) of \u201c{patient}\u201d, the models made from "
             "them and their phrase history? This cannot be undone." if clips else
             f"\u201c{patient}\u201d has no recordings. Delete their models and phrase history? "
             "This cannot be undone."), QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Yes

    def record(self) -> None:
        self._patient_typed()          # a name typed but not yet entered is the patient
        try:
            self._label = validate_label(self.phrase.currentText())
        except ValueError as error:
            self._say(str(error), error=True)
            return
        self._set_mode("recording")
        self._say(f"Get ready to mouth \u201c{self._label}\u201d after the countdown.")
        self._start_recording(RecordingConfig(countdown_ms=self.countdown.value() * 1000,
                                              max_ms=self.max_length.value() * 1000))

    def cancel(self) -> None:
        self._cancel_recording()
        self._set_mode("idle")
        self._say("Recording cancelled; nothing was saved.")

    def show_take(self, take: Take) -> None:
        """Replay a finished recording and offer to keep or discard it."""
        if self._label is None:
            return
        self._take = take
        self._set_mode("review")
        problem = face_problem(take)
        if problem:
            self.keep_button.setEnabled(False)
            self.discard_button.setFocus()
            self._say(problem, error=True)
        else:
            why = ("the utterance ended" if take.ended_by == "utterance_end"
                   else "the longest length was reached")
            self._say(f"Recorded {take.seconds:.1f} s of \u201c{spoken_text(self._label)}\u201d "
                      f"({why}). Keep it?")
        self._replay_index = 0
        self._next_replay_frame()
        self._replay_timer.start(max(10, round(1000 / take.fps)))

    def _next_replay_frame(self) -> None:
        if self._take is None or not self._take.frames:
            self._replay_timer.stop()
            return
        self.replay.show_frame(self._take.frames[self._replay_index % len(self._take.frames)])
        self._replay_index += 1

    def _end_review(self) -> None:
        self._replay_timer.stop()
        self.replay.clear()
        self._take = None
        self._set_mode("idle")

    def discard(self) -> None:
        self._end_review()
        self._say("Discarded; nothing was saved.")

    def sidecar(self) -> Sidecar:
        return Sidecar(speaker=self.state.patient or None,
                       gender=self.gender.currentText() or None,
                       age_band=self.age_band.currentText() or None,
                       recorded_at=datetime.now().isoformat(timespec="seconds"))

    def keyPressEvent(self, event) -> None:
        """Enter presses the button that has the keyboard (Keep after a take), as Space does."""
        button = self.focusWidget()
        if (event.key() in (Qt.Key_Return, Qt.Key_Enter) and isinstance(button, QPushButton)
                and button.isEnabled()):
            button.click()
            return
        super().keyPressEvent(event)

    def keep(self) -> None:
        if self._take is None or face_problem(self._take):
            return
        self.keep_clicked = time.monotonic()
        take, label, sidecar = self._take, self._label, self.sidecar()
        self._end_review()
        self._say("Saving...")

        def save():
            try:
                path = save_clip(self.videos_root, label, list(take.frames), take.fps, sidecar)
            except (OSError, ValueError) as error:
                self.save_failed.emit(f"Could not save the sample of \u201c{label}\u201d: {error}")
                return
            self.saved.emit(str(path))
            self.kept.emit(path.parent.name, str(path), take.clip, sidecar.speaker or "")
        threading.Thread(target=save, name="save-sample", daemon=False).start()

    def _on_saved(self, path: str) -> None:
        self.refresh_counts()
        label = Path(path).parent.name
        self._say(f"Saved a sample of \u201c{spoken_text(label)}\u201d "
                  f"({self.label_counts().get(label, 0)} now).")
