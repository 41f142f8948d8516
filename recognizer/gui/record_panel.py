"""The record panel: phrase and speaker details, countdown, replay, keep or discard.

The worker records (see :mod:`recognizer.recording`); this panel asks it to
start or cancel, replays the :class:`Take` it sends back, and on "Keep" saves
it with :func:`features.dataset.save_clip` on a background thread, so the live
view never waits for the disk. Nothing is written before "Keep".

Nothing in the panel takes its size from a take or a message: the replay
scales into the place of the sample counts while a take is reviewed, and the
message has a fixed number of lines, so one take after another never moves
the window's layout or grows it past a small screen.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from features.dataset import Sidecar, build_manifest, save_clip, validate_label
from recognizer.gui.layout import form_with_buttons
from recognizer.recording import (DEFAULT_PHRASES, MIN_CLIPS_TO_TRAIN, RECOMMENDED_CLIPS, RecordingConfig,
                                  Take, phrase_list, sample_hint)

GENDERS = ("", "female", "male", "other")
AGE_BANDS = ("", "under 18", "18-39", "40-64", "65+")
MESSAGE_LINES = 3


def count_line(label: str, have: int) -> str:
    """One line of the sample counts: ``label``, how many it has, and in a few words what it needs
    (the whole reason is :func:`sample_hint`, shown as the line's tooltip)."""
    if have < MIN_CLIPS_TO_TRAIN:
        needs = f"needs at least {MIN_CLIPS_TO_TRAIN}"
    elif have < RECOMMENDED_CLIPS:
        needs = f"{RECOMMENDED_CLIPS - have} more recommended"
    else:
        return f"{label}: {have}"
    return f"{label}: {have}  \u2014 {needs}"


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
        painter.end()


class RecordPanel(QWidget):
    """Records samples of a phrase into ``videos_root/<label>/``.

    ``start_recording(config)`` / ``cancel_recording()`` reach the live worker;
    the window passes each finished take to :meth:`show_take`. :attr:`saved`
    is emitted with the clip's path once it is on disk.
    """

    saved = Signal(str)
    save_failed = Signal(str)

    def __init__(self, videos_root: str | Path, start_recording: Callable[[RecordingConfig], None],
                 cancel_recording: Callable[[], None], parent=None):
        super().__init__(parent)
        self.videos_root = Path(videos_root)
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
        self.speaker = QLineEdit(placeholderText="optional, e.g. bed 4")
        self.speaker.setMinimumWidth(self.speaker.fontMetrics().horizontalAdvance("optional, e.g. bed 4") + 16)
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
        self.counts = QListWidget()
        self.counts.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.counts.setTextElideMode(Qt.ElideRight)
        self.below = QStackedWidget()
        self._replay_timer = QTimer(self)
        self._replay_timer.timeout.connect(self._next_replay_frame)
        self._build_layout()
        self.record_button.clicked.connect(self.record)
        self.cancel_button.clicked.connect(self.cancel)
        self.keep_button.clicked.connect(self.keep)
        self.discard_button.clicked.connect(self.discard)
        self.saved.connect(self._on_saved)
        self.save_failed.connect(lambda text: self._say(text, error=True))
        self._set_mode("idle")
        self.refresh_counts()

    def _build_layout(self) -> None:
        layout = form_with_buttons(
            self, [("Phrase", self.phrase),
                   (("Speaker", self.speaker), ("Gender", self.gender), ("Age band", self.age_band)),
                   (("Countdown", self.countdown), ("Longest", self.max_length))],
            [self.record_button, self.cancel_button, self.keep_button, self.discard_button])
        layout.addWidget(self.message)
        counts_page = QWidget()
        counts_layout = QVBoxLayout(counts_page)
        counts_layout.setContentsMargins(0, 0, 0, 0)
        counts_layout.addWidget(QLabel("Samples per phrase"))
        counts_layout.addWidget(self.counts, stretch=1)
        self.below.addWidget(counts_page)
        self.below.addWidget(self.replay)
        layout.addWidget(self.below, stretch=1)

    def _set_mode(self, mode: str) -> None:
        """``idle``, ``recording`` (countdown or capture) or ``review`` (a take to keep or discard)."""
        self.record_button.setEnabled(mode == "idle")
        self.cancel_button.setEnabled(mode == "recording")
        self.keep_button.setEnabled(mode == "review")
        self.discard_button.setEnabled(mode == "review")
        self.below.setCurrentIndex(1 if mode == "review" else 0)
        self.phrase.setEnabled(mode == "idle")

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #ff6b6b;" if error else "")
        self.message.setText(text)
        self.message.setToolTip(text)

    def label_counts(self) -> dict[str, int]:
        manifest = build_manifest(self.videos_root)
        return {str(k): int(v) for k, v in manifest["label"].value_counts().items()}

    def refresh_counts(self) -> None:
        counts = self.label_counts()
        phrases = phrase_list(counts)
        current = self.phrase.currentText()
        self.phrase.clear()
        self.phrase.addItems(phrases)
        self.phrase.setEditText(current or DEFAULT_PHRASES[0])
        self.counts.clear()
        for label in phrases:
            have, hint = counts.get(label, 0), sample_hint(counts, label)
            item = QListWidgetItem(count_line(label, have))
            item.setToolTip(f"{label}: {have}" + (f" \u2014 {hint}" if hint else ""))
            self.counts.addItem(item)

    def record(self) -> None:
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
        why = "the utterance ended" if take.ended_by == "utterance_end" else "the longest length was reached"
        self._say(f"Recorded {take.seconds:.1f} s of \u201c{self._label}\u201d ({why}). Keep it?")
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
        return Sidecar(speaker=self.speaker.text().strip() or None,
                       gender=self.gender.currentText() or None,
                       age_band=self.age_band.currentText() or None,
                       recorded_at=datetime.now().isoformat(timespec="seconds"))

    def keep(self) -> None:
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
        threading.Thread(target=save, name="save-sample", daemon=False).start()

    def _on_saved(self, path: str) -> None:
        self.refresh_counts()
        self._say(f"Saved {path}")
