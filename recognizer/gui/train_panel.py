"""The train panel: ``python -m training.run`` in its own process, its events as a progress bar.

The run is a ``QProcess`` writing JSON-line events to stdout (``--events -``),
the same events the terminal's progress bar renders; the bar counts the whole
run, each cross-validation fold and the final fit included. Cancel terminates
the process; the registry only ever lists complete entries (they are written
under a temporary name and renamed), so a cancelled run leaves none behind.
When the run ends the panel says in one line how the entry did against chance
and against the model in use (:mod:`training.verdict`): an entry no better than
chance cannot be used, one worse than the model in use only "anyway". Its report
(summary and figures) opens in a dialog of its own, so the panel never grows.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QProcess, QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from features.dataset import build_manifest
from features.progress import part_text, validation_text
from recognizer.gui.layout import form_with_buttons
from training.config import ROOT, kind_defaults
from training.kinds import DEFAULT_KIND, KINDS, get_kind
from training.registry import read_card
from training.verdict import Measured, Verdict, judge

FIGURES = (("confusion_matrix.png", "Confusion matrix"), ("learning_curves.png", "Learning curves"))
# An absolute path in a message, shown by its last part only.
_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/:;,'\"()]+/)+([^\s/:;,'\"()]+)")


def names_only(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (file or folder name)."""
    return _PATH.sub(lambda match: match.group(1), text)


def progress_fraction(event: dict, epochs: int | None) -> float | None:
    """Where a training run of at most ``epochs`` epochs a fit is, in [0, 1], from one event;
    a run of several fits (``part`` of ``parts``: cross-validation's folds, then the fit
    on every clip) counts them all.

    None when the event does not say (early stopping may end a run before 1).
    """
    if event.get("event") == "done":
        return 1.0
    if event.get("event") == "batch" and epochs:
        within = (event["epoch"] - 1 + event["batch"] / event["batches"]) / epochs
    elif event.get("event") == "epoch_end" and epochs:
        within = event["epoch"] / epochs
    else:
        return None
    parts = max(1, event.get("parts", 1))
    return (min(event.get("part", 1), parts) - 1 + within) / parts


def epoch_result(event: dict) -> str:
    """What an ``epoch_end`` event measured: validation accuracy (or WER) and the loss."""
    return f"{validation_text(event, percent=True)}, loss {event['train_loss']:.3f}"


def _in_part(event: dict, epoch: str) -> str:
    where = part_text(event)
    return where + epoch if where else epoch.capitalize()


def describe(event: dict, last_epoch: str = "") -> str | None:
    """One line of text for the panel from an event (None: nothing to say); ``last_epoch``:
    the :func:`epoch_result` of the epoch before, kept in view while the next one runs.
    Paths are named by their last part only."""
    name = event.get("event")
    if name == "extract":
        return f"Reading lip features: {event['done']}/{event['total']} clips"
    if name == "epoch_start":
        before = f" · epoch {event['epoch'] - 1}: {last_epoch}" if last_epoch else ""
        return _in_part(event, f"epoch {event['epoch']}/{event['epochs']}") + before
    if name == "epoch_end":
        return _in_part(event, f"epoch {event['epoch']}") + f": {epoch_result(event)}"
    if name in ("message", "done", "error", "resumed"):
        return names_only(event.get("text") or f"{name}: {event}")
    return None


class FittedPicture(QLabel):
    """A figure scaled to fit its box, keeping its proportions; it never asks for room."""

    def __init__(self, picture: QPixmap, parent=None):
        super().__init__(parent, alignment=Qt.AlignCenter)
        self._picture = picture
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, 0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.setPixmap(self._picture.scaled(self.size(), Qt.KeepAspectRatio, Qt.SmoothTransformation))


class ReportDialog(QDialog):
    """A registry entry's report in a resizable window: its summary and figures, each a tab."""

    def __init__(self, entry: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Training report: {entry.name}")
        self.setSizeGripEnabled(True)
        self.tabs = QTabWidget()
        self.summary = QTextBrowser()
        summary = entry / "TRAINING_SUMMARY.md"
        self.summary.setMarkdown(summary.read_text(encoding="utf-8") if summary.is_file()
                                 else "This entry has no summary.")
        self.tabs.addTab(self.summary, "Summary")
        for file, title in FIGURES:
            picture = QPixmap(str(entry / file))
            if not picture.isNull():
                self.tabs.addTab(FittedPicture(picture), title)
        QVBoxLayout(self).addWidget(self.tabs)
        screen = self.screen().availableGeometry() if self.screen() else None
        width, height = 900, 700
        if screen is not None:
            width, height = min(width, screen.width() * 9 // 10), min(height, screen.height() * 9 // 10)
        self.resize(width, height)


class TrainPanel(QWidget):
    """Starts and cancels a training run on ``videos_root`` and shows its progress and result.

    ``on_activate(entry_path)`` makes a finished entry the live recogniser;
    ``extra_args`` are appended to the ``training.run`` command line (tests use
    tiny settings). :attr:`finished` carries the entry path, or "" when the
    run failed or was cancelled; :attr:`verdict` says how the entry did
    (weighed against chance, and by :meth:`weigh` against the model in use).
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
        self.verdict: Verdict | None = None
        self.report: ReportDialog | None = None
        self.events: list[dict] = []
        self.kind = QComboBox()
        for kind in KINDS:          # the few-shot kind is kept up to date by the Record tab
            if get_kind(kind).trains_by_epochs:
                self.kind.addItem(get_kind(kind).label, kind)
        self.kind.setCurrentIndex(self.kind.findData(DEFAULT_KIND))
        # The kind's own measured number of epochs (training.run's default for it).
        self.epochs = QSpinBox(minimum=1, maximum=500,
                               value=kind_defaults(DEFAULT_KIND).optim.epochs)
        self.kind.currentIndexChanged.connect(
            lambda _: self.epochs.setValue(kind_defaults(self.kind.currentData()).optim.epochs))
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel")
        self.activate_button = QPushButton("Use this model")
        self.report_button = QPushButton("Show report")
        self.progress = QProgressBar(minimum=0, maximum=1000, textVisible=True)
        self.status = QLabel("Train a recogniser on the recorded samples.", wordWrap=True)
        # Two lines whatever the text says (the whole in its tooltip): a long message must not
        # grow the window, nor make it wider.
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.status.setFixedHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        self.status.setMinimumWidth(1)
        self._build_layout()
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.activate_button.clicked.connect(lambda: self.entry and self._on_activate(self.entry))
        self.report_button.clicked.connect(self.show_report)
        self._set_running(False)
        self._offer(None)

    def _build_layout(self) -> None:
        layout = form_with_buttons(self, [("Recogniser", self.kind), ("Epochs (most)", self.epochs)],
                                   [self.start_button, self.cancel_button, self.activate_button,
                                    self.report_button], per_row=2)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.kind.setEnabled(not running)
        self.epochs.setEnabled(not running)

    def _say(self, text: str) -> None:
        self.status.setText(names_only(text))
        self.status.setToolTip(self.status.text())

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
            self._say(f"No samples in {self.videos_root.name} yet: record some in the Record tab "
                      "(about 10 of each phrase), then train.")
            return
        self.entry, self.verdict, self.events, self._buffer = None, None, [], b""
        self._cancelled, self._epochs, self._last_epoch = False, None, ""
        self._offer(None)
        self.progress.setValue(0)
        self._say("Starting...")
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
        self._say("Cancelling...")
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
            self._say(text)
        if event["event"] == "epoch_end":
            self._last_epoch = epoch_result(event)
        if event["event"] == "done":
            self.entry = Path(event["entry"])

    def _on_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._say(f"Could not start training ({self._process.errorString()}).")
            self._done()

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_events()
        if self._cancelled:
            self._say("Training cancelled; no model was added.")
            self.progress.setValue(0)
            self.entry = None
        elif self.entry is None:
            errors = bytes(self._process.readAllStandardError()).decode("utf-8", "replace").strip()
            last = errors.splitlines()[-1] if errors else f"exit code {exit_code}"
            if not any(e["event"] == "error" for e in self.events):
                self._say(f"Training failed: {last}")
        else:
            self.weigh(self.entry, None)
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
            though = "" if self.verdict is None or self.verdict.usable else f" ({self.verdict.text})"
            self._say(f"Now recognising with {self.entry.name}{though}.")

    def weigh(self, entry: str | Path, in_use) -> Verdict | None:
        """Weigh the finished ``entry`` against chance and the model ``in_use`` (the window's
        state: its ``entry``, ``accuracy``, ``wer`` and ``classes``; None or no entry: none
        in use), say how it did and offer it accordingly; None when its card is unreadable."""
        self.entry = Path(entry)
        current = None
        if in_use is not None and getattr(in_use, "entry", None):
            current = Measured(in_use.entry, in_use.accuracy, in_use.wer, tuple(in_use.classes))
        try:
            card = read_card(self.entry)
        except (OSError, ValueError) as error:
            self._say(f"Finished, but its card cannot be read: {error}")
            return None
        self.verdict = judge(Measured.of_card(card), current)
        self._offer(self.verdict)
        if self.verdict.usable:
            self._say(f"{self.entry.name}: {self.verdict.text}. Press \"Use this model\" to "
                      "recognise with it.")
        else:
            self._say(f"{self.entry.name}: {self.verdict.text}.")
        return self.verdict

    def _offer(self, verdict: Verdict | None) -> None:
        """The use and report buttons for ``verdict`` (None: nothing to offer): a usable entry
        is offered plainly, one worse than the model in use only "anyway", one no better
        than chance not at all."""
        self.report_button.setEnabled(verdict is not None)
        self.activate_button.setEnabled(verdict is not None and verdict.better_than_chance is not False)
        self.activate_button.setText("Use this model" if verdict is None or verdict.usable
                                     else "Use it anyway")
        self.activate_button.setToolTip("" if verdict is None else verdict.text)

    def show_report(self) -> None:
        """Open the finished entry's report (summary and figures) in its own window."""
        if self.entry is None:
            return
        if self.report is not None:
            self.report.close()
        self.report = ReportDialog(self.entry, self)
        self.report.show()
