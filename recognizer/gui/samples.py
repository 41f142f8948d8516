"""The current patient's samples and few-shot entry, kept up to date off the GUI thread.

:class:`Enroller` runs every change -- a patient chosen, a sample kept, an
utterance confirmed, a confirmation undone, a patient deleted -- one at a
time on its own thread, in the order asked, with a
:class:`~recognizer.enrolment.PatientEnrolment`: the patient's entry is
written again and a :class:`~recognizer.predictor.Predictor` of it is made,
then :attr:`Enroller.updated` brings both to the window, which reads with it
at once when the few-shot kind is in use.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from features.cache import DEFAULT_CACHE_DIR, ClipFeatures, FeatureCache
from recognizer.confirmations import HeardUtterance, save_confirmation, undo_confirmation
from recognizer.enrolment import EnrolmentUpdate, PatientEnrolment
from recognizer.patients import DeletedPatient, delete_patient, patient_key
from recognizer.predictor import Predictor
from training.kinds.few_shot import load_reader, reader_path


class Enroller(QObject):
    """Keeps ``PatientEnrolment`` of the current patient; every method returns at once."""

    # EnrolmentUpdate, Predictor | None, when the change was asked (monotonic s; 0: not asked,
    # a patient's samples read)
    updated = Signal(object, object, float)
    confirmed = Signal(object, str)           # the HistoryItem confirmed, the clip saved
    undone = Signal(object)                   # the HistoryItem whose sample was deleted
    deleted = Signal(str, object)             # the patient, DeletedPatient
    message = Signal(str)

    def __init__(self, registry_root: str | Path, videos_root: str | Path,
                 cache_dir: str | Path = DEFAULT_CACHE_DIR, parent=None):
        super().__init__(parent)
        self.registry_root, self.videos_root = Path(registry_root), Path(videos_root)
        self.cache = FeatureCache(cache_dir)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrol")
        self._enrolment: PatientEnrolment | None = None
        self._reader = None            # the sentence reader, loaded once for every patient

    def _submit(self, job, *args) -> None:
        def run():
            try:
                job(*args)
            except (OSError, ValueError, RuntimeError) as error:
                self.message.emit(f"Could not update the patient's samples: {error}")
        self._pool.submit(run)

    def set_patient(self, patient: str) -> None:
        """Read ``patient``'s samples (extracting any not yet in the feature cache)."""
        self._submit(self._open, patient)

    def add_sample(self, label: str, path: str, clip: ClipFeatures | None,
                   asked: float | None = None) -> None:
        """A kept recording of ``label`` at ``path`` (its live features ``clip``, if known);
        ``asked``: when the user kept it (monotonic s), to time the update by."""
        self._submit(self._add, label, path, clip, asked or time.monotonic())

    def confirm(self, item, phrase: str, heard: HeardUtterance, how: str, patient: str) -> None:
        """Save the utterance behind history ``item`` as a sample of ``phrase`` and enrol it."""
        self._submit(self._confirm, item, phrase, heard, how, patient, time.monotonic())

    def undo(self, item) -> None:
        """Delete the sample history ``item``'s confirmation saved, and forget it."""
        self._submit(self._undo, item, time.monotonic())

    def rebuild(self, patient: str) -> None:
        """Write ``patient``'s entry again from their clips (not the current patient's)."""
        self._submit(self._rebuild, patient)

    def delete_patient(self, patient: str) -> None:
        """Delete every recording and entry of ``patient``."""
        self._submit(self._delete, patient)

    def wait(self) -> None:
        """Block until every change asked so far is done (tests; closing the window)."""
        self._pool.submit(lambda: None).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

    # -- on the enroller's thread ---------------------------------------------------------

    def _open(self, patient: str) -> None:
        self._enrolment = None
        if patient_key(patient) is None:
            return
        enrolment, problems = self._open_enrolment(patient)
        self._enrolment = enrolment
        for problem in problems[:3]:
            self.message.emit(f"Not a sample of {patient}: {problem}")
        if len(enrolment):
            self._publish(0.0)

    def _features(self, path: str | Path, clip: ClipFeatures | None) -> ClipFeatures | None:
        """``clip`` when the patient's reader can read it, else the saved file's features
        (extracted as training does): a clip not in memory, or live frames without the
        mouth crops an appearance reader needs."""
        if self._enrolment.reads(clip):
            return clip
        from features.extract import extract_many

        extract_many([Path(path)], self.cache, workers=1)
        return self.cache.load(path, crops=self._enrolment.needs_crops)

    def _add(self, label: str, path: str, clip: ClipFeatures | None, asked: float) -> None:
        if self._enrolment is None:
            return
        self._enrolment.add(label, path, self._features(path, clip))
        self._publish(asked)

    def _confirm(self, item, phrase: str, heard: HeardUtterance, how: str, patient: str,
                 asked: float) -> None:
        path = save_confirmation(self.videos_root, phrase, heard, how, patient)
        self.confirmed.emit(item, str(path))
        if self._enrolment is not None:
            self._enrolment.add(path.parent.name, path, self._features(path, heard.clip))
            self._publish(asked)

    def _undo(self, item, asked: float) -> None:
        undo_confirmation(item.saved)
        self.undone.emit(item)
        if self._enrolment is not None and self._enrolment.remove(item.saved):
            self._publish(asked)
        elif patient_key(item.patient) is not None:
            self._rebuild(item.patient)    # another patient's (they changed since): forget it too

    def _rebuild(self, patient: str) -> None:
        if self._enrolment is not None and patient_key(self._enrolment.patient) == patient_key(patient):
            self._publish(time.monotonic())
            return
        self._open_enrolment(patient)[0].write()

    def _open_enrolment(self, patient: str) -> tuple[PatientEnrolment, list[str]]:
        """``patient``'s samples, with the registry's sentence reader: loaded again only when
        it is another entry than the one loaded last."""
        path = reader_path(self.registry_root, None)
        if self._reader is None or self._reader.path != path:
            self._reader = load_reader(path)
        return PatientEnrolment.open(self.registry_root, self.videos_root, patient, self.cache,
                                     self._reader)

    def _delete(self, patient: str) -> None:
        result: DeletedPatient = delete_patient(self.videos_root, self.registry_root, patient)
        if self._enrolment is not None and patient_key(self._enrolment.patient) == patient_key(patient):
            self._enrolment = PatientEnrolment(self.registry_root, patient, self._enrolment.reader)
        self.deleted.emit(patient, result)

    def _publish(self, asked: float) -> None:
        update: EnrolmentUpdate = self._enrolment.write()
        predictor = Predictor.from_entry(update.entry, "cpu") if update.entry else None
        self.updated.emit(update, predictor, asked)
