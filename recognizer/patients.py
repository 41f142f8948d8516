"""Patients: whose samples, confirmations and few-shot entry are whose (Qt-free).

A patient is the ``speaker`` of the clips' sidecars, compared trimmed and
case-folded ("Bed 4" and "bed 4 " are one patient). Their few-shot entry is
named after them (:func:`few_shot_name`) and its card says whose it is
(``data.patient``). A patient's recordings are health data: they are written
user-only (:mod:`features.files`), never leave the machine, and
:func:`delete_patient` removes every clip and entry of one patient.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.dataset import build_manifest, delete_clip
from features.text import patient_key
from training import registry

FEW_SHOT_PREFIX = "few-shot-"


def few_shot_name(patient: str) -> str:
    """The registry name of ``patient``'s few-shot entry: ``few-shot-<the name's letters>-
    <digest>`` (``few-shot-bed-4-1b5a2c``). The digest of the whole name keeps two patients
    apart whose names read alike in letters ("Bed 4/ICU" and "bed 4 icu")."""
    key = patient_key(patient)
    if key is None:
        raise ValueError("a few-shot entry belongs to a patient: choose or type the patient first")
    ascii_name = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40].strip("-")
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    return f"{FEW_SHOT_PREFIX}{slug}-{digest}" if slug else f"{FEW_SHOT_PREFIX}{digest}"


def patients(videos_root: str | Path) -> tuple[str, ...]:
    """Every patient with a clip in ``videos_root``, as first written, sorted."""
    manifest = build_manifest(videos_root)
    names: dict[str, str] = {}
    for name in manifest.get("speaker", pd.Series(dtype=object)):
        key = patient_key(name)
        if key is not None:
            names.setdefault(key, str(name).strip())
    return tuple(sorted(names.values(), key=str.casefold))


def patient_rows(manifest: pd.DataFrame, patient: str) -> pd.DataFrame:
    """The rows of ``manifest`` recorded by ``patient``."""
    if "speaker" not in manifest or patient_key(patient) is None:
        return manifest.iloc[:0]
    mine = np.array([patient_key(s) == patient_key(patient) for s in manifest["speaker"]], bool)
    return manifest.loc[mine]


@dataclass(frozen=True)
class ConfirmedSample:
    """A reading confirmed as a sample (in this session or an earlier one): its clip, the
    phrase it was kept as, when (local time), ``how`` (confirmed, picked or corrected) and
    the confidence of what was read."""

    path: str
    label: str
    recorded_at: datetime
    how: str
    confidence: float


def confirmed_samples(videos_root: str | Path, patient: str) -> list[ConfirmedSample]:
    """``patient``'s confirmed samples still on disk, oldest first (a clip whose sidecar has
    no time is left out: it cannot be placed in the history)."""
    rows = patient_rows(build_manifest(videos_root), patient)
    if "origin" not in rows:
        return []
    found = []
    for row in rows.loc[rows["origin"] == "confirmed"].itertuples():
        try:
            when = datetime.fromisoformat(str(row.recorded_at))
        except ValueError:
            continue
        confidence = getattr(row, "confidence", None)
        found.append(ConfirmedSample(str(row.path), str(row.label), when,
                                     str(getattr(row, "how", None) or "confirmed"),
                                     float(confidence) if confidence is not None else 0.0))
    return sorted(found, key=lambda sample: sample.recorded_at)


def patient_entries(registry_root: str | Path, patient: str) -> list[registry.RegistryEntry]:
    """The registry entries made for ``patient`` (their card's ``data.patient``)."""
    return [e for e in registry.list_entries(registry_root)
            if not e.shipped and patient_key(e.card.data.get("patient")) == patient_key(patient)]


@dataclass(frozen=True)
class DeletedPatient:
    """What :func:`delete_patient` removed: clip files and registry entries (names)."""

    clips: int
    entries: tuple[str, ...]
    problems: tuple[str, ...] = ()


def delete_patient(videos_root: str | Path, registry_root: str | Path, patient: str) -> DeletedPatient:
    """Delete every clip (video and sidecar) ``patient`` recorded or confirmed, the phrase
    folders left empty, and every registry entry made for them. Goes on past a file it
    cannot delete and names it."""
    if patient_key(patient) is None:
        raise ValueError("no patient chosen: there is nothing to delete")
    problems, clips = [], 0
    for path in patient_rows(build_manifest(videos_root), patient)["path"]:
        try:
            delete_clip(path)
            clips += 1
        except OSError as error:
            problems.append(f"{path}: could not delete it ({error}); delete it by hand")
    names = []
    for entry in patient_entries(registry_root, patient):
        try:
            registry.delete(registry_root, entry.name, force=True)
            names.append(entry.name)
        except (OSError, ValueError) as error:
            problems.append(f"{entry.path}: could not delete it ({error}); delete it by hand")
    return DeletedPatient(clips, tuple(names), tuple(problems))
