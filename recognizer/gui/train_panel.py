"""The train panel: ``python -m training.run`` in its own process, its events as a progress bar.

The run is a ``QProcess`` writing JSON-line events to stdout (``--events -``),
the same events the terminal's progress bar renders. Cancel terminates the
process; the registry only ever lists complete entries (they are written
under a temporary name and renamed), so a cancelled run leaves none behind.
When the run ends the panel shows the entry's summary and confusion matrix
and offers to make it the active recogniser.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QWidget,
)

from features.dataset import build_manifest
from features.progress import validation_text
from recognizer.gui.layout import form_with_buttons
from training.config import ROOT
from training.kinds import DEFAULT_KIND, KINDS, get_kind


def progress_fraction(event: dict, epochs: int | None) -> float | None:
    """Where a training run of at most ``epochs`` epochs is, in [0, 1], from one event.

    None when the event does not say (early stopping may end a run before 1).
    """
    if event.get("event") == "batch" and epochs:
        return (event["epoch"] - 1 + event["batch"] / event["batches"]) / epochs
    if event.get("event") == "epoch_end" and epochs:
        return event["epoch"] / epochs
    if event.get("event") == "done":
        return 1.0
    return None


def epoch_result(event: dict) -> str:
    """What an ``epoch_end`` event measured: validation accuracy (or WER) and the loss."""
    return f"{validation_text(event, percent=True)}, loss {event['train_loss']:.3f}"


def describe(event: dict, last_epoch: str = "") -> str | None:
    """One line of text for the panel from an event (None: nothing to say); ``last_epoch``:
    the :func:`epoch_result` of the epoch before, kept in view while the next one runs."""
    name = event.get("event")
    if name == "extract":
        return f"Reading lip features: {event['done']}/{event['total']} clips"
    if name == "epoch_start":
        before = f" · epoch {event['epoch'] - 1}: {last_epoch}" if last_epoch else ""
        return f"Epoch {event['epoch']}/{event['epochs']}{before}"
    if name == "epoch_end":
        return f"Epoch {event['epoch']}: {epoch_result(event)}"
    if name in ("message", "done", "error", "resumed"):
        return event.get("text") or f"{name}: {event}"
    return None


class TrainPanel(QWidget):
    """Starts and cancels a training run on ``videos_root`` and shows its progress and result.

    ``on_activate(entry_path)`` makes a finished entry the live recogniser;
    ``extra_args`` are appended to the ``training.run`` command line (tests use
    tiny settings). :attr:`finished` carries the entry path, or "" when the
    run failed or was cancelled.
    """

    finished = Signal(str)

    def __init__(self, videos_root: str | Path, registry_root: str | Path,
                 on_activate: Callable[[Path], None], extra_args: Sequence[str] = (), parent=None):
        super().__init__(parent)
        self.videos_root, self.registry_root = Path(videos_root), Path(registry_root)
        self._on_activate = on_activate
        self._extra_args = list(extra_args)
        self._process: QProcess | None = None
        self._cancelled = False
        self._buffer = b""
        self._epochs: int | None = None
        self._last_epoch = ""
        self.entry: Path | None = None
        self.events: list[dict] = []
        self.kind = QComboBox()
        for kind in KINDS:          # the few-shot kind is kept up to date by the Record tab
            if get_kind(kind).trains_by_epochs:
                self.kind.addItem(get_kind(kind).label, kind)
        self.kind.setCurrentIndex(self.kind.findData(DEFAULT_KIND))
        self.epochs = QSpinBox(minimum=1, maximum=500, value=30)
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel")
        self.activate_button = QPushButton("Use this model")
        self.progress = QProgressBar(minimum=0, maximum=1000, textVisible=True)
        self.status = QLabel("Train a recogniser on the recorded samples.", wordWrap=True)
        self.summary = QTextBrowser()
        self.confusion = QLabel(alignment=Qt.AlignCenter)
        self._build_layout()
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.activate_button.clicked.connect(lambda: self.entry and self._on_activate(self.entry))
        self._set_running(False)
        self.activate_button.setEnabled(False)

    def _build_layout(self) -> None:
        layout = form_with_buttons(self, [("Recogniser", self.kind), ("Epochs (most)", self.epochs)],
                                   [self.start_button, self.cancel_button, self.activate_button])
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.summary, stretch=1)
        layout.addWidget(self.confusion, stretch=1)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.kind.setEnabled(not running)
        self.epochs.setEnabled(not running)

    @property
    def running(self) -> bool:
        return self._process is not None

    def command(self) -> list[str]:
        """The ``training.run`` arguments (after the Python executable)."""
        return ["-m", "training.run", "--model", self.kind.currentData(), "--epochs",
                str(self.epochs.value()), "--videos", str(self.videos_root), "--registry",
                str(self.registry_root), "--events", "-", "--no-progress", *self._extra_args]

    def start(self) -> None:
        if self.running:
            return
        if build_manifest(self.videos_root).empty:
            self.status.setText(f"No samples in {self.videos_root} yet: record some in the Record "
                                "tab (about 10 of each phrase), then train.")
            return
        self.entry, self.events, self._buffer, self._cancelled = None, [], b"", False
        self._epochs, self._last_epoch = None, ""
        self.summary.clear()
        self.confusion.clear()
        self.activate_button.setEnabled(False)
        self.progress.setValue(0)
        self.status.setText("Starting...")
        process = QProcess(self)
        process.setWorkingDirectory(str(ROOT))
        process.setProcessChannelMode(QProcess.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read_events)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        self._set_running(True)
        process.start(sys.executable, self.command())

    def cancel(self) -> None:
        """Stop the run: terminate, then kill if it has not ended within 5 s."""
        if self._process is None:
            return
        self._cancelled = True
        self.status.setText("Cancelling...")
        self._process.terminate()
        if not self._process.waitForFinished(5000):
            self._process.kill()

    def _read_events(self) -> None:
        self._buffer += bytes(self._process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue                   # the entry path printed at the end, or other text
            if isinstance(event, dict) and "event" in event:
                self._handle(event)

    def _handle(self, event: dict) -> None:
        self.events.append(event)
        if event["event"] == "epoch_start":
            self._epochs = event["epochs"]
        fraction = progress_fraction(event, self._epochs)
        if fraction is not None:
            self.progress.setValue(round(fraction * 1000))
        text = describe(event, self._last_epoch)
        if text:
            self.status.setText(text)
        if event["event"] == "epoch_end":
            self._last_epoch = epoch_result(event)
        if event["event"] == "done":
            self.entry = Path(event["entry"])

    def _on_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self.status.setText(f"Could not start training ({self._process.errorString()}).")
            self._done()

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_events()
        if self._cancelled:
            self.status.setText("Training cancelled; no model was added.")
            self.entry = None
        elif self.entry is None:
            errors = bytes(self._process.readAllStandardError()).decode("utf-8", "replace").strip()
            last = errors.splitlines()[-1] if errors else f"exit code {exit_code}"
            if not any(e["event"] == "error" for e in self.events):
                self.status.setText(f"Training failed: {last}")
        else:
            self._show_result(self.entry)
        self._done()

    def _done(self) -> None:
        if self._process is not None:
            self._process.deleteLater()
        self._process = None
        self._set_running(False)
        self.finished.emit(str(self.entry) if self.entry else "")

    def show_in_use(self, entry: Path) -> None:
        """Say that the finished ``entry`` is now the live recogniser."""
        if self.entry is not None and Path(entry) == self.entry:
            self.activate_button.setEnabled(False)
            self.status.setText(f"Finished: {self.entry.name}, now recognising with it.")

    def _show_result(self, entry: Path) -> None:
        summary = entry / "TRAINING_SUMMARY.md"
        if summary.is_file():
            self.summary.setMarkdown(summary.read_text(encoding="utf-8"))
        for figure in ("confusion_matrix.png", "learning_curves.png"):   # a sentence reader has no matrix
            picture = QPixmap(str(entry / figure))
            if not picture.isNull():
                self.confusion.setPixmap(picture.scaledToHeight(320, Qt.SmoothTransformation))
                break
        self.activate_button.setEnabled(True)
        self.status.setText(f"Finished: {entry.name}. Press \"Use this model\" to recognise with it.")
