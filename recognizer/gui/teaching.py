"""Teaching the patient's recogniser from the window: confirmations, kept samples, patients.

:class:`TeachingMixin` is the part of :class:`~recognizer.gui.window.MainWindow`
that turns what the caregiver does into samples of the current patient: a
reading confirmed ("Right"), picked from the top 3, or corrected ("Wrong...")
saves its utterance (held in memory until then) as a sample; a recording kept
in the Record tab is one too. Each goes to the :class:`~recognizer.gui.samples.Enroller`,
which writes the patient's few-shot entry again; the window then reads with it
at once when the few-shot kind is in use. Switching patient switches their
samples and entry; deleting a patient removes both.
"""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from features.dataset import validate_label
from features.text import patient_key, spoken_text
from recognizer.confirmations import CONFIRMED, CORRECTED, PICKED, HeardUtterance
from recognizer.patients import confirmed_samples
from recognizer.predictor import Predictor, find_entry, kind_in_use
from recognizer.state import HistoryItem
from training.kinds import get_kind
from training.registry import is_shipped, list_entries

FEW_SHOT = "few_shot"
HELD_READINGS = 2     # final readings whose utterance is held for a confirmation (and one pinned)


class TeachingMixin:
    """Confirmations, kept samples and patients; mixed into the main window, whose state,
    enroller, panels and ``_announce`` it uses."""

    def _hold(self, item: HistoryItem, heard: HeardUtterance) -> HistoryItem:
        """Keep ``heard`` in memory for a confirmation of the reading ``item``: the last
        :data:`HELD_READINGS`, and the one an open Wrong... menu will correct however many
        readings arrive while it is open."""
        self._held.append((item, heard))
        pinned = self.phrase.pinned_reading
        while len(self._held) > HELD_READINGS + any(held is pinned for held, _ in self._held):
            self._held.remove(next(p for p in self._held if p[0] is not pinned))
        return item

    def held(self, item: HistoryItem | None) -> HeardUtterance | None:
        """The utterance of the reading ``item`` (taken out: it is saved once), or None when
        it is no longer held."""
        for pair in self._held:
            if pair[0] is item:
                self._held.remove(pair)
                if self.state.reading is item:
                    self.state.reading = None
                return pair[1]
        return None

    def choose(self, reading: HistoryItem | None, phrase: str) -> None:
        """The caregiver or patient picked ``phrase`` from the top 3 of ``reading`` (None: a
        reading not held, such as a tentative one): said, and its utterance kept as a sample."""
        if phrase:
            top3 = reading.top3 if reading is not None else self.state.top3
            item = self._announce(phrase, dict(top3).get(phrase, 0.0), top3, True, chosen=True)
            self._keep_heard(reading, phrase, PICKED, item)

    def confirm_right(self, reading: HistoryItem | None) -> None:
        """``reading`` is right: its utterance becomes a sample of what it read (a confirmed
        alert phrase raises the alarm, sure or not)."""
        if reading is not None:
            self.history_log.append(replace(reading, time=datetime.now()), how="confirmed")
            self.state.raise_alarm(reading)
            self._keep_heard(reading, reading.phrase, CONFIRMED, reading)

    def confirm_wrong(self, reading: HistoryItem | None, phrase: str) -> None:
        """``reading`` is wrong, ``phrase`` was meant: said (what the patient meant comes
        first), and kept as a sample of it while its utterance is held."""
        if phrase and reading is not None:
            item = self._announce(phrase, dict(reading.top3).get(phrase, 0.0), reading.top3,
                                  True, chosen=True)
            self._keep_heard(reading, phrase, CORRECTED, item)

    def _keep_heard(self, reading: HistoryItem | None, phrase: str, how: str,
                    item: HistoryItem) -> None:
        """Save ``reading``'s utterance (once) as a sample of ``phrase``, for ``item``; say so
        when it is no longer held rather than save another."""
        if reading is None:
            self.show_status(f"\u201c{spoken_text(phrase)}\u201d said; not kept as a sample: "
                             "it was picked before the reading was finished")
            return
        heard = self.held(reading)
        if heard is None:
            self._not_held(reading)
            return
        try:
            label = validate_label(phrase)
        except ValueError as error:
            self.show_status(f"Not kept as a sample: {error}")
            return
        self.enroller.confirm(item, label, heard, how, self.state.patient)

    def _not_held(self, reading: HistoryItem) -> None:
        self.show_status(f"Not kept as a sample: the reading of {reading.time:%H:%M:%S} is no "
                         "longer held (newer readings replaced it, or it was kept already)")

    def _on_confirmed(self, item: HistoryItem, path: str) -> None:
        self.state.mark_saved(item, path)
        phrase = f"\u201c{Path(path).parent.name}\u201d"
        if self.state.patient:
            self.show_status(f"Kept as {self.state.patient}'s sample of {phrase}; undo it from "
                             "the History tab")
        else:
            self.show_status(f"Kept as a sample of {phrase} of no patient: choose the patient in "
                             "the Record tab so the few-shot recogniser learns from it; undo it "
                             "from the History tab")
        self.recorder.refresh_counts()

    def undo_sample(self, item: HistoryItem) -> None:
        """Delete the sample ``item``'s confirmation kept."""
        self.enroller.undo(item)
        self.show_status(f"Deleting the sample of \u201c{spoken_text(Path(item.saved).parent.name)}"
                         f"\u201d kept at {item.time:%H:%M:%S}...")

    def _on_undone(self, item: HistoryItem) -> None:
        self.state.mark_saved(item, None)
        self.history_tab.show_undone(item)
        self.show_status(f"Removed the sample of \u201c{spoken_text(Path(item.saved).parent.name)}"
                         f"\u201d kept at {item.time:%H:%M:%S}; the recogniser forgets it")
        self.recorder.refresh_counts()

    def _seed_confirmed(self) -> None:
        """The current patient's samples confirmed in earlier sessions join the history, so
        that they can be undone after a restart."""
        if not self.state.patient:
            return
        self.state.seed_history([
            HistoryItem(s.recorded_at, s.label, s.confidence, (), True, s.how != CONFIRMED,
                        s.path, self.state.patient)
            for s in confirmed_samples(self.videos_root, self.state.patient)])

    def _patient_changed(self) -> None:
        """Another patient: their samples, expectations and few-shot entry."""
        self._held.clear()
        self.state.update(per_phrase={}, reading=None)
        self.enroller.set_patient(self.state.patient)
        self._seed_confirmed()
        if self.state.kind != FEW_SHOT:
            return
        self._read_with_general_until_two_phrases()
        self.bar.refresh_models()             # the new patient's entry, or the general one

    def _read_with_general_until_two_phrases(self) -> None:
        """Nobody is left unread: with the few-shot kind chosen and no entry of the patient's
        (no patient, or fewer than two phrases of theirs), the general model reads them,
        and "help" with it, at a new patient and at start."""
        if self.state.kind != FEW_SHOT:
            return
        general = kind_in_use(self.registry_root, None)
        names = {entry.name for entry in list_entries(self.registry_root)}
        if (self._entry_for(FEW_SHOT) not in names and general != FEW_SHOT
                and find_entry(self.registry_root, general) is not None):
            self.bar.show_kind(general)
            who = self.state.patient or "the patient (none chosen)"
            self.show_status(f"No few-shot recogniser of {who} yet: reading with the general "
                             f"{get_kind(general).label} until it knows two phrases")

    def _on_sample_kept(self, label: str, path: str, clip, patient: str) -> None:
        """A sample kept for ``patient`` (who was current at Keep) joins their entry."""
        if patient_key(patient) == patient_key(self.state.patient) and patient:
            self.enroller.add_sample(label, path, clip, self.recorder.keep_clicked)
        elif patient:
            self.enroller.rebuild(patient)          # the patient changed while it was saved
        else:
            self.show_status(f"Saved a sample of \u201c{label}\u201d of no patient: no few-shot "
                             "recogniser learns from it. Type the patient in the Record tab "
                             "before recording.")

    def _on_enrolled(self, update, predictor: Predictor | None, asked: float) -> None:
        """The patient's entry was written again: show what to expect, and read with it when
        the few-shot kind is in use (or nothing is). An update of the patient before the
        current one (still being written when the patient changed) is not shown."""
        if patient_key(update.patient) != patient_key(self.state.patient):
            return
        self.state.per_phrase = update.per_phrase
        if predictor is not None and len(predictor.classes) < 2:
            self.show_status(f"{self.state.patient}'s recogniser knows one phrase: record a "
                             "second phrase and it starts (with one, it could say nothing else)")
            return
        if predictor is None:
            if self.state.kind == FEW_SHOT:
                self.bar.refresh_models(self.state.entry, load=False)
            return
        if self.state.kind != FEW_SHOT and self._patient_model_in_use():
            self.show_status(f"{self.state.patient}'s few-shot recogniser knows "
                             f"{len(predictor.classes)} phrases; still reading with "
                             f"{self.state.entry}, chosen for them (choose Few-shot under "
                             "Recogniser to use it)")
            return
        switched = self.state.kind != FEW_SHOT
        self.bar.show_kind(FEW_SHOT)
        self.bar.refresh_models(predictor.name, load=False)
        self._picks += 1                       # a pick still loading is older than this
        # The phrase on screen stays: it was confirmed (or picked) a moment ago.
        self._on_predictor_loaded(predictor, update.entry, "", self._picks, keep_phrase=True)
        samples = sum(p["samples"] for p in update.per_phrase.values())
        took = ""
        if asked:
            self.enrol_latencies_ms.append((time.monotonic() - asked) * 1000)
            took = f", {self.enrol_latencies_ms[-1]:.0f} ms after the change"
        switch = "now reads with" if switched else "now knows"
        self.show_status(f"{self.state.patient}'s few-shot recogniser {switch} "
                         f"{len(update.per_phrase)} phrases from {samples} samples{took}"
                         + (" (it replaced the general model, which knows no patient)"
                            if switched else ""))

    def _patient_model_in_use(self) -> bool:
        """Whether the model reading now was made from recorded samples (trained in the Train
        tab), not the general one shipped with the app: a choice the few-shot recogniser does
        not override."""
        predictor = self.predictor
        return predictor is not None and not is_shipped(predictor.entry.path)

    def _on_patient_deleted(self, patient: str, result) -> None:
        said = self.history_log.forget_patient(patient)
        self.state.forget_patient(patient)
        problems = f" Not deleted: {'; '.join(result.problems)}" if result.problems else ""
        self.show_status(f"Deleted {result.clips} recording(s) of {patient}, "
                         f"{len(result.entries)} model(s) made from them and {said} phrase(s) "
                         f"of their history.{problems}")
        if patient == self.state.patient:
            self.state.patient = ""
        self.recorder.show_patient()
        self.bar.refresh_models()
