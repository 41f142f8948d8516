"""Writing files so that a crash never leaves half of one.

Everything the project writes for a user -- clips, sidecars, cache entries,
checkpoints, reports, cards -- goes to a hidden temporary name beside its
target, is flushed to disk, then renamed over the target in one step.
Temporary names start with a dot and contain ``.partial``; scanners skip them.

A patient's recordings, and everything made from them, are health data: what
is written here is readable by its user only (files ``0600``, the folders
created for them ``0700``), whatever the umask.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dirs(path: str | os.PathLike) -> Path:
    """Create folder ``path`` and any missing parent, each user-only (``0700``); folders that
    exist already are left as they are."""
    target = folder = Path(path)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue         # made meanwhile by another writer: theirs to keep as it is
        os.chmod(folder, PRIVATE_DIR)    # mkdir's mode is narrowed by the umask, never widened
    return target


def temporary_sibling(path: str | os.PathLike) -> Path:
    """``dir/.name.<pid>.partial.ext`` for ``dir/name.ext``; the suffix is kept for
    writers that pick a format from it (OpenCV, Matplotlib)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or folder to disk; best effort where the OS refuses (folders on some systems)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` (user-only), on error
    it is removed."""
    path = Path(path)
    private_dirs(path.parent)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any, **options) -> Path:
    """Write ``data`` as indented UTF-8 JSON atomically; ``options`` go to ``json.dumps``."""
    options = {"indent": 2, "ensure_ascii": False, **options}
    return write_text_atomic(path, json.dumps(data, **options) + "\n")
