"""The clip folder: ``videos/<label>/<clip>.mp4`` with a ``<clip>.json`` sidecar.

A label is a folder name, so it is checked before it touches the disk: any
Unicode letters are fine (``i_need_to_move``, ``עזרה``), but nothing that could
name a different folder (``..``, ``a/b``, an absolute path), hide itself (a
leading dot) or look like another label (control and invisible characters).
Spaces become underscores, so ``i need to move`` and ``i_need_to_move`` are one
label and the folder name needs no quoting in a shell.

The sidecar holds what is known about the recording -- ``speaker``, ``gender``,
``age_band``, ``source`` (the original recording a clip was cut from, so that
clips of one recording stay in one split), ``recorded_at`` (ISO 8601) and
``text`` (what was said, when it is more than the label) -- all optional, plus
any extra keys, e.g. GRID's word timings. A clip's transcript
(:func:`transcript`) is its ``text``, else its label read with ``_`` as spaces.

Nothing recorded is overwritten or left half-written: a clip is written under a
hidden temporary name and then linked to its final name, which fails rather
than replace a clip already there. :func:`build_manifest` scans the folder into
a :class:`pandas.DataFrame` and reports, rather than stops at, what it cannot use.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from features.extract import VIDEO_SUFFIXES
from features.files import (PRIVATE_FILE, fsync_path, private_dirs, temporary_sibling,
                            write_text_atomic)
from features.text import spoken_text
from features.video import write_video

SIDECAR_SUFFIX = ".json"
CLIP_SUFFIX = ".mp4"
# Leaves room under the usual 255-byte name limit for the clip and temp suffixes.
MAX_NAME_BYTES = 200
# Characters Windows refuses in a file name, besides the separators.
_FORBIDDEN_CHARS = frozenset('/\\<>:"|?*')
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)}
                              | {f"LPT{i}" for i in range(1, 10)})
# Joiners are invisible but carry meaning in Persian and Indic scripts.
_ALLOWED_FORMAT_CHARS = frozenset("\u200c\u200d")
_MANIFEST_BASE = ("path", "label", "clip")


class SidecarError(ValueError):
    """A sidecar that cannot be read; the message names the file."""


def _clean_name(text: str, what: str) -> str:
    """NFC-normalised, stripped, spaces to ``_``; ``ValueError`` naming ``text`` if unsafe.

    The message says what is wrong and what to type instead (``what`` is
    ``"label"`` -- a phrase to the user -- or ``"clip name"``).
    """
    noun, example = (("the phrase", "i_need_water or 'i need water'") if what == "label"
                     else (f"the {what}", "take_1"))
    if not isinstance(text, str):
        raise ValueError(f"{what} {text!r}: must be text, not {type(text).__name__}")
    name = unicodedata.normalize("NFC", text).strip()
    invisible = [c for c in name if unicodedata.category(c)[0] == "C"
                 and c not in _ALLOWED_FORMAT_CHARS]
    if invisible:
        raise ValueError(f"{what} {text!r} contains control or invisible characters "
                         f"{invisible!r}; type {noun} again by hand, like {example}")
    name = re.sub(r"\s+", "_", name)
    problem = _name_problem(name, noun, example)
    if problem:
        raise ValueError(f"{what} {text!r} {problem}")
    return name


def _name_problem(name: str, noun: str = "the name", example: str = "take_1") -> str | None:
    """What is wrong with ``name`` as a folder or file name and what to type instead; None if nothing."""
    in_words = (f"type {noun} in words instead, like {example}: letters, digits, spaces, - and _ "
                f"are fine, but not / \\ < > : \" | ? * or a '.' at the start or end")
    if not name:
        return f"is empty; {in_words}"
    if name.startswith("."):
        return f"starts with '.'; {in_words}"
    if name.endswith("."):
        return f"ends with '.'; {in_words}"
    bad = sorted(set(name) & _FORBIDDEN_CHARS)
    if bad:
        return f"contains {' '.join(bad)}; {in_words}"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"is a name Windows keeps for a device; add a word to it, like my_{name}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return (f"is longer than {MAX_NAME_BYTES} bytes as UTF-8; type {noun} shorter, "
                f"like its first few words")
    return None


def validate_label(label: str) -> str:
    """The folder name for ``label``: NFC, stripped, whitespace runs to ``_``.

    Raises ``ValueError`` naming the label when it is empty, ``.``/``..``,
    starts or ends with a dot, holds a path separator or a character a file
    name cannot hold (also on Windows: ``<>:"|?*``), is a Windows device name
    (``con``, ``nul``, ...), holds a control or invisible character, or is
    longer than ``MAX_NAME_BYTES`` as UTF-8.
    """
    return _clean_name(label, "label")


def label_dir(videos_root: str | os.PathLike, label: str) -> Path:
    """``videos_root / validate_label(label)``, refused if it resolves outside the root.

    The name check rules out ``..`` and separators; this also catches a label
    folder that is a link to somewhere else.
    """
    root = Path(videos_root)
    folder = root / validate_label(label)
    real_root, real = root.resolve(), folder.resolve()
    if real_root not in real.parents:
        raise ValueError(f"label {label!r}: folder {folder} resolves to {real}, outside "
                         f"{real_root}; remove or replace that link")
    return folder


@dataclass(frozen=True)
class Sidecar:
    """What is known about one clip; every field optional.

    ``source`` names the original recording the clip was cut from;
    ``recorded_at`` is ISO 8601 text; ``text`` is what was said (any Unicode).
    ``extra`` holds any other JSON-valued
    keys (GRID: ``sentence``, ``word_index``, ``start_frame``, ...); in the
    file they sit beside the named fields, so their names must differ from them
    and from the manifest's ``path``, ``label`` and ``clip``.
    """

    speaker: str | None = None
    gender: str | None = None
    age_band: str | None = None
    source: str | None = None
    recorded_at: str | None = None
    text: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        clash = set(self.extra) & (set(sidecar_fields()) | set(_MANIFEST_BASE) | {"extra"})
        if clash:
            raise ValueError(f"sidecar extra keys {sorted(clash)} clash with named fields; rename them")
        object.__setattr__(self, "extra", dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """Named fields (``None`` where unknown) then extra keys, as one flat dict."""
        data = {name: getattr(self, name) for name in sidecar_fields()}
        data.update(self.extra)
        return data

    def to_json(self) -> str:
        """UTF-8 JSON text (non-ASCII kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, default=_json_default) + "\n"

    @classmethod
    def from_json(cls, text: str, *, origin: str = "sidecar") -> Sidecar:
        """Parse JSON text; ``SidecarError`` names ``origin`` (the file) when malformed."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SidecarError(f"{origin}: not valid JSON ({error}); fix or delete the file") from None
        if not isinstance(data, dict):
            raise SidecarError(f"{origin}: expected a JSON object, got {type(data).__name__}")
        named = {}
        for name in sidecar_fields():
            value = data.pop(name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if value is not None and not isinstance(value, str):
                raise SidecarError(f"{origin}: '{name}' should be text, got {value!r}")
            named[name] = value
        try:
            return cls(**named, extra=data)
        except ValueError as error:
            raise SidecarError(f"{origin}: {error}") from None


def sidecar_fields() -> tuple[str, ...]:
    """The named sidecar fields, in file order (``extra`` excluded)."""
    return tuple(f.name for f in fields(Sidecar) if f.name != "extra")


def _json_default(value: Any) -> Any:
    # NumPy scalars arrive from frame arithmetic; JSON has no type for them.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"sidecar value {value!r} of type {type(value).__name__} is not JSON")


def read_sidecar(path: str | os.PathLike) -> Sidecar:
    """The sidecar in ``path``; ``SidecarError`` naming the file when unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SidecarError(f"{path}: cannot be read ({error})") from None
    return Sidecar.from_json(text, origin=str(path))


def write_sidecar(path: str | os.PathLike, sidecar: Sidecar) -> Path:
    """Write ``sidecar`` to ``path`` atomically (temporary name, fsync, rename)."""
    return write_text_atomic(path, sidecar.to_json())


def _check_frames(frames_rgb: list[np.ndarray]) -> None:
    # OpenCV's writer silently drops frames of another size; refuse instead.
    if len(frames_rgb) == 0:
        raise ValueError("no frames to save; record at least one frame")
    shape = frames_rgb[0].shape
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB, got shape {shape}")
    for i, frame in enumerate(frames_rgb):
        if frame.shape != shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {i} is {frame.shape} {frame.dtype}; "
                             f"every frame must be {shape} uint8 like frame 0")


def _name_taken(folder: Path, clip: str) -> bool:
    return any((folder / f"{clip}{suffix}").exists() for suffix in VIDEO_SUFFIXES + (SIDECAR_SUFFIX,))


def _publish(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final``; ``FileExistsError`` if ``final`` exists."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise FileExistsError(f"{final}: a clip of that name exists; it was left untouched") from None
    except OSError:
        # Some file systems (FAT, some network shares) have no hard links.
        if final.exists():
            raise FileExistsError(f"{final}: a clip of that name exists; it was left untouched") from None
        os.replace(tmp, final)
    tmp.unlink(missing_ok=True)


def save_clip(videos_root: str | os.PathLike, label: str, frames_rgb: list[np.ndarray],
              fps: float, sidecar: Sidecar | None = None, clip_name: str | None = None) -> Path:
    """Write ``videos_root/<label>/<clip>.mp4`` and its sidecar; return the video's path.

    ``frames_rgb``: (H, W, 3) uint8 RGB frames, all one size; ``fps``: frames
    per second. Without ``clip_name`` the clip is named by the local time to
    the microsecond, numbered ``_2``, ``_3``... if that is taken. A
    ``clip_name`` (no suffix) that is taken raises ``FileExistsError``: an
    existing clip is never overwritten. The video is complete on disk before it
    gets its final name; the sidecar (default: all fields unknown) follows at
    once. If the sidecar cannot be written the video is kept and the error raised.
    """
    _check_frames(frames_rgb)
    return _store(videos_root, label, clip_name, sidecar,
                  lambda tmp: write_video(tmp, frames_rgb, fps))


def copy_clip(videos_root: str | os.PathLike, label: str, video: str | os.PathLike,
              sidecar: Sidecar | None = None, clip_name: str | None = None) -> Path:
    """Copy an ``.mp4`` file byte for byte into the clip folder, as :func:`save_clip` stores
    a recording (same naming, no overwrite, complete before it is named)."""
    video = Path(video)
    if video.suffix.lower() != CLIP_SUFFIX:
        raise ValueError(f"{video}: only {CLIP_SUFFIX} files are copied as they are; "
                         f"decode it and use save_clip")

    def write(tmp: Path) -> None:
        shutil.copyfile(video, tmp)
        fsync_path(tmp)
    return _store(videos_root, label, clip_name, sidecar, write)


def delete_clip(video: str | os.PathLike, missing_ok: bool = False) -> None:
    """Delete a clip and its sidecar, and its phrase folder when no other clip is left there;
    ``OSError`` (``FileNotFoundError`` for a missing video unless ``missing_ok``)."""
    video = Path(video)
    video.with_suffix(SIDECAR_SUFFIX).unlink(missing_ok=True)
    video.unlink(missing_ok=missing_ok)
    try:
        video.parent.rmdir()
    except OSError:
        pass                   # the phrase has other clips


def _store(videos_root, label: str, clip_name: str | None, sidecar: Sidecar | None,
           write: Callable[[Path], object]) -> Path:
    folder = private_dirs(label_dir(videos_root, label))
    clip = _clean_name(clip_name, "clip name") if clip_name is not None else _free_clip_name(folder)
    final = folder / f"{clip}{CLIP_SUFFIX}"
    if any((folder / f"{clip}{suffix}").exists() for suffix in VIDEO_SUFFIXES):
        raise FileExistsError(f"{final}: a clip of that name exists; choose another clip name")
    tmp = temporary_sibling(final)
    try:
        write(tmp)  # flushed to disk before it is linked
        os.chmod(tmp, PRIVATE_FILE)
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    write_sidecar(folder / f"{clip}{SIDECAR_SUFFIX}", sidecar if sidecar is not None else Sidecar())
    return final


def _free_clip_name(folder: Path) -> str:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    for number in range(1, 1000):
        clip = stamp if number == 1 else f"{stamp}_{number}"
        if not _name_taken(folder, clip):
            return clip
    raise FileExistsError(f"{folder}: no free clip name for {stamp}; check the folder")


def _is_partial(path: Path) -> bool:
    return path.name.startswith(".") or ".partial" in path.name


def _scan_label(folder: Path, label: str, problems: list[tuple[Path, str]]) -> list[dict]:
    rows, videos = [], set()
    for path in sorted(folder.iterdir()):
        if _is_partial(path) or not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        videos.add(path.stem)
        if path.stat().st_size == 0:
            problems.append((path, "empty video file (an interrupted copy?); record it again or delete it"))
            continue
        row = {"path": str(path), "label": label, "clip": path.stem}
        sidecar_path = path.with_suffix(SIDECAR_SUFFIX)
        if sidecar_path.is_file():
            try:
                row.update(read_sidecar(sidecar_path).to_dict())
            except SidecarError as error:
                problems.append((sidecar_path, str(error)))
        rows.append(row)
    for path in sorted(folder.glob(f"*{SIDECAR_SUFFIX}")):
        if not _is_partial(path) and path.stem not in videos:
            problems.append((path, "sidecar without a video (an interrupted save?); delete it"))
    return rows


def _label_folders(root: Path, problems: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = validate_label(folder.name)
            label_dir(root, label)
        except ValueError as error:
            problems.append((folder, f"skipped: {error}"))
            continue
        if label != unicodedata.normalize("NFC", folder.name):
            problems.append((folder, f"skipped: folder name is not a label as saved; "
                                     f"rename it to {label!r}"))
            continue
        found.append((folder, label))
    return found


def transcript(label: str, text: str | None = None) -> str:
    """What a clip says: its sidecar's ``text``, else its label with ``_`` read as spaces."""
    if isinstance(text, str) and text.strip():
        return " ".join(unicodedata.normalize("NFC", text).split())
    return spoken_text(label)


def transcript_counts(texts) -> dict[str, int]:
    """Of a manifest's ``text`` column: distinct ``sentences``, spoken ``words`` (tokens) and
    the ``vocabulary`` (distinct words), case-folded."""
    texts = [" ".join(str(t).casefold().split()) for t in texts]
    words = [w for t in texts for w in t.split()]
    return {"sentences": len(set(texts)), "words": len(words), "vocabulary": len(set(words))}


def build_manifest(videos_root: str | os.PathLike) -> pd.DataFrame:
    """One row per clip under ``videos_root/<label>/``, sorted by label then clip.

    Columns: ``path`` (str), ``label``, ``clip``, the named sidecar fields,
    then any extra sidecar keys (sorted); unknown values are ``None``, but
    ``text`` is always the clip's :func:`transcript`. A clip without a
    ``source`` is its own recording: ``source`` is ``<label>/<clip>``.
    Dot-files, temporary ``.partial`` files and dot-folders are skipped; a
    missing or empty folder gives an empty frame with the columns. What cannot
    be used is listed, as ``(path, reason)``, in ``manifest.attrs["problems"]``.
    """
    root = Path(videos_root)
    problems: list[tuple[Path, str]] = []
    rows: list[dict] = []
    if root.is_dir():
        for folder, label in _label_folders(root, problems):
            rows.extend(_scan_label(folder, label, problems))
    columns = list(_MANIFEST_BASE + sidecar_fields())
    columns += sorted({key for row in rows for key in row} - set(columns))
    manifest = pd.DataFrame(rows, columns=columns).astype(object)
    manifest = manifest.where(manifest.notna(), None)
    if len(manifest):
        missing = manifest["source"].isna()
        manifest.loc[missing, "source"] = manifest.loc[missing, "label"] + "/" + manifest.loc[missing, "clip"]
        manifest["text"] = [transcript(label, text)
                            for label, text in zip(manifest["label"], manifest["text"])]
        manifest = manifest.sort_values(["label", "clip"], ignore_index=True)
    manifest.attrs["problems"] = problems
    return manifest
