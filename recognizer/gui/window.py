"""The bedside window: live view, plots, the phrase in large type, history, record and train.

:class:`MainWindow` owns the :class:`AppState`, the :class:`LiveWorker` and the
panels. Worker signals arrive here and are copied into the state or handed to
a view; nothing heavy runs on this thread. Loading a registry entry (which can
take a second for the video model) runs on a helper thread too.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from features.dataset import build_manifest
from features.text import patient_key
from recognizer.capture import SourceFactory
from recognizer.confirmations import HeardUtterance
from recognizer.gui.controls import RecogniserBar, registry_choice
from recognizer.gui.alarm import AlarmBanner
from recognizer.gui.phrase import HistoryPanel, HistoryTab, PhrasePanel
from recognizer.gui.record_panel import RecordPanel
from recognizer.gui.samples import Enroller
from recognizer.gui.speech import Speaker
from recognizer.gui.teaching import FEW_SHOT, TeachingMixin
from recognizer.gui.train_panel import TrainPanel
from recognizer.gui.views import PlotPanel, VideoView
from recognizer.gui.worker import LiveFrame, LiveRecognition, LiveWorker
from recognizer.live import PlotHistory, Recognition
from recognizer.patients import few_shot_name
from recognizer.predictor import Predictor, find_entry, is_sure, kind_in_use, names_nothing
from recognizer.reading import ReadMode
from recognizer.recording import phrase_list
from recognizer.settings import Settings, load_settings, save_settings
from recognizer.state import AppState, HistoryItem, HistoryLog
from training.kinds import get_kind
from training.registry import activate, active_problem, damaged_entries, read_card


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from: ``open`` makes the source; ``retry`` reopens it after a failure
    (cameras); ``describe`` names it for messages; ``missing_hint`` says what to do without one;
    ``ended_hint`` what to do when it ends (a file played once)."""

    open: SourceFactory
    retry: bool
    describe: str
    missing_hint: str = ""
    ended_hint: str = ""


SETTING_FIELDS = tuple(f.name for f in fields(Settings))     # AppState fields kept across restarts
LARGEST_SIZE = QSize(1600, 1000)


def scrolling(panel: QWidget) -> QScrollArea:
    """``panel`` in a frameless scroll area that widens it to its width (no sideways scroll)
    and never makes it shorter than it asks: what it shows never moves it about."""
    panel.setMinimumHeight(panel.sizeHint().height())
    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return area


class MainWindow(TeachingMixin, QMainWindow):
    """The app window. Call :meth:`start` once shown; closing it stops everything."""

    predictor_loaded = Signal(object, object, str, int)   # Predictor | None, entry, error, pick number

    def __init__(self, source: SourceSpec, registry_root: str | Path, videos_root: str | Path,
                 history_path: str | Path, train_args: tuple[str, ...] = (), speaker: Speaker | None = None,
                 settings_path: str | Path | None = None):
        super().__init__()
        self.setWindowTitle("Bedside lip reader")
        self.source = source
        self.registry_root = Path(registry_root)
        self.state = AppState()
        self.messages: list[str] = []
        self.settings_path = Path(settings_path or Path(history_path).with_name("settings.json"))
        self._load_settings()
        self.predictor: Predictor | None = None     # the one whose readings are shown
        self._shown: Recognition | None = None       # the tentative reading on screen
        self.history_log = HistoryLog(history_path, on_error=self.show_status)
        self.plot_history = PlotHistory()
        self._picks = 0
        self._source_error: str | None = None
        self.phrase_latencies_ms: deque[float] = deque(maxlen=10_000)
        self.enrol_latencies_ms: deque[float] = deque(maxlen=10_000)   # sample kept -> entry live
        # The last final readings and their utterances, unsaved, newest last: a confirmation
        # names the reading it was shown with, which may no longer be the newest.
        self._held: list[tuple[HistoryItem, HeardUtterance]] = []
        self.speaker = speaker or Speaker(self.show_status, self)
        self.state.update(speech_problem=getattr(self.speaker, "speech_problem", ""),
                          alarm_problem=getattr(self.speaker, "alarm_problem", ""))
        self.worker = LiveWorker(source.open, retry=source.retry, parent=self)
        self.video = VideoView()
        self.plots = PlotPanel(self.plot_history)
        self.phrase = PhrasePanel(self.state, self.choose, self.confirm_right, self.confirm_wrong,
                                  self.show_first_step)
        self.alarm = AlarmBanner(self.state, self._sound_alarm, self._alarm_acknowledged)
        self.history = HistoryPanel(self.state)
        self.history_tab = HistoryTab(self.history, self.undo_sample)
        self.videos_root = Path(videos_root)
        self.enroller = Enroller(registry_root, videos_root, parent=self)
        self.recorder = RecordPanel(videos_root, self.worker.start_recording,
                                    self.worker.cancel_recording, self.state)
        self.trainer = TrainPanel(videos_root, registry_root, self.use_entry, train_args)
        self.bar = RecogniserBar(self.state, registry_root, self._pick, self._entry_for,
                                 self._listed)
        self._build_layout()
        self._connect()

    def _build_layout(self) -> None:
        left = QSplitter(Qt.Vertical)
        left.addWidget(self.video)
        left.addWidget(self.plots)
        left.setSizes([520, 380])
        self.tabs = QTabWidget()
        self.tabs.addTab(self.history_tab, "History")
        # On a small screen the forms scroll rather than take the phrase's room.
        self.record_page, self.train_page = scrolling(self.recorder), scrolling(self.trainer)
        self.tabs.addTab(self.record_page, "Record")
        self.tabs.addTab(self.train_page, "Train")
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.phrase)
        right.addWidget(self.tabs)
        right.setStretchFactor(0, 3)             # the phrase keeps the most room
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        main = QSplitter(Qt.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 1)
        central = QWidget()
        # A click anywhere in the window takes the keyboard from the field being typed in,
        # which then takes its value (the threshold is taken when its typing is finished).
        central.setFocusPolicy(Qt.ClickFocus)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.bar)
        layout.addWidget(main, stretch=1)
        self.setCentralWidget(central)
        # The alarm lies over the top of the window, moving nothing under the pointer.
        self.alarm.setParent(central)
        for field in ("alarm", "alarm_problem"):       # the band takes what its words need
            self.state.subscribe(field, lambda _: self._place_alarm())
        self.state.subscribe("alarm", self._log_alarm)
        self.statusBar().setSizeGripEnabled(False)
        self.fit_screen()

    def fit_screen(self) -> None:
        """Open at most :data:`LARGEST_SIZE`, within the screen the window opens on; its
        splitters share the room so that the phrase keeps the most of it."""
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        size = LARGEST_SIZE if screen is None else LARGEST_SIZE.boundedTo(screen.size())
        self.resize(size)
        if screen is not None:
            self.move(screen.topLeft() + QPoint((screen.width() - size.width()) // 2,
                                                 (screen.height() - size.height()) // 2))

    def _place_alarm(self) -> None:
        width = self.centralWidget().width()
        self.alarm.setGeometry(0, 0, width, self.alarm.height_for(width))
        self.alarm.raise_()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_alarm()

    def _connect(self) -> None:
        self.worker.frame_ready.connect(self.on_frame)
        self.worker.recognised.connect(self.on_recognised)
        self.worker.take_ready.connect(self.recorder.show_take)
        self.worker.take_ready.connect(   # its replay and Keep beside it, scrolled into view
            lambda _: self.record_page.ensureWidgetVisible(self.recorder.replay, 0, 2))
        self.worker.status.connect(self.on_source_status)
        self.worker.source_finished.connect(self._on_source_finished)
        self.predictor_loaded.connect(self._on_predictor_loaded)
        self.trainer.finished.connect(self._on_trained)
        self.recorder.kept.connect(self._on_sample_kept)
        self.recorder.delete_requested.connect(self.enroller.delete_patient)
        self.enroller.updated.connect(self._on_enrolled)
        self.enroller.confirmed.connect(self._on_confirmed)
        self.enroller.undone.connect(self._on_undone)
        self.enroller.deleted.connect(self._on_patient_deleted)
        self.enroller.message.connect(self.show_status)
        self.state.subscribe("read_mode", lambda _: self._reread())
        self.state.subscribe("patient", lambda _: self._patient_changed())
        for name in SETTING_FIELDS:
            self.state.subscribe(name, lambda _: self._save_settings())
        self._plot_timer = QTimer(self, interval=66)
        self._plot_timer.timeout.connect(self.plots.refresh)

    def start(self) -> None:
        """Load the recogniser and start the live worker."""
        self._use_a_kind_with_a_model()
        self._read_with_general_until_two_phrases()
        self.bar.refresh_models()
        if self.state.patient:
            self.enroller.set_patient(self.state.patient)
            self._seed_confirmed()
        self.worker.start()
        self._plot_timer.start()

    def _entry_for(self, kind: str) -> str | None:
        """The entry ``kind`` starts with: the registry's choice, but for the few-shot kind
        only ever the current patient's (another patient's would read with their lips)."""
        if kind == FEW_SHOT:
            return few_shot_name(self.state.patient) if self.state.patient else None
        return registry_choice(self.registry_root, kind)

    def _listed(self, entry) -> bool:
        """The model list offers every entry but other patients' few-shot ones."""
        return (entry.card.kind != FEW_SHOT
                or patient_key(entry.card.data.get("patient")) == patient_key(self.state.patient))

    def _use_a_kind_with_a_model(self) -> None:
        """A kind the registry has no model of (the default one on a fresh clone) gives way
        to one it has (the sentence reader that ships with the app)."""
        kind = self.state.kind
        if kind == FEW_SHOT or find_entry(self.registry_root, kind) is not None:
            return
        other = kind_in_use(self.registry_root, None)
        if find_entry(self.registry_root, other) is None:
            return
        self.state.kind = other
        self.bar.show_kind(other)
        self.show_status(f"No {get_kind(kind).label} model yet: using the "
                         f"{get_kind(other).label}")

    def _load_settings(self) -> None:
        settings, problems = load_settings(self.settings_path)
        self.state.update(**asdict(settings))
        for problem in problems:
            self.show_status(problem)

    def _save_settings(self) -> None:
        settings = Settings(**{name: getattr(self.state, name) for name in SETTING_FIELDS})
        try:
            save_settings(self.settings_path, settings)
        except OSError as error:
            self.show_status(f"{self.settings_path}: could not save the settings ({error}); "
                             "they last until the window closes")

    def show_status(self, text: str) -> None:
        self.messages.append(text)
        self.statusBar().showMessage(text)

    def on_frame(self, frame: LiveFrame) -> None:
        self._source_error = None
        self.video.show_message("")
        self.video.show_frame(frame)
        self.plot_history.append(frame.result)
        self.state.update(segmenter_state=frame.result.state, fps=self.video.processed_fps(),
                          dropped_frames=frame.dropped)

    def on_recognised(self, live: LiveRecognition) -> None:
        """Show a tentative reading at once; log and speak the final one (shown already when
        it repeats the tentative reading)."""
        if live.predictor is not self.predictor:
            return          # read by the model (or mode) just replaced: never shown under the new one
        recognition = live.recognition
        prediction = recognition.prediction
        sure = is_sure(prediction, self.state.confidence_threshold)
        nothing = names_nothing(prediction)
        shown, self._shown = self._shown, recognition if not recognition.final else None
        if not recognition.final or nothing:
            # A tentative reading, or one that names none of the phrases: shown, not logged
            # or spoken. Only a final one can be confirmed (a pick of the top 3 keeps it).
            self.state.update(phrase=prediction.phrase, confidence=prediction.confidence,
                              top3=prediction.top3, sure=sure and not nothing, chosen=False,
                              off_list=nothing, reading=None)
            self._time_phrase(live.arrived)
            if recognition.final and live.heard is not None:
                # Not logged, but held: a pick of the top 3 (or Wrong...) keeps it as a sample.
                self.state.reading = self._hold(
                    HistoryItem(datetime.now(), prediction.phrase, prediction.confidence,
                                prediction.top3, False, patient=self.state.patient), live.heard)
            return
        repeated = shown is not None and shown.utterance == recognition.utterance
        item = self._announce(prediction.phrase, prediction.confidence, prediction.top3, sure,
                              None if repeated else live.arrived)
        self.state.reading = self._hold(item, live.heard) if live.heard is not None else None

    def _announce(self, phrase: str, confidence: float, top3, sure: bool,
                  arrived: float | None = None, chosen: bool = False) -> HistoryItem:
        """Show the phrase at once, log it, and speak it when sure; ``arrived`` (monotonic s)
        of the frame that ended the utterance times the latency."""
        item = self.state.record(phrase, confidence, top3, sure, chosen=chosen)
        self._time_phrase(arrived)
        self.history_log.append(item)
        if sure and self.state.speak_aloud and not self.state.speech_problem:
            self.speaker.say(phrase)
        return item

    def _sound_alarm(self) -> None:
        self.speaker.alert()
        self.state.alarm_problem = getattr(self.speaker, "alarm_problem", "")

    def _alarm_acknowledged(self, alarm: HistoryItem) -> None:
        self.show_status(f"Alarm of {alarm.time:%H:%M:%S} acknowledged at "
                         f"{datetime.now():%H:%M:%S}")

    def _log_alarm(self, change) -> None:
        """The history file keeps when an alarm was raised and when it was acknowledged."""
        if change.value is not None:
            self.history_log.append(change.value, how="alarm raised")
        elif change.old is not None:
            self.history_log.append(replace(change.old, time=datetime.now()),
                                    how="alarm acknowledged")

    def show_first_step(self) -> None:
        """The lead was clicked: the Record tab, at the field to fill first."""
        self.tabs.setCurrentWidget(self.record_page)
        (self.recorder.patient if not self.state.patient else self.recorder.phrase).setFocus()

    def _time_phrase(self, arrived: float | None) -> None:
        """Paint the phrase now; ``arrived`` (monotonic s) of the frame that brought it
        times the latency."""
        self.phrase.repaint()
        if arrived is not None:
            self.phrase_latencies_ms.append((time.monotonic() - arrived) * 1000)

    def on_source_status(self, level: str, text: str) -> None:
        self.show_status(text)
        if level == "error":
            self._source_error = text
            self.video.show_message(f"{text}\n\n{self.source.missing_hint}".strip())

    def _on_source_finished(self) -> None:
        if self._source_error is None:      # else the error stays on screen: it is the reason
            self.video.show_message(f"{self.source.describe} has ended. {self.source.ended_hint}".strip())

    def _pick(self, kind: str, entry: Path | None) -> None:
        """Load ``entry`` on a helper thread; the live view goes on meanwhile.

        Only the latest pick takes effect: a slow load finishing after a newer
        pick (a quick click through the model list) is dropped.
        """
        self._picks += 1
        pick = self._picks
        if entry is None:
            self._use_predictor(None)
            self.state.use_entry(kind, None, (), None)
            problem = active_problem(self.registry_root, kind) if kind != FEW_SHOT else None
            self.state.model_problem = problem or ""
            if problem:
                self.show_status(f"{problem}. Or choose another model under Model.")
                return
            damaged = "".join(f" Cannot use the damaged model {d.name}: {d.reason}."
                              for d in damaged_entries(self.registry_root))
            if kind == FEW_SHOT:
                self.show_status((f"No samples of {self.state.patient} yet: record one of each "
                                  "phrase in the Record tab and the few-shot recogniser uses "
                                  "them at once." if self.state.patient else
                                  "No patient chosen: type the patient's name in the Record "
                                  "tab, then record one sample of each phrase.") + damaged)
                return
            self.show_status(f"No trained {kind} model yet: record samples in the Record tab, "
                             f"then train one in the Train tab.{damaged}")
            return
        self.show_status(f"Loading {entry.name}...")

        mode = self.state.read_mode

        def load():
            try:
                predictor = Predictor.from_entry(entry, phrases=self._phrases(), mode=mode)
                self.predictor_loaded.emit(predictor, entry, "", pick)
            except (ValueError, OSError, RuntimeError) as error:
                self.predictor_loaded.emit(None, entry, str(error), pick)
        threading.Thread(target=load, name="load-model", daemon=True).start()

    def _on_predictor_loaded(self, predictor: Predictor | None, entry: Path, error: str, pick: int,
                             keep_phrase: bool = False) -> None:
        """Read with ``predictor`` loaded from ``entry`` (None: say ``error``), if it is the
        latest ``pick``; ``keep_phrase``: the same recogniser updated, the phrase stays."""
        if pick != self._picks:
            return
        if predictor is None:
            self.show_status(f"Cannot use the model {entry.name}: {error}. "
                             + (f"Still recognising with {self.state.entry}."
                                if self.state.entry else "Choose another model."))
            if self.state.entry is None:
                self.state.model_problem = f"The model {entry.name} cannot be used: {error}"
            self.bar.show_kind(self.state.kind)
            self.bar.refresh_models(self.state.entry, load=False)    # the box shows what reads
            return
        card = predictor.entry.card
        self.state.model_problem = ""
        self._use_predictor(predictor)
        self.state.use_entry(card.kind, entry.name, predictor.answers, card.accuracy,
                             card.wer, predictor.reads_sentences,
                             str(card.metrics.get("evaluation", "test")), keep_phrase)
        self.trainer.show_in_use(entry)
        try:
            activate(self.registry_root, entry.name)
        except (ValueError, OSError) as failure:
            self.show_status(f"Using {entry.name}, but could not remember it as active: {failure}")
            return
        self.show_status(f"Recognising with {entry.name}{self._unspellable(predictor)}")

    def _use_predictor(self, predictor: Predictor | None) -> None:
        self.predictor = predictor
        self.worker.set_predictor(predictor)

    def _phrases(self) -> tuple[str, ...]:
        """The phrase list a sentence reader chooses from: the defaults and every recorded label."""
        return phrase_list(build_manifest(self.videos_root)["label"])

    @staticmethod
    def _unspellable(predictor: Predictor) -> str:
        if not predictor.unspellable:
            return ""
        return (f"; it cannot spell {', '.join(map(repr, predictor.unspellable))} (characters "
                f"it never saw in training), so they are left out of its phrase list")

    def _reread(self) -> None:
        """The read mode changed: the same loaded sentence reader answers in the new mode."""
        predictor = self.predictor
        if predictor is None or not predictor.reads_sentences or predictor.mode == self.state.read_mode:
            return
        try:
            predictor = predictor.with_mode(self.state.read_mode, self._phrases())
        except ValueError as error:
            self.show_status(f"Cannot read in {self.state.read_mode} mode: {error}")
            return
        self._use_predictor(predictor)
        self.state.update(classes=predictor.answers, phrase=None, confidence=None, top3=(), sure=False)
        what = "the words it reads" if predictor.mode == ReadMode.TRANSCRIPT else "a phrase of the list"
        self.show_status(f"{predictor.name} now answers {what}{self._unspellable(predictor)}")

    def _on_trained(self, entry: str) -> None:
        """List a new entry in the model picker and weigh it against chance and the model in
        use (the Train tab says how it did); with no model in use yet, use it at once if it
        is better than chance (else the Train tab offers it, or warns)."""
        if not entry:
            return
        verdict = self.trainer.weigh(entry, self.state)
        if self.state.entry is None and verdict is not None and verdict.usable:
            self.use_entry(Path(entry))
            self.show_status(f"Training finished: recognising with {Path(entry).name}")
            return
        self.bar.refresh_models(self.state.entry, load=False)
        if verdict is not None and not verdict.usable:
            self.show_status(f"Training finished: {Path(entry).name}: {verdict.text}")
            return
        self.show_status(f"Training finished: {Path(entry).name} is ready; press \"Use this model\" "
                         "in the Train tab to recognise with it")

    def use_entry(self, entry: Path) -> None:
        """Make a newly trained ``entry`` the live recogniser (switching kind if needed)."""
        kind = read_card(entry).kind
        self.bar.show_kind(kind)
        self.bar.refresh_models(entry.name)

    def confirm_close_during_training(self) -> bool:
        """Ask whether to stop the running training and close (tests replace this)."""
        answer = QMessageBox.question(
            self, "Training is running",
            "A model is being trained. Closing the window stops the training and the model is "
            "not saved. Close anyway?", QMessageBox.Close | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Close

    def closeEvent(self, event) -> None:
        if self.trainer.running and not self.confirm_close_during_training():
            event.ignore()
            return
        self._plot_timer.stop()
        if self.trainer.running:
            self.trainer.cancel()
        self.worker.stop()
        self.enroller.shutdown()         # a sample being written is finished, not cut off
        super().closeEvent(event)
