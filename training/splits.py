"""Train / val / test splits that never let one recording or speaker leak across.

Clips cut from one ``source`` recording share a speaker, a session and often
neighbouring frames, so a model can recognise the recording instead of the
word. Every strategy therefore assigns whole *groups*: rows linked by a shared
``source`` (and, for ``speaker``, by a shared speaker) always land in one split.

Split indices are positions (0..N-1) into the manifest rows, sorted. Every
draw comes from ``numpy.random.default_rng(config.seed)``: the same rows and
config give the same split.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.cache import file_digest
from features.dataset import transcript_counts
from features.files import write_json_atomic
from training.config import SplitConfig

SPLITS = ("train", "val", "test")
STRATEGIES = ("stratified", "speaker", "holdout", "sentence")
DEMOGRAPHIC_COLUMNS = ("gender", "age_band")
UNKNOWN = "unknown"


def split_digests(rows: pd.DataFrame, splits: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """SHA-256 of the clip files of each split (sorted, without balancing repeats).

    Stored with a registry entry, so that an evaluation can tell which of its
    clips the entry was trained or validated on, even after a rename or copy.
    """
    paths = rows["path"].to_numpy()
    return {name: sorted({file_digest(paths[i]) for i in index}) for name, index in splits.items()}


def parse_group(spec: str, columns) -> dict[str, str]:
    """``"gender=male,age_band=40-64"`` -> ``{"gender": "male", "age_band": "40-64"}``.

    Raises ``ValueError`` naming the spec for bad syntax, a repeated key, or a
    column not among ``columns``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"group {spec!r}: expected 'column=value[,column=value...]', "
                         f"e.g. 'gender=male,age_band=40-64'")
    group: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"group {spec!r}: {part.strip()!r} is not 'column=value'")
        if key in group:
            raise ValueError(f"group {spec!r}: column {key!r} named twice")
        if key not in columns:
            raise ValueError(f"group {spec!r}: unknown column {key!r}; known: {sorted(columns)}")
        group[key] = value
    return group


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value).strip().casefold()


def group_mask(rows: pd.DataFrame, spec: str) -> np.ndarray:
    """(N,) bool: rows whose every named column equals the spec's value.

    Values compare as trimmed, case-folded text; an unknown (None) value never matches.
    """
    group = parse_group(spec, rows.columns)
    mask = np.ones(len(rows), dtype=bool)
    for column, value in group.items():
        mask &= np.array([_text(v) == value.casefold() for v in rows[column]], dtype=bool)
    return mask


def connected_groups(rows: pd.DataFrame, keys: tuple[str, ...]) -> np.ndarray:
    """(N,) int group id: rows sharing a value in any of ``keys`` are one group.

    Union-find over the rows; values compare as trimmed, case-folded text (as in
    :func:`group_mask`), so "Bed 4" and "bed 4 " are one speaker; missing values link nothing.
    """
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in keys:
        first: dict = {}
        for i, value in enumerate(rows[key]):
            text = _text(value)
            if text is None:
                continue
            j = first.setdefault(text, i)
            parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(len(rows))])
    return np.unique(roots, return_inverse=True)[1]


def _indices(assign: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.flatnonzero(assign == k).astype(np.int64) for k, name in enumerate(SPLITS)}


def _stratum(rows: pd.DataFrame, groups: np.ndarray) -> np.ndarray:
    """Per group, its rarest label: rare classes decide where mixed groups go."""
    counts = rows["label"].value_counts()
    strata = {}
    for group, label in zip(groups, rows["label"]):
        best = strata.get(group)
        if best is None or (counts[label], label) < (counts[best], best):
            strata[group] = label
    return np.array([strata[g] for g in range(groups.max() + 1)], dtype=object)


def _stratified(rows: pd.DataFrame, groups: np.ndarray, fractions: dict[str, float],
                rng: np.random.Generator) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per row; per class, whole groups at a time."""
    strata = _stratum(rows, groups)
    group_split = np.zeros(len(strata), dtype=np.int64)
    for label in sorted(set(strata)):
        members = rng.permutation(np.flatnonzero(strata == label))
        wanted = {k: max(1, round(f * len(members))) for k, f in fractions.items() if f > 0}
        if len(members) < sum(wanted.values()) + 1:
            clips = int((rows["label"] == label).sum())
            raise ValueError(
                f"class {label!r}: {clips} clip(s) from {len(members)} source recording(s); "
                f"needs at least {sum(wanted.values()) + 1} recordings to put one in train and "
                f"in each of {sorted(wanted)}; record more of it or lower the fractions")
        start = 0
        for name, count in wanted.items():
            group_split[members[start:start + count]] = SPLITS.index(name)
            start += count
    return group_split[groups]


def _by_size(groups: np.ndarray, fractions: dict[str, float], rng: np.random.Generator,
             what: str) -> np.ndarray:
    """Split index per row; shuffled whole groups fill val/test up to their share of clips."""
    wanted = [name for name, fraction in fractions.items() if fraction > 0]
    n_groups = int(groups.max()) + 1
    if n_groups < len(wanted) + 1:
        raise ValueError(f"{what} split: only {n_groups} {what}(s); needs at least "
                         f"{len(wanted) + 1} so that train and {wanted} each get one")
    sizes = np.bincount(groups)
    order = list(rng.permutation(n_groups))
    group_split = np.zeros(n_groups, dtype=np.int64)
    for done, name in enumerate(wanted):
        target, taken = fractions[name] * len(groups), 0
        # Leave a group for train and for every split still to fill.
        keep = len(wanted) - done
        while len(order) > keep and (taken == 0 or taken + sizes[order[0]] / 2 <= target):
            group = order.pop(0)
            group_split[group] = SPLITS.index(name)
            taken += sizes[group]
    return group_split[groups]


def _require_speakers(rows: pd.DataFrame) -> None:
    names = rows["clip"] if "clip" in rows else rows.index
    speakers = rows["speaker"] if "speaker" in rows else [None] * len(rows)
    unknown = [str(c) for c, s in zip(names, speakers) if _text(s) is None]
    if unknown:
        raise ValueError(f"split strategy 'speaker': {len(unknown)} clip(s) have no speaker, "
                         f"e.g. {unknown[:3]}; fill 'speaker' in their sidecars")


def _check_fractions(config: SplitConfig) -> None:
    for name in ("val_fraction", "test_fraction"):
        value = getattr(config, name)
        if not 0 <= value < 1:
            raise ValueError(f"split.{name} {value}: must be in [0, 1)")
    if config.val_fraction + config.test_fraction >= 1:
        raise ValueError(f"split fractions val {config.val_fraction} + test {config.test_fraction} "
                         f"leave nothing to train on; keep their sum below 1")


def _holdout(rows: pd.DataFrame, groups: np.ndarray, config: SplitConfig,
             rng: np.random.Generator) -> np.ndarray:
    specs = {"val": config.val_holdout, "test": config.test_holdout}
    if not any(specs.values()):
        raise ValueError("split strategy 'holdout' needs split.val_holdout and/or split.test_holdout, "
                         "e.g. 'gender=male,age_band=40-64'")
    assign = np.zeros(len(rows), dtype=np.int64)
    for name, spec in specs.items():
        if not spec:
            continue
        mask = group_mask(rows, spec)
        if not mask.any():
            raise ValueError(f"split.{name}_holdout {spec!r} matches no clip; "
                             f"{_describe_groups(rows, parse_group(spec, rows.columns))}")
        straddling = set(groups[mask]) & set(groups[~mask])
        if straddling:
            source = rows["source"].iloc[int(np.flatnonzero(np.isin(groups, list(straddling)))[0])]
            raise ValueError(f"split.{name}_holdout {spec!r}: source {source!r} has clips in and out "
                             f"of the group; fix the sidecars so one recording has one speaker")
        if (assign[mask] != 0).any():
            raise ValueError(f"split holdouts {config.val_holdout!r} and {config.test_holdout!r} "
                             f"overlap; a clip can be held out once")
        assign[mask] = SPLITS.index(name)
    rest = np.flatnonzero(assign == 0)
    fractions = {name: getattr(config, f"{name}_fraction") for name in ("val", "test")
                 if not specs[name]}
    if fractions:
        remaining = rows.iloc[rest].reset_index(drop=True)
        inner = _stratified(remaining, np.unique(groups[rest], return_inverse=True)[1],
                            fractions, rng)
        assign[rest] = inner
    return assign


def _describe_groups(rows: pd.DataFrame, group: dict[str, str]) -> str:
    seen = {c: sorted({_text(v) or UNKNOWN for v in rows[c]}) for c in group}
    return "values present: " + "; ".join(f"{c}: {', '.join(v)}" for c, v in seen.items())


def make_splits(rows: pd.DataFrame, config: SplitConfig) -> dict[str, np.ndarray]:
    """Sorted row positions of ``train``, ``val`` and ``test`` under ``config.strategy``.

    ``stratified``: per class (a mixed recording counts as its rarest label),
    ``val_fraction`` / ``test_fraction`` of the source recordings, at least one
    each. ``speaker``: whole speakers (and recordings) to val and test until
    each holds about its fraction of the clips. ``holdout``: clips matching
    ``val_holdout`` / ``test_holdout`` go there, the rest to train, with a
    missing val (or test) drawn stratified from the rest. ``sentence``: whole
    transcripts (and recordings) to val and test until each holds about its
    fraction of the clips, so no sentence is both trained and tested on (for
    sentence readers, which need no class in train). Raises ``ValueError``
    naming the class, group or setting when a split would be empty.
    """
    if config.strategy == "auto":     # a model kind's own choice; without one, per class
        config = replace(config, strategy="stratified")
    if config.strategy not in STRATEGIES:
        raise ValueError(f"split.strategy {config.strategy!r}: choose one of {STRATEGIES}")
    missing = [c for c in ("label", "source") if c not in rows.columns]
    if missing or len(rows) == 0:
        raise ValueError(f"cannot split {len(rows)} rows with columns {list(rows.columns)}: "
                         f"need clips with 'label' and 'source'")
    _check_fractions(config)
    rows = rows.reset_index(drop=True)
    rng = np.random.default_rng(config.seed)
    fractions = {"val": config.val_fraction, "test": config.test_fraction}
    if config.strategy == "stratified":
        assign = _stratified(rows, connected_groups(rows, ("source",)), fractions, rng)
    elif config.strategy == "speaker":
        _require_speakers(rows)
        assign = _by_size(connected_groups(rows, ("speaker", "source")), fractions, rng, "speaker")
    elif config.strategy == "sentence":
        assign = _by_size(connected_groups(rows, ("text", "source")), fractions, rng, "sentence")
    else:
        assign = _holdout(rows, connected_groups(rows, ("source",)), config, rng)
    splits = _indices(assign)
    for name, index in splits.items():
        if len(index) == 0 and (name == "train" or fractions.get(name, 0) > 0
                                or getattr(config, f"{name}_holdout", None)):
            raise ValueError(f"split {name!r} would be empty with {config}; add clips or change it")
    if config.strategy != "sentence":
        _check_train_classes(rows, splits["train"], config)
    return splits


def fewest_recordings(rows: pd.DataFrame) -> int:
    """Source recordings (groups of linked clips) a stratified split deals out for the label
    with the fewest: a group goes where its rarest label sends it, so a label counts the
    groups it is the rarest label of (one always beside a rarer label follows that one's)."""
    rows = rows.reset_index(drop=True)
    strata = _stratum(rows, connected_groups(rows, ("source",)))
    return int(pd.Series(strata).value_counts().min())


def cross_validation_folds(rows: pd.DataFrame, folds: int, seed: int = 0) -> list[np.ndarray]:
    """``folds`` sorted arrays of held-out positions, together every row once. Whole source
    recordings are dealt, rarest class first, each (largest first, ties shuffled) to the
    fold holding the fewest rows of its class so far (then the fewest rows), so every fold
    holds about 1/folds of each class and no recording is both trained and tested on."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    rows = rows.reset_index(drop=True)
    groups = connected_groups(rows, ("source",))
    strata = _stratum(rows, groups)          # per group, its rarest label
    sizes = np.bincount(groups)
    rng = np.random.default_rng(seed)
    counts = rows["label"].value_counts()
    fold_of_group, total = np.zeros(len(strata), int), np.zeros(folds, int)
    for label in sorted(set(strata), key=lambda label: (counts[label], label)):
        owned = rng.permutation(np.flatnonzero(strata == label))
        held = np.zeros(folds, int)
        for group in sorted(owned, key=lambda g: -sizes[g]):
            fold = min(range(folds), key=lambda f: (held[f], total[f]))
            fold_of_group[group] = fold
            held[fold] += sizes[group]
            total[fold] += sizes[group]
    fold = fold_of_group[groups]
    return [np.flatnonzero(fold == f) for f in range(folds)]


def _check_train_classes(rows: pd.DataFrame, train: np.ndarray, config: SplitConfig) -> None:
    absent = sorted(set(rows["label"]) - set(rows["label"].iloc[train]))
    if absent:
        raise ValueError(f"split strategy {config.strategy!r} leaves class(es) {absent} with no "
                         f"training clip; record them with more speakers or change the split")


def _counts(values) -> dict[str, int]:
    series = pd.Series([UNKNOWN if _text(v) is None else str(v) for v in values], dtype=object)
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def split_analysis(rows: pd.DataFrame, splits: dict[str, np.ndarray]) -> dict:
    """Counts per split: clips, classes, speakers, sources, sentences and words
    (:func:`features.dataset.transcript_counts`), gender and age band.

    ``leaks`` lists speakers and sources found in more than one split
    (empty when the split is group-aware), as trimmed, case-folded text, the way
    the splits group them. Unknown values count as ``unknown``.
    """
    rows = rows.reset_index(drop=True)
    analysis: dict = {"total": len(rows), "sizes": {}, "classes": {}, "speakers": {},
                      "sources": {}, "transcripts": {},
                      "groups": {c: {} for c in DEMOGRAPHIC_COLUMNS}}
    owners: dict[str, dict[str, set]] = {"speaker": {}, "source": {}}
    for name, index in splits.items():
        part = rows.iloc[np.asarray(index, dtype=np.int64)]
        analysis["sizes"][name] = len(part)
        analysis["classes"][name] = _counts(part["label"])
        analysis["speakers"][name] = _counts(part.get("speaker", [None] * len(part)))
        analysis["sources"][name] = int(part["source"].nunique())
        analysis["transcripts"][name] = transcript_counts(part.get("text", part["label"]))
        for column in DEMOGRAPHIC_COLUMNS:
            analysis["groups"][column][name] = _counts(part.get(column, [None] * len(part)))
        for column, seen in owners.items():
            for value in part.get(column, []):
                if _text(value) is not None:
                    seen.setdefault(_text(value), set()).add(name)
    analysis["leaks"] = {column: sorted(v for v, where in seen.items() if len(where) > 1)
                         for column, seen in owners.items()}
    return analysis


def write_split_analysis(path: str | os.PathLike, analysis: dict) -> Path:
    """Write ``analysis`` as JSON atomically; a folder ``path`` gets ``split_analysis.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "split_analysis.json"
    return write_json_atomic(path, analysis)
