"""The app's state as a Qt-free model that widgets subscribe to (napari's ``Dims`` pattern).

:class:`AppState` holds what the window shows; setting a field to a new value
tells its subscribers, setting it to the same value does not. A recognition is
an event, not only a change: :meth:`AppState.record` also tells its own
subscribers every time, even when the phrase repeats the last one (a second
"help" must alert again). Widgets take the state and subscribe; they never
hold the truth themselves, so the state is tested without a window. Mutate it
from one thread (the GUI thread): the worker emits results and a slot copies
them in.

:class:`HistoryLog` appends each recognised phrase to a CSV file and never
lets a full disk or a read-only folder stop the app.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from features.files import PRIVATE_FILE, private_dirs, write_text_atomic
from features.text import patient_key
from recognizer.live import LiveState
from recognizer.reading import ReadMode

log = logging.getLogger(__name__)
HISTORY_LIMIT = 100
ALERT_PHRASES = frozenset({"help"})      # a sure reading (or a pick) of these raises the alarm


@dataclass(frozen=True)
class Change:
    """One field's change, as given to subscribers."""

    field: str
    value: Any
    old: Any


@dataclass(frozen=True)
class HistoryItem:
    """One recognised phrase: ``time`` is local wall time, ``confidence`` in [0, 1];
    ``chosen``: picked by hand from the top 3 rather than recognised sure; ``saved``: the
    clip its confirmation saved as a sample (None: nothing saved); ``patient``: who said it
    ("" for no patient chosen)."""

    time: datetime
    phrase: str
    confidence: float
    top3: tuple[tuple[str, float], ...] = ()
    sure: bool = True
    chosen: bool = False
    saved: str | None = None
    patient: str = ""


class StateEvents:
    """Subscriptions of an :class:`AppState`: to every field, to one, or to each recognition."""

    def __init__(self, names: Sequence[str]):
        self._names = frozenset(names)
        self._callbacks: list[tuple[str | None, Callable[[Change], None]]] = []
        self._recorded: list[Callable[[HistoryItem], None]] = []

    def connect(self, callback: Callable[[Change], None], field: str | None = None) -> None:
        """Call ``callback(change)`` after each change of ``field`` (default: any field)."""
        if field is not None and field not in self._names:
            raise ValueError(f"AppState has no field {field!r}; fields: {sorted(self._names)}")
        self._callbacks.append((field, callback))

    def connect_recorded(self, callback: Callable[[HistoryItem], None]) -> None:
        """Call ``callback(item)`` after each recognition is recorded, a repeated one too."""
        self._recorded.append(callback)

    def disconnect(self, callback: Callable) -> None:
        """Stop calling ``callback`` (for every field or recognition it was connected to)."""
        self._callbacks = [(f, c) for f, c in self._callbacks if c != callback]
        self._recorded = [c for c in self._recorded if c != callback]

    def emit(self, change: Change) -> None:
        for name, callback in list(self._callbacks):
            if name is None or name == change.field:
                callback(change)

    def emit_recorded(self, item: HistoryItem) -> None:
        for callback in list(self._recorded):
            callback(item)


def same_item(a: HistoryItem, b: HistoryItem) -> bool:
    """Whether ``a`` and ``b`` are one history entry, before and after it was marked saved."""
    return a is b or (a.time == b.time and a.phrase == b.phrase and a.patient == b.patient)


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and falls back to identity."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


@dataclass(eq=False)
class AppState:
    """What the window shows. Assign fields directly; subscribers hear of real changes.

    ``kind``: recogniser kind in use; ``entry``/``classes``/``accuracy``/``wer``: the
    active registry entry (test accuracy, or a sentence reader's test word error
    rate, in [0, 1] or None; ``measured_by``: how the accuracy was measured, ``test``,
    ``leave-one-out`` or ``k-fold cross-validation``); ``reads_sentences``: the entry is a sentence
    reader, which answers in ``read_mode`` (a ``ReadMode`` value); ``phrase``,
    ``confidence``, ``top3``, ``sure``: the last recognition (``chosen``: a phrase picked
    by hand, not read); ``segmenter_state``:
    the :class:`~recognizer.live.LiveState` shown; ``fps``: frames per second
    processed; ``dropped_frames``: frames skipped since start; ``history``:
    newest last, at most ``HISTORY_LIMIT``; ``patient``: whose samples,
    confirmations and few-shot entry these are ("" for nobody yet);
    ``per_phrase``: the patient's samples and expected accuracy per phrase
    (``{label: {"samples", "expected_accuracy"}}``); ``reading``: the final reading on
    screen whose utterance is held in memory, not yet saved (None while a tentative
    reading or nothing is shown): what Right, Wrong... and the top 3 confirm;
    ``off_list``: the last reading is none of the phrases (a sentence reader found
    something else likelier than its best phrase); ``alarm``: the alert phrase (a sure
    "help") not yet acknowledged; ``speech_problem`` / ``alarm_problem``: why phrases
    cannot be spoken / the alarm cannot sound ("" when they can); ``model_problem``: why
    the model chosen could not be used, while none reads; ``patients``: every patient
    typed so far; ``confidence_threshold``, ``speak_aloud``, ``read_mode``, ``patient``
    and ``patients``: user settings.
    """

    kind: str = "landmark_cnn"
    entry: str | None = None
    classes: tuple[str, ...] = ()
    accuracy: float | None = None
    wer: float | None = None
    measured_by: str = "test"
    reads_sentences: bool = False
    read_mode: str = ReadMode.PHRASES.value
    phrase: str | None = None
    confidence: float | None = None
    top3: tuple[tuple[str, float], ...] = ()
    sure: bool = False
    chosen: bool = False
    segmenter_state: LiveState = LiveState.RESTING
    fps: float = 0.0
    dropped_frames: int = 0
    history: tuple[HistoryItem, ...] = ()
    confidence_threshold: float = 0.5
    speak_aloud: bool = True
    patient: str = ""
    patients: tuple[str, ...] = ()
    per_phrase: dict = field(default_factory=dict)
    reading: HistoryItem | None = None
    off_list: bool = False
    alarm: HistoryItem | None = None
    model_problem: str = ""
    speech_problem: str = ""
    alarm_problem: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", StateEvents([f.name for f in fields(self)]))

    def __setattr__(self, name: str, value: Any) -> None:
        events = self.__dict__.get("events")
        if events is None:
            object.__setattr__(self, name, value)
            return
        if name not in self.__dataclass_fields__:
            raise AttributeError(f"AppState has no field {name!r}")
        old = getattr(self, name)
        if same_value(old, value):
            return
        object.__setattr__(self, name, value)
        events.emit(Change(name, value, old))

    @property
    def confirmable(self) -> bool:
        """Whether the reading on screen can be confirmed (its utterance is held)."""
        return self.reading is not None

    def subscribe(self, field: str, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` whenever ``field`` changes."""
        self.events.connect(callback, field)

    def subscribe_recorded(self, callback: Callable[[HistoryItem], None]) -> None:
        """Call ``callback(item)`` after every :meth:`record`, even one that changes no field."""
        self.events.connect_recorded(callback)

    def update(self, **values: Any) -> None:
        """Set several fields; each that changes notifies once."""
        for name, value in values.items():
            setattr(self, name, value)

    def use_entry(self, kind: str, name: str | None, classes: Sequence[str],
                  accuracy: float | None, wer: float | None = None,
                  reads_sentences: bool = False, measured_by: str = "test",
                  keep_phrase: bool = False) -> None:
        """Show a newly active recogniser, and forget the last phrase, which the old one read
        (``keep_phrase``: the same recogniser, updated by what was just confirmed, so the
        phrase on screen and its held reading stay)."""
        self.update(kind=kind, entry=name, classes=tuple(classes), accuracy=accuracy, wer=wer,
                    reads_sentences=reads_sentences, measured_by=measured_by)
        if not keep_phrase:
            self.update(phrase=None, confidence=None, top3=(), sure=False, chosen=False,
                        reading=None, off_list=False)

    def record(self, phrase: str, confidence: float, top3: Sequence[tuple[str, float]],
               sure: bool, when: datetime | None = None, chosen: bool = False) -> HistoryItem:
        """Show a recognition (or a phrase ``chosen`` from the top 3) and add it to the
        history; returns the history item.

        Field subscribers hear of the fields that changed; recognition
        subscribers then hear of ``item`` whatever changed. A sure alert phrase
        raises :attr:`alarm`, which stays until :meth:`acknowledge_alarm`.
        """
        item = HistoryItem(when or datetime.now(), phrase, float(confidence),
                           tuple((p, float(c)) for p, c in top3), sure, chosen, patient=self.patient)
        self.update(phrase=phrase, confidence=item.confidence, top3=item.top3, sure=sure,
                    chosen=chosen, off_list=False,
                    history=(self.history + (item,))[-HISTORY_LIMIT:])
        if sure:
            self.raise_alarm(item)
        self.events.emit_recorded(item)
        return item

    def raise_alarm(self, item: HistoryItem) -> None:
        """Raise the alarm for ``item`` when it is an alert phrase; an alarm not yet
        acknowledged keeps the time it was first asked."""
        if item.phrase in ALERT_PHRASES and self.alarm is None:
            self.alarm = item

    def acknowledge_alarm(self) -> HistoryItem | None:
        """Someone has seen the alarm: it stops; the item it was raised for."""
        alarm, self.alarm = self.alarm, None
        return alarm

    def seed_history(self, items: Sequence[HistoryItem]) -> None:
        """Put ``items`` (say, samples confirmed in earlier sessions) before the history, in
        time order, without logging or showing them as the last phrase. A sample listed
        already (kept this session: its row has the reading's time) is not listed twice."""
        known = ({i.saved for i in self.history if i.saved}
                 | {(i.time, i.saved) for i in self.history})
        fresh = [i for i in items if i.saved not in known and (i.time, i.saved) not in known]
        merged = sorted(self.history + tuple(fresh), key=lambda i: i.time)
        self.history = tuple(merged[-HISTORY_LIMIT:])

    def mark_saved(self, item: HistoryItem, path: str | None) -> HistoryItem:
        """Note on ``item`` of the history that its clip was saved as ``path`` (None: undone)."""
        marked = replace(item, saved=path)
        self.history = tuple(marked if same_item(old, item) else old for old in self.history)
        return marked

    def forget_patient(self, patient: str) -> None:
        """Drop from the history every phrase ``patient`` said, and them from the patients
        (their data was deleted)."""
        self.history = tuple(i for i in self.history if patient_key(i.patient) != patient_key(patient))
        self.patients = tuple(p for p in self.patients if patient_key(p) != patient_key(patient))

    def choose_patient(self, patient: str) -> None:
        """Make ``patient`` current and known (listed from now on, recorded or not)."""
        patient = " ".join(patient.split())
        if patient and patient_key(patient) not in {patient_key(p) for p in self.patients}:
            self.patients = tuple(sorted(self.patients + (patient,), key=str.casefold))
        self.patient = patient


HISTORY_HEADER = ("time", "phrase", "confidence", "top3", "how", "patient")


def format_top3(top3: Sequence[tuple[str, float]]) -> str:
    """``"bin:0.810;lay:0.100"``: phrase:probability pairs, most likely first."""
    return ";".join(f"{phrase}:{p:.3f}" for phrase, p in top3)


def how_recognised(item: HistoryItem) -> str:
    """The ``how`` column: ``recognised`` (sure), ``not sure``, or ``chosen`` from the top 3."""
    return "chosen" if item.chosen else "recognised" if item.sure else "not sure"


class HistoryLog:
    """Appends recognised phrases to a CSV file (``time,phrase,confidence,top3,how,patient``).

    The file and its folder are created with a header when missing; a file
    with another header (written by an older version) is kept beside it as
    ``<name>.<n>.csv`` and a new one started. Each row is written and flushed
    at once, so a crash loses nothing. A failing write is logged, kept in
    :attr:`error` and passed to ``on_error``; it never raises.
    :meth:`forget_patient` rewrites the file without one patient's rows.
    """

    def __init__(self, path: str | os.PathLike, on_error: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.on_error = on_error
        self.error: str | None = None

    def append(self, item: HistoryItem, how: str | None = None) -> bool:
        """Write one row (``how``: what happened, when not how it was read: ``confirmed``,
        ``alarm raised``, ``alarm acknowledged``); True when it reached the file."""
        row = (item.time.isoformat(timespec="seconds"), item.phrase, f"{item.confidence:.4f}",
               format_top3(item.top3), how or how_recognised(item), item.patient)
        try:
            private_dirs(self.path.parent)
            self._set_aside_other_header()
            fresh = not self.path.is_file() or self.path.stat().st_size == 0
            # What a patient said is health data: the file is the user's alone.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
            with open(descriptor, "a", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                if fresh:
                    writer.writerow(HISTORY_HEADER)
                writer.writerow(row)
                handle.flush()
        except OSError as failure:
            self._report(f"{self.path}: could not save the phrase history ({failure}); "
                         "recognition goes on without it -- choose a writable file")
            return False
        self.error = None
        return True

    def forget_patient(self, patient: str) -> int:
        """Rewrite the file (atomically) without ``patient``'s rows; how many were dropped.
        Files set aside by an older version have no patient column and are left as they are."""
        if not self.path.is_file():
            return 0
        try:
            with open(self.path, newline="", encoding="utf-8", errors="replace") as handle:
                rows = list(csv.reader(handle))
            if not rows or tuple(rows[0]) != HISTORY_HEADER:
                return 0
            column = HISTORY_HEADER.index("patient")
            kept = [rows[0]] + [r for r in rows[1:] if len(r) <= column
                                or patient_key(r[column]) != patient_key(patient)]
            buffer = io.StringIO()
            csv.writer(buffer).writerows(kept)
            write_text_atomic(self.path, buffer.getvalue())
        except OSError as failure:
            self._report(f"{self.path}: could not remove {patient}'s phrases ({failure}); "
                         "delete them from the file by hand")
            return 0
        return len(rows) - len(kept)

    def _set_aside_other_header(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), None)
        if header is None or tuple(header) == HISTORY_HEADER:
            return
        number = 1
        while (aside := self.path.with_suffix(f".{number}{self.path.suffix}")).exists():
            number += 1
        os.replace(self.path, aside)
        log.info("%s: an older history file, kept as %s", self.path, aside)

    def _report(self, message: str) -> None:
        self.error = message
        log.warning(message)
        if self.on_error is not None:
            self.on_error(message)
