"""The window's user settings kept across restarts: the recogniser kind, the "Sure ≥"
threshold, speech, read mode, the current patient and the patients typed so far.

A small JSON file (``settings.json`` beside ``history.csv`` in the user's
app-data folder), written atomically on every change. A missing file gives
the defaults; an unreadable one, or a value of the wrong type, gives the
defaults for what is wrong and a message saying which file and value, and the
next change writes a good file over it. The active entry of each kind is not
here: the registry remembers it (``models/active.json``).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from features.files import write_json_atomic
from recognizer.reading import ReadMode
from training.kinds import DEFAULT_KIND, KINDS


@dataclass(frozen=True)
class Settings:
    """``kind``: a model kind's name; ``confidence_threshold`` in [0, 1]; ``speak_aloud``;
    ``read_mode``: a ReadMode value; ``patient``: the current patient's name ("" for none);
    ``patients``: every patient typed, recorded or not (the Record tab lists them)."""

    kind: str = DEFAULT_KIND
    confidence_threshold: float = 0.5
    speak_aloud: bool = True
    read_mode: str = ReadMode.PHRASES.value
    patient: str = ""
    patients: tuple[str, ...] = ()


def _problem(name: str, value) -> str | None:
    if name == "kind":
        return None if value in KINDS else "one of " + ", ".join(KINDS)
    if name == "confidence_threshold":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and 0.0 <= value <= 1.0)
        return None if ok else "a number from 0 to 1"
    if name == "speak_aloud":
        return None if isinstance(value, bool) else "true or false"
    if name == "patient":
        return None if isinstance(value, str) else "a name in quotes"
    if name == "patients":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "a list of names in quotes"
    return None if value in {m.value for m in ReadMode} else " or ".join(m.value for m in ReadMode)


def load_settings(path: str | os.PathLike) -> tuple[Settings, list[str]]:
    """The settings in ``path`` (defaults where missing) and a message per value not used."""
    path = Path(path)
    if not path.is_file():
        return Settings(), []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return Settings(), [f"{path}: cannot read the saved settings ({error}); using the defaults"]
    if not isinstance(data, dict):
        return Settings(), [f"{path}: the saved settings are not a JSON object; using the defaults"]
    values, messages = {}, []
    for field in fields(Settings):
        if field.name not in data:
            continue
        problem = _problem(field.name, data[field.name])
        if problem:
            messages.append(f"{path}: setting {field.name!r} is {data[field.name]!r}, not "
                            f"{problem}; using {getattr(Settings(), field.name)!r}")
            continue
        value = data[field.name]
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values), messages


def save_settings(path: str | os.PathLike, settings: Settings) -> None:
    """Write ``settings`` to ``path`` atomically (``OSError`` when the folder is not writable)."""
    write_json_atomic(path, asdict(settings))
