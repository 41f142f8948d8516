"""The PySide6 window. Importing this package first makes PySide6 6.12 safe on CPython 3.11.

PySide6 6.12 drops one reference to ``True`` on every ``Signal.emit`` (and
some slot calls drop one to ``None``) -- emit returns the singleton without
owning a reference. CPython 3.12 made these singletons immortal, so the slip is
harmless there; on 3.11 the interpreter aborts with "bool_dealloc: deallocating
True or False" after a few thousand emits, i.e. within minutes of live video.
:func:`pin_singletons` gives True, False and None a reference count so large
that they never reach zero, which is what 3.12 does by design.
"""
from __future__ import annotations

import ctypes
import sys

_PINNED_REFERENCES = 1 << 40


def pin_singletons() -> None:
    """Make True, False and None effectively immortal on CPython < 3.12 (no-op elsewhere)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    if getattr(pin_singletons, "done", False):
        return
    for singleton in (True, False, None):
        # ob_refcnt is the first field of every PyObject in release builds of CPython
        ctypes.c_ssize_t.from_address(id(singleton)).value += _PINNED_REFERENCES
    pin_singletons.done = True


pin_singletons()
