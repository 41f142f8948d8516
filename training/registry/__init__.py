"""The model registry: one self-describing folder per trained model.

An entry ``<root>/<name>/`` holds ``weights.safetensors`` and ``card.json``
(a :class:`training.card.Card`: kind, arch args, classes in order, the kind's
input spec, data summary, metrics, created_at, parent) plus report files. Entries are
written into a hidden temporary folder and renamed into place, so a killed
writer never leaves a listed entry. ``<root>/active.json`` maps each kind to
its active entry. Entries shipped with the app live in ``<root>/assets/entries/``:
they are listed, loaded and made active like any other (an entry of the same
name in ``<root>`` comes first) but never deleted. :func:`load_entry` is the one loader of the app and the
evaluator; it never unpickles code. A folder whose card cannot be read, or
whose weights do not fit its card (cut short, corrupt, other tensors: told from
the file's header, :mod:`training.registry.weights`), is not an entry but a
:class:`DamagedEntry`, listed with its reason and what to do; :func:`active_problem`
says why the active entry of a kind cannot be used. Its command line is
:mod:`training.registry.cli`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import torch
from safetensors.torch import save_file
from torch import nn

from features.files import PRIVATE_DIR, PRIVATE_FILE, fsync_path, private_dirs, write_json_atomic
from training.card import WEIGHTS_FILE, Card, CardError
from training.kinds import get_kind
from training.kinds.base import default_device, read_state_dict
from training.registry.weights import first_names, state_shapes, tensors_digest, weights_problem

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "models"
CARD_FILE = "card.json"
ACTIVE_FILE = "active.json"
CLIPS_FILE = "clips.json"
RESERVED_NAMES = {"assets", ACTIVE_FILE}
SHIPPED_DIR = Path("assets") / "entries"       # entries that come with the app, read-only
LEGACY_WEIGHTS = ("weights.pt", "weights.pth")
TEMP_PREFIXES = (".tmp-", ".del-")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RegistryEntry:
    """A listed entry: its folder and its card; ``shipped``: it came with the app."""

    name: str
    path: Path
    card: Card
    shipped: bool = False


@dataclass(frozen=True)
class DamagedEntry:
    """A folder of the registry that cannot be used, and why (naming the file)."""

    name: str
    path: Path
    reason: str
    shipped: bool = False

    @property
    def folder(self) -> str:
        """The folder as ``models/<name>`` (a shipped one ``models/assets/entries/<name>``)."""
        return "/".join(self.path.parts[-4 if self.shipped else -2:])

    @property
    def advice(self) -> str:
        """What to do about it."""
        if self.shipped:
            return f"it came with the app: copy the folder {self.folder} from a fresh copy of the app"
        return f"train it again, or delete the folder {self.folder}"


@dataclass(frozen=True)
class LoadedEntry:
    """A loaded entry: its card and its model in eval mode on ``device``."""

    name: str
    path: Path
    card: Card
    model: nn.Module
    device: torch.device


def default_entry_name(kind: str, now: datetime | None = None) -> str:
    """``<kind>-<YYYYmmdd-HHMMSS>`` in local time."""
    return f"{kind}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(f"bad registry entry name {name!r}: use letters, digits, '.', '_', '-', "
                         f"not starting with '.' and not one of {sorted(RESERVED_NAMES)}")
    return name


def _to_json(value):
    """NumPy scalars/arrays and paths, as the card's JSON values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"card value of type {type(value).__name__} is not JSON: {value!r}")


def _write_json(path: Path, data: dict) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    write_json_atomic(path, data, sort_keys=True, default=_to_json)


def _weights_file(entry: Path) -> Path | None:
    for name in (WEIGHTS_FILE, *LEGACY_WEIGHTS):
        if (entry / name).is_file():
            return entry / name
    return None


def read_card(entry: str | Path) -> Card:
    """The card of an entry folder, checked enough that :func:`load_entry` can rebuild it;
    ``ValueError`` naming the file and what is wrong with it."""
    path = Path(entry) / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CardError(f"{path}: unreadable card: {error}") from error
    card = Card.from_json(data, str(path))
    if _weights_file(Path(entry)) is None:
        raise CardError(f"{entry}: no {WEIGHTS_FILE} (or {' / '.join(LEGACY_WEIGHTS)})")
    return card


def check_entry(entry: str | Path) -> Card:
    """The card of an entry folder (:func:`read_card`) whose weights file fits it
    (:func:`~training.registry.weights.weights_problem`); ``ValueError`` saying what is wrong."""
    card = read_card(entry)
    problem = weights_problem(_weights_file(Path(entry)), card.kind, card.arch_args, card.tensors)
    if problem:
        raise CardError(problem)
    return card


def remove_stale_temps(root: str | Path) -> list[Path]:
    """Delete temporary folders (``.tmp-*-<pid>``, ``.del-*-<pid>``) of processes now gone.

    A ``.del-`` folder whose entry is missing is an entry being replaced when its writer
    died (between moving the old one aside and the new one in): it is put back, not
    deleted, so a replaced entry is never lost."""
    removed = []
    for path in sorted(Path(root).glob(".*-*"), key=lambda p: not p.name.startswith(".del-")):
        name, _, pid = path.name.rpartition("-")
        if not (path.is_dir() and path.name.startswith(TEMP_PREFIXES) and pid.isdigit()
                and not psutil.pid_exists(int(pid))):
            continue
        entry = Path(root) / name.split("-", 1)[1]
        if path.name.startswith(".del-") and not entry.exists():
            os.rename(path, entry)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _fill_folder(folder: Path, model: nn.Module, card: Card,
                 extra_files: dict[str, bytes | str | Path]) -> None:
    for file_name, content in extra_files.items():
        if file_name in (CARD_FILE, WEIGHTS_FILE) or Path(file_name).name != file_name:
            raise ValueError(f"bad extra file name {file_name!r}")
        target = folder / file_name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copyfile(content, target)
        os.chmod(target, PRIVATE_FILE)
        fsync_path(target)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    problem = weights_problem(folder / WEIGHTS_FILE, card.kind, card.arch_args)
    if problem:
        raise ValueError(f"the card does not describe the model to save: {problem}")
    os.chmod(folder / WEIGHTS_FILE, PRIVATE_FILE)
    fsync_path(folder / WEIGHTS_FILE)
    _write_json(folder / CARD_FILE, card.to_json())


def write_entry(root: str | Path, name: str | None, model: nn.Module, card: Card,
                extra_files: dict[str, bytes | str | Path] | None = None,
                replace_existing: bool = False) -> Path:
    """Write ``model`` and its ``card`` as entry ``name`` of ``root``; returns its folder.

    ``name`` defaults to :func:`default_entry_name`. The card's ``created_at``,
    ``name``, ``weights``, ``files`` (the extra files) and ``tensors`` (the digest of the
    model's tensors) are filled in. An
    existing entry is never overwritten, unless ``replace_existing`` (an entry
    kept up to date, such as a patient's few-shot one): then the new entry is
    complete before the old one is moved aside and deleted.
    """
    get_kind(card.kind)
    root = Path(root)
    name = _check_name(name or default_entry_name(card.kind))
    final = root / name
    if final.exists() and not replace_existing:
        raise FileExistsError(f"registry entry already exists: {final}")
    private_dirs(root)
    remove_stale_temps(root)
    extra_files = dict(extra_files or {})
    card = replace(card, name=name, weights=WEIGHTS_FILE, files=tuple(sorted(extra_files)),
                   tensors=tensors_digest(state_shapes(model.state_dict())),
                   created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    temp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(mode=PRIVATE_DIR)
    os.chmod(temp, PRIVATE_DIR)
    try:
        _fill_folder(temp, model, card, extra_files)
        if final.exists():
            _remove(root, final)
        os.rename(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_path(root)
    return final


def _remove(root: Path, path: Path) -> None:
    """Delete an entry folder: renamed aside first, so it is never listed half-deleted."""
    doomed = root / f".del-{path.name}-{os.getpid()}"
    shutil.rmtree(doomed, ignore_errors=True)
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def _scan(root: str | Path) -> tuple[list[RegistryEntry], list[DamagedEntry]]:
    entries, damaged, names = [], [], set()
    for folder, shipped in ((Path(root), False), (Path(root) / SHIPPED_DIR, True)):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if (not path.is_dir() or path.name.startswith(".") or path.name in RESERVED_NAMES
                    or path.name in names):
                continue
            names.add(path.name)
            try:
                entries.append(RegistryEntry(path.name, path, check_entry(path), shipped))
            except ValueError as error:
                damaged.append(DamagedEntry(path.name, path, str(error), shipped))
    return sorted(entries, key=lambda e: (e.card.created_at, e.name)), damaged


def list_entries(root: str | Path = DEFAULT_ROOT) -> list[RegistryEntry]:
    """Entries with a valid card and weights that fit it, oldest first; skips hidden/temp
    folders, ``assets`` and damaged folders (:func:`damaged_entries` lists those)."""
    return _scan(root)[0]


def damaged_entries(root: str | Path = DEFAULT_ROOT) -> list[DamagedEntry]:
    """Folders of ``root`` that look like entries but cannot be used (an unreadable card,
    weights missing, cut short, corrupt or of other shapes than the card's), with the reason."""
    return _scan(root)[1]


def _folder(root: str | Path, name: str) -> Path:
    """Where entry ``name`` of ``root`` is: its own folder, else a shipped one (which may not exist)."""
    own = Path(root) / name
    shipped = Path(root) / SHIPPED_DIR / name
    return shipped if not own.is_dir() and shipped.is_dir() else own


def is_shipped(path: str | Path) -> bool:
    """Whether the entry folder ``path`` is one that came with the app (under ``SHIPPED_DIR``)."""
    return Path(path).parent.parts[-len(SHIPPED_DIR.parts):] == SHIPPED_DIR.parts


def entry_path(root: str | Path, name: str) -> Path:
    """The folder of entry ``name`` in ``root`` (or shipped with it); FileNotFoundError if
    there is none."""
    path = _folder(root, _check_name(name))
    if not path.is_dir():
        raise FileNotFoundError(f"no registry entry {name!r} in {root}")
    return path


def active_names(root: str | Path = DEFAULT_ROOT) -> dict[str, str]:
    """``{kind: entry name}`` from ``active.json``; empty when there is none."""
    path = Path(root) / ACTIVE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: unreadable: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must map kind to entry name, got {type(data).__name__}")
    return data


def activate(root: str | Path, name: str) -> None:
    """Make entry ``name`` the active one of its kind; a damaged one is refused."""
    card = check_entry(entry_path(root, name))
    _write_json(Path(root) / ACTIVE_FILE, {**active_names(root), card.kind: name})


def active_entry(root: str | Path, kind: str) -> Path | None:
    """The folder of the active entry of ``kind``, or None (also when it is gone or damaged:
    :func:`active_problem` says why)."""
    name = active_names(root).get(kind)
    if not isinstance(name, str) or not _NAME.match(name):
        return None
    try:
        check_entry(_folder(root, name))
    except ValueError:
        return None
    return _folder(root, name)


def active_problem(root: str | Path, kind: str) -> str | None:
    """Why the entry saved as active for ``kind`` cannot be used, in a sentence saying what
    to do; None when it can, or when none is saved. For the app to say so instead of
    quietly using another model."""
    pointers = Path(root).name + "/" + ACTIVE_FILE
    try:
        name = active_names(root).get(kind)
    except (OSError, ValueError) as error:
        return (f"The saved choice of models ({pointers}) cannot be read "
                f"({_short(error, root)}): choose the model again")
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_NAMES:
        return f"The model saved in {pointers} for {kind}, {name!r}, is no entry name: choose the model again"
    path = _folder(root, name)
    if not path.is_dir():
        return (f"The saved model {name} is gone (no folder {Path(root).name}/{name}): "
                "choose another model, or train one")
    try:
        card = check_entry(path)
    except ValueError as error:
        damaged = DamagedEntry(name, path, str(error), is_shipped(path))
        return f"The saved model {name} is damaged: {_short(error, root)}. {damaged.advice[0].upper()}{damaged.advice[1:]}"
    if card.kind != kind:
        return f"The model saved for {kind}, {name}, is a {card.kind} model: choose the model again"
    return None


def _short(error: Exception, root: str | Path) -> str:
    """``error``'s text with the registry's folder named as ``models/...``, not in full."""
    return str(error).replace(str(Path(root).absolute().parent) + os.sep, "")


def delete(root: str | Path, name: str, force: bool = False) -> None:
    """Delete entry ``name``; an active entry only with ``force``, which clears its pointer."""
    path = entry_path(root, name)
    if is_shipped(path):
        raise ValueError(f"entry {name!r} ships with the app ({path}); it cannot be deleted")
    pointers = active_names(root)
    active = sorted(kind for kind, entry in pointers.items() if entry == name)
    if active and not force:
        raise ValueError(f"entry {name!r} is active for {active}; "
                         f"activate another first or delete with force")
    if active:
        kept = {kind: entry for kind, entry in pointers.items() if entry != name}
        _write_json(Path(root) / ACTIVE_FILE, kept)
    _remove(Path(root), path)


def training_digests(entry: str | Path) -> set[str] | None:
    """SHA-256 digests of the clips ``entry`` was trained or validated on, from its
    :data:`CLIPS_FILE`; None for an entry written without one."""
    path = Path(entry) / CLIPS_FILE
    if not path.is_file():
        return None
    splits = json.loads(path.read_text(encoding="utf-8"))
    return set(splits.get("train", [])) | set(splits.get("val", []))


def load_entry(path: str | Path, device: str | torch.device | None = None) -> LoadedEntry:
    """Rebuild an entry's model from its card, load its weights; eval mode on ``device``.

    Weights come from ``weights.safetensors``, or from a ``.pt``/``.pth`` read
    with ``weights_only=True`` so a pickle that runs code is refused. The model is built
    on the ``meta`` device and takes the loaded tensors as they are (``assign``), so its
    weights are in memory once, not twice (R(2+1)D-18's are 126 MB), and no time goes
    on a random initialisation.
    """
    path = Path(path)
    card = check_entry(path)
    with torch.device("meta"):
        model = get_kind(card.kind).build(card.arch_args)
    weights = _weights_file(path)
    try:
        model.load_state_dict(read_state_dict(weights), strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{weights}: weights do not fit the card's {card.kind} "
                         f"{card.arch_args}: {error}") from error
    unloaded = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()]
                if tensor.is_meta]
    if unloaded:
        raise ValueError(f"{weights}: the {card.kind} model has tensors its weights file cannot "
                         f"give ({first_names(unloaded)}): train the entry again")
    device = torch.device(device) if device is not None else default_device()
    return LoadedEntry(path.name, path, card, model.to(device).eval(), device)
