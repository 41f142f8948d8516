"""From the clip folder's manifest to one kind's examples.

:func:`load_dataset` fills the feature cache and turns each clip into one
fixed-size example of the chosen kind (:meth:`training.kinds.base.ModelKind.example`,
the very function live prediction uses), e.g. a (C, L) float32 landmark
sequence or a (crop_frames, S, S) uint8 mouth-crop stack. Only that kind's
examples are kept in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from features.cache import FeatureCache, extractor_key
from features.extract import extract_many
from features.frame_features import FeatureConfig


@dataclass(frozen=True)
class ClipSet:
    """The usable clips of a manifest as one kind's examples, row-aligned with ``rows``.

    ``labels``: (N,) int64 indices into ``classes`` (sorted label names);
    ``examples``: (N, ...) the kind's raw examples (:meth:`ModelKind.example`),
    e.g. (N, C, L) float32 sequences or (N, T, S, S) uint8 crops; ``names``:
    their channel names (``()`` for crops); ``rows``: the manifest rows kept,
    index 0..N-1; ``failed``: video path -> reason for every clip dropped.
    """

    kind: str
    rows: pd.DataFrame
    labels: np.ndarray
    classes: tuple[str, ...]
    examples: np.ndarray
    names: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)


def _fill_cache(paths: list, cache: FeatureCache, workers: int,
                feature_config: FeatureConfig, on_progress) -> dict[str, str]:
    if extractor_key(feature_config) != cache.extractor:
        raise ValueError(f"feature cache {cache.root} was opened with another FeatureConfig than "
                         f"the one given; pass the same config to both")
    summary = extract_many([Path(p) for p in paths], cache, feature_config, workers, on_progress)
    return {str(path): reason for path, reason in summary.failed.items()}


def load_dataset(manifest: pd.DataFrame, cache: FeatureCache, kind: str, spec,
                 workers: int = 2,
                 on_progress: Callable[[object, str | None], None] | None = None,
                 feature_config: FeatureConfig = FeatureConfig()) -> ClipSet:
    """Extract (or read from ``cache``) every manifest clip and build a :class:`ClipSet`
    of ``kind``'s examples as ``spec`` (the kind's input spec) describes them.

    A clip that cannot be read, has no face or gives no example is dropped
    and named in ``failed``; the rest go on. ``on_progress(path, error)``
    follows :func:`features.extract.extract_many`. Raises ``ValueError``
    when no clip is usable.
    """
    from training.kinds import get_kind

    model_kind = get_kind(kind)
    failed = _fill_cache(list(manifest["path"]), cache, workers, feature_config, on_progress)
    keep, examples, names = [], [], None
    for position, path in enumerate(manifest["path"]):
        path = str(Path(path))
        if path in failed:
            continue
        try:
            clip = cache.load(path, crops=model_kind.uses_crops(spec))
            if clip is None:
                raise ValueError("missing from the feature cache after extraction")
            example, clip_names = model_kind.example(clip, spec)
            if names is not None and clip_names != names:
                raise ValueError("feature names differ from the other clips' (stale cache?)")
            names = clip_names
        except (ValueError, OSError, KeyError) as error:
            failed[path] = f"{path}: {error}"
            continue
        keep.append(position)
        examples.append(example)
    if not keep:
        raise ValueError(f"none of the {len(manifest)} clips is usable; first problems: "
                         f"{list(failed.values())[:3]}")
    rows = manifest.iloc[keep].reset_index(drop=True)
    classes = tuple(sorted(set(rows["label"])))
    labels = np.array([classes.index(label) for label in rows["label"]], dtype=np.int64)
    return ClipSet(kind, rows, labels, classes, _stack(examples), names or (), failed)


def _stack(examples: list) -> np.ndarray:
    """One array of equal-shaped examples; an object array (one cell a clip) otherwise."""
    if all(isinstance(e, np.ndarray) and e.shape == examples[0].shape for e in examples):
        return np.stack(examples)
    cells = np.empty(len(examples), dtype=object)
    for i, example in enumerate(examples):
        cells[i] = example
    return cells
