"""The model kinds: one module each, found by name, imported only when used.

A kind is a module of this package that defines ``KIND``, an instance of
:class:`training.kinds.base.ModelKind`: its frozen configs, its model builder,
how a clip becomes the model's input, its dataset and the fields it adds to
a registry card. Adding a kind means adding one module here.

This module imports no torch, so the command lines can offer the kinds
(:data:`KINDS`) without loading a model stack.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.kinds.base import ModelKind

_NOT_KINDS = {"base", "classifier"}
DEFAULT_KIND = "landmark_cnn"

KINDS: tuple[str, ...] = tuple(sorted(
    info.name for info in pkgutil.iter_modules(__path__)
    if not info.name.startswith("_") and info.name not in _NOT_KINDS))


@cache
def get_kind(name: str) -> "ModelKind":
    """The kind called ``name``; ``ValueError`` naming the known ones for any other."""
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; known: {list(KINDS)}")
    kind = importlib.import_module(f"{__name__}.{name}").KIND
    if kind.name != name:
        raise RuntimeError(f"training/kinds/{name}.py defines a kind named {kind.name!r}")
    return kind
