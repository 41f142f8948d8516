"""Whether an entry's weights file fits its card, told without loading the model.

A ``.safetensors`` file is a little-endian u64 header length, a JSON header
(each tensor's dtype, shape and byte offsets) and the data. Its header says
how long the file must be and which tensors it holds, so a file cut short, a
corrupt header or tensors the card's model does not have are found by reading
the header alone and comparing it with the card: with the digest of the tensors'
names and shapes written into the card with the weights (:func:`tensors_digest`),
else (older cards, or a digest that differs, to say what differs) with the model
the card's kind builds on the ``meta`` device (no memory, no initialisation, but
the kind's libraries imported: torchvision for R(2+1)D). Answers are kept per file
(path, inode, size, modification time), so listing the registry again costs
a ``stat`` per entry.
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
from functools import lru_cache
from pathlib import Path

import torch

from training.kinds import get_kind
from training.kinds.base import read_state_dict

DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
HEADER_BYTES = 8        # the header's length, before the header


def state_shapes(state: dict) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of a state dict."""
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def tensors_digest(shapes: dict[str, tuple[int, ...]]) -> str:
    """A short digest of ``{tensor name: shape}``, the same for a model's state dict and for
    the header of the weights file it was saved to."""
    text = json.dumps(sorted((name, list(shape)) for name, shape in shapes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def weights_problem(weights: str | Path, kind: str, arch_args: dict,
                    digest: str = "") -> str | None:
    """Why the weights file ``weights`` cannot load into the ``kind`` model ``arch_args``
    build (cut short, corrupt, tensors missing or of other shapes), or None when it fits.
    ``digest`` is the card's :func:`tensors_digest`: a file whose tensors match it fits
    without the model being built.

    A ``.safetensors`` file is judged by its header; a legacy ``torch.save`` file is read
    (``weights_only``). Bytes changed inside the data are not found: nothing records them.
    """
    path = Path(weights)
    try:
        stat = path.stat()
    except OSError as error:
        return f"{path.name} cannot be read: {error.strerror or error}"
    return _problem(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, kind,
                    json.dumps(arch_args, sort_keys=True, default=str), digest)


@lru_cache(maxsize=256)
def _problem(path: str, inode: int, size: int, mtime_ns: int, kind: str,
             args_json: str, digest: str) -> str | None:
    try:
        found = (header_shapes(path, size) if path.endswith(".safetensors")
                 else state_shapes(read_state_dict(path)))
        if digest and tensors_digest(found) == digest:
            return None
        expected = _model_shapes(kind, args_json)
    except ValueError as error:
        return str(error)
    except OSError as error:
        return f"{Path(path).name} cannot be read: {error.strerror or error}"
    return _mismatch(Path(path).name, kind, found, expected)


def header_shapes(path: str | Path, size: int | None = None) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` from a safetensors file's header, after checking that the
    file is as long as the header says; ``ValueError`` saying what is wrong."""
    path = Path(path)
    size = path.stat().st_size if size is None else size
    if size < HEADER_BYTES:
        raise ValueError(f"{path.name} is cut short: {size} bytes, not even a header")
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(HEADER_BYTES))
        if HEADER_BYTES + length > size:
            raise ValueError(f"{path.name} is cut short: its header alone needs "
                             f"{HEADER_BYTES + length} bytes, the file has {size}")
        try:
            header = json.loads(file.read(length))
        except ValueError:
            raise ValueError(f"{path.name} is corrupt: its header is not readable") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is corrupt: its header is not a table of tensors")
    header.pop("__metadata__", None)
    shapes, end = {}, 0
    for name, info in header.items():
        try:
            begin, stop = (int(offset) for offset in info["data_offsets"])
            shape = tuple(int(d) for d in info["shape"])
            width = DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path.name} is corrupt: tensor {name!r} is badly described") from None
        if stop - begin != width * math.prod(shape):
            raise ValueError(f"{path.name} is corrupt: tensor {name!r} takes {stop - begin} "
                             f"bytes for its shape {shape}")
        shapes[name], end = shape, max(end, stop)
    data = size - HEADER_BYTES - length
    if end > data:
        raise ValueError(f"{path.name} is cut short: {size} bytes of the {size - data + end} "
                         "its header describes")
    if end < data:
        raise ValueError(f"{path.name} is corrupt: {data - end} bytes after its last tensor")
    return shapes


@lru_cache(maxsize=64)
def _model_shapes(kind: str, args_json: str) -> dict[str, tuple[int, ...]]:
    """The state dict's shapes of the ``kind`` model built from ``args_json``, on ``meta``."""
    try:
        with torch.device("meta"):
            model = get_kind(kind).build(json.loads(args_json))
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"the card's {kind} arguments build no model: {error}") from error
    return state_shapes(model.state_dict())


def _mismatch(file_name: str, kind: str, found: dict, expected: dict) -> str | None:
    """What differs between the file's tensors and the model's, or None."""
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    reshaped = [f"{name} is {list(found[name])}, not {list(shape)}"
                for name, shape in expected.items() if name in found and found[name] != shape]
    parts = ([f"{len(missing)} tensors missing ({first_names(missing)})"] if missing else []) + (
        [f"{len(extra)} tensors the model lacks ({first_names(extra)})"] if extra else []) + (
        [f"{len(reshaped)} of other shapes ({first_names(reshaped)})"] if reshaped else [])
    return f"{file_name} does not fit the card's {kind} model: {'; '.join(parts)}" if parts else None


def first_names(items: list[str], shown: int = 2) -> str:
    """The first ``shown`` of ``items``, with '...' where there are more."""
    return ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")
