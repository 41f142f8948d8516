"""Training configuration: frozen dataclasses with defaults, merged once at the entry point.

``training/config.yaml`` documents every field and holds the shared defaults; a kind's
measured settings (``training/kinds/<kind>.yaml``, where it has one) are its defaults.
:func:`load_config` layers them, then a given YAML file, then ``--flag`` overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"
KIND_SETTINGS = Path(__file__).resolve().parent / "kinds"
# A clip classifier with a class a stratified split would deal fewer recordings than this is
# cross-validated instead (a split would hold out a third of that class or more).
SMALL_CLASS = 6


def repo_path(value: str | Path) -> Path:
    """A configured path: absolute as given, relative to the repository root otherwise."""
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


@dataclass(frozen=True)
class DataConfig:
    """Where clips and features come from, and how clips become model inputs.

    ``sequence_length``: frames a classifier's landmark sequence is resampled to
    (a sentence reader reads every frame); ``crop_frames`` / ``crop_size``: the
    mouth crops of the video model; ``inputs``: what a sentence reader reads,
    ``landmarks``, ``crops`` or ``both``; ``relative``: ``none``, or ``clip`` to
    express the landmark kinds' features relative to each clip's rest; ``appearance``:
    k > 0 adds the mouth's appearance (k x k DCT coefficients of the mouth crop) to the
    landmark kinds' channels every frame, 0 reads the landmark features alone;
    ``leave_out``: feature groups the landmark kinds do without
    (:data:`features.frame_features.FEATURE_GROUPS`: geometry, lip_points, colour,
    blendshapes).
    """

    videos: str = "videos"
    cache: str = ".cache/features"
    sequence_length: int = 32
    velocities: bool = True
    crop_frames: int = 24
    crop_size: int = 112
    workers: int = 2
    inputs: str = "landmarks"
    relative: str = "none"
    appearance: int = 0
    leave_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitConfig:
    """How clips are split into train / val / test.

    ``strategy``: ``auto`` (the model kind's own: ``stratified`` for clip
    classifiers, ``sentence`` for sentence readers), ``stratified`` (random, per
    class), ``speaker`` (no speaker in two splits), ``sentence`` (no transcript
    in two splits) or ``holdout`` (``val_holdout`` / ``test_holdout`` name a
    demographic group such as ``"gender=male,age_band=40-64"``). Clips cut
    from one source recording always stay in one split.
    """

    strategy: str = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_holdout: str | None = None
    test_holdout: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class BalanceConfig:
    """Class balancing: ``sampling`` none | inverse | inverse_sqrt; ``loss``
    cross_entropy | focal; ``balance_source`` duplicates clips of that group
    (e.g. ``"gender=male,age_band=18-39"``) for under-represented classes."""

    sampling: str = "none"
    balance_source: str | None = None
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation honest for lips: time warp and frame drop (landmark_cnn), speed change,
    time masking, word crops and appearance drop (landmark_ctc: the probability that a
    clip's appearance channels read as their mean, so that the reader does not lean on
    how one person's mouth looks), noise and mirroring (both)."""

    time_warp: float = 0.15
    noise: float = 0.02
    frame_drop: float = 0.05
    mirror: float = 0.5
    speed: float = 0.1
    time_mask: float = 0.1
    word_crop: float = 0.5
    appearance_drop: float = 0.0


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a cosine schedule, label smoothing, clipping, early stopping.

    ``length_groups`` > 0 (sentence readers): each training batch holds clips of like
    length, sorted within groups of that many batches (0: batches as the shuffle deals).
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    patience: int = 12
    length_groups: int = 0
    seed: int = 0
    amp: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    model: str = "landmark_cnn"
    arch: dict = field(default_factory=dict)
    pretrained: str | None = None
    unfreeze_epochs: tuple[int, ...] = (0, 3, 6, 9)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    registry: str = "models"
    entry_name: str | None = None
    targets: dict = field(default_factory=lambda: {"accuracy": 0.80, "macro_f1": 0.75})


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {sorted(unknown)}; "
                         f"known: {sorted(known)}")
    defaults = cls()
    kwargs = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        if is_dataclass(default) and isinstance(value, dict):
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _read_settings(path: Path) -> dict:
    """A YAML file's settings, checked against :class:`TrainConfig`'s fields."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level")
    _build(TrainConfig, values, str(path))
    return values


def _merged(base: dict, over: dict) -> dict:
    """``over`` on ``base``, section by section: a mapping in both merges key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merged(merged[key], value)
        merged[key] = value
    return merged


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> TrainConfig:
    """The settings of a run: ``training/config.yaml``, then the kind's own defaults
    (``training/kinds/<kind>.yaml`` where it exists; the kind is the overrides' ``model``,
    else ``path``'s, else config.yaml's), then the YAML file ``path``, each merged key by
    key, then dotted overrides like ``{"optim.epochs": 5}`` (``None``: not given), each
    replacing the one setting it names."""
    shared = _read_settings(DEFAULT_CONFIG)
    given = {}
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG:
        given = _read_settings(Path(path))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    kind = overrides.get("model", given.get("model", shared.get("model")))
    kind_file = KIND_SETTINGS / f"{kind}.yaml"
    values = _merged(shared, _read_settings(kind_file) if kind_file.is_file() else {})
    values = _merged(values, given)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _build(TrainConfig, values, str(path or "config"))


def kind_defaults(kind: str) -> TrainConfig:
    """What ``python -m training.run --model KIND`` trains with, flags aside (the Train
    tab's starting values)."""
    return load_config(None, {"model": kind})


def saved_config(values: dict, where: str) -> TrainConfig:
    """A config saved as ``asdict(config)`` (a run's ``config.json``), exactly as it was:
    no defaults file is read under it."""
    return _build(TrainConfig, values, where)
