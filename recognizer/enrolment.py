"""A patient's few-shot entry, written again each time a sample is kept (Qt-free).

:class:`PatientEnrolment` holds one patient's samples as the sentence
reader's examples (read from the feature cache, or from the live features of a
take just kept) and writes their few-shot entry (:mod:`training.kinds.few_shot`)
in well under a second: embed, calibrate by leave-one-out, replace the entry.
The window does this on a helper thread after every kept or confirmed sample
and after an undo, then reads with the new entry. Use one instance from one
thread at a time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.cache import ClipFeatures, FeatureCache
from features.dataset import build_manifest, transcript
from features.extract import extract_many
from recognizer.patients import few_shot_name, patient_rows
from training import registry
from training.kinds.few_shot import KIND as FEW_SHOT
from training.kinds.few_shot import enrol, few_shot_card, load_reader, reader_path


@dataclass(frozen=True)
class Sample:
    """One enrolled clip: its phrase, what it says, and the reader's raw example of it."""

    label: str
    text: str
    example: tuple


@dataclass(frozen=True)
class EnrolmentUpdate:
    """Whose it is; a written entry (None when the patient has no sample left and it was
    removed); per phrase its samples and expected accuracy (``{label: {"samples",
    "expected_accuracy"}}``); and the seconds it took."""

    patient: str
    entry: Path | None
    per_phrase: dict
    seconds: float


class PatientEnrolment:
    """``patient``'s samples and their few-shot entry in ``registry_root``."""

    def __init__(self, registry_root: str | Path, patient: str, reader):
        self.registry_root = Path(registry_root)
        self.patient = patient
        self.reader = reader
        self.name = few_shot_name(patient)
        self._samples: dict[str, Sample] = {}

    @classmethod
    def open(cls, registry_root: str | Path, videos_root: str | Path, patient: str,
             cache: FeatureCache, reader=None) -> tuple["PatientEnrolment", list[str]]:
        """The patient's clips of ``videos_root`` as samples (extracting those not cached),
        with ``reader`` (a loaded sentence reader; default the registry's); and the clips
        that could not be used."""
        reader = reader if reader is not None else load_reader(reader_path(registry_root, None))
        enrolment = cls(registry_root, patient, reader)
        rows = patient_rows(build_manifest(videos_root), patient)
        summary = extract_many([Path(p) for p in rows["path"]], cache, workers=1)
        problems = [str(reason) for reason in summary.failed.values()]
        failed = {str(path) for path in summary.failed}
        for path, label, text in zip(rows["path"], rows["label"], rows["text"]):
            if str(path) in failed:
                continue
            try:
                enrolment.add(label, path, cache.load(path, crops=enrolment.needs_crops), text)
            except ValueError as error:
                problems.append(f"{path}: {error}")
        return enrolment, problems

    @property
    def needs_crops(self) -> bool:
        """Whether the reader reads the mouth crops too (its ``appearance``), so samples must
        carry them."""
        return FEW_SHOT.uses_crops(self.reader.card.input)

    def reads(self, clip: ClipFeatures | None) -> bool:
        """Whether ``clip`` carries all the reader reads: features, and crops if it needs them."""
        return clip is not None and (not self.needs_crops or clip.crops.size > 0)

    def add(self, label: str, path: str | Path, clip: ClipFeatures | None, text: str | None = None) -> None:
        """Enrol the clip at ``path`` as a sample of ``label`` from its features ``clip``;
        ``ValueError`` when it has no face."""
        if clip is None:
            raise ValueError("no features for this clip (not in the feature cache)")
        example, _ = FEW_SHOT.example(clip, self.reader.card.input)
        self._samples[str(Path(path))] = Sample(label, transcript(label, text), example)

    def remove(self, path: str | Path) -> bool:
        """Forget the sample at ``path`` (an undone confirmation); whether there was one."""
        return self._samples.pop(str(Path(path)), None) is not None

    def __len__(self) -> int:
        return len(self._samples)

    def counts(self) -> dict[str, int]:
        labels = [s.label for s in self._samples.values()]
        return {label: labels.count(label) for label in sorted(set(labels))}

    def write(self) -> EnrolmentUpdate:
        """Enrol every sample and write the patient's entry over the last one (atomically);
        with no sample left, remove the entry."""
        started = time.monotonic()
        if not self._samples:
            if (self.registry_root / self.name).is_dir():
                registry.delete(self.registry_root, self.name, force=True)
            return EnrolmentUpdate(self.patient, None, {}, time.monotonic() - started)
        samples = list(self._samples.values())
        classes = tuple(sorted({s.label for s in samples}))
        labels = np.array([classes.index(s.label) for s in samples])
        texts = tuple(next(s.text for s in samples if s.label == c) for c in classes)
        result = enrol(self.reader, [s.example for s in samples], labels, texts)
        card = few_shot_card(self.reader, result, classes, labels, {
            "patient": self.patient, "clips": len(samples),
            "summary": f"{len(samples)} samples of {len(classes)} phrases by {self.patient}, "
                       "kept in the app"}, started, self.name)
        entry = registry.write_entry(self.registry_root, self.name, result.model, card,
                                     replace_existing=True)
        return EnrolmentUpdate(self.patient, entry, card.metrics["per_class"],
                               time.monotonic() - started)
