"""A registry entry's card: all a loader needs to rebuild and feed a model, and what it measured.

:class:`Card` is written to and read from ``card.json``. Its ``input`` is the
kind's own input spec (:attr:`training.kinds.base.ModelKind.input_spec`), so
each kind adds its fields there. Reading refuses an unknown schema version or
a missing field with a message naming the entry and the field; cards written
before the schema had a version (schema 1) are read and upgraded.
"""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, get_origin, get_type_hints

from features.cache import extractor_key
from features.frame_features import FeatureConfig

SCHEMA_VERSION = 2
WEIGHTS_FILE = "weights.safetensors"


class CardError(ValueError):
    """A card that cannot be read; the message names the entry and the field."""


@dataclass(frozen=True)
class Card:
    """One entry's description.

    ``kind``, ``arch_args``, ``classes`` (in the model's output order) and
    ``input`` rebuild and feed the model; ``data``, ``training``, ``metrics``
    and ``targets`` describe how it was made and how it did; ``files`` are the
    entry's report files. ``name``, ``created_at`` and ``tensors`` (a digest of the
    weights' tensor names and shapes, :func:`training.registry.weights.tensors_digest`, so
    a weights file is checked against its card without building the model) are filled in
    when the entry is written.
    """

    kind: str
    arch_args: dict
    classes: tuple[str, ...]
    input: Any
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    name: str = ""
    created_at: str = ""
    parent: str | None = None
    weights: str = WEIGHTS_FILE
    files: tuple[str, ...] = ()
    tensors: str = ""
    schema: int = SCHEMA_VERSION

    def __post_init__(self):
        num_classes = self.arch_args.get("num_classes")
        if num_classes is not None and num_classes != len(self.classes):
            raise CardError(f"card {self.name or '(new)'}: arch_args num_classes={num_classes} "
                            f"but {len(self.classes)} classes")

    @property
    def wer(self) -> float | None:
        """A sentence reader's test word error rate, with the best decoding it measured (the
        language model's, else the lexicon's, else greedy)."""
        for key in ("wer_grammar", "wer_lexicon", "wer"):
            value = self.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    @property
    def accuracy(self) -> float | None:
        """Test accuracy, when the entry measured one."""
        value = self.metrics.get("accuracy")
        return float(value) if isinstance(value, (int, float)) else None

    def to_json(self) -> dict:
        """The card as JSON values (tuples as lists)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Card":
        """The card in ``data`` (parsed ``card.json``); :class:`CardError` naming ``where``."""
        from training.kinds import get_kind

        if not isinstance(data, dict):
            raise CardError(f"{where}: a card must be a JSON object, got {type(data).__name__}")
        version = data.get("schema", 1)
        if version == 1:
            data = _upgrade_v1(data)
        elif version != SCHEMA_VERSION:
            raise CardError(f"{where}: unknown card schema version {version!r} (this app reads "
                            f"1 to {SCHEMA_VERSION}); update the app or re-train the entry")
        values = _fields_of(cls, data, where)
        try:
            kind = get_kind(values["kind"])
        except ValueError as error:
            raise CardError(f"{where}: field 'kind': {error}") from None
        values["input"] = _fields_of(kind.input_spec, values["input"], f"{where}: field 'input'")
        values["input"] = kind.input_spec(**values["input"])
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise CardError(f"{where}: {error}") from None


def _fields_of(cls: type, data: Any, where: str) -> dict:
    """The fields of dataclass ``cls`` from the mapping ``data``, lists made tuples where the
    field is a tuple; refuses a missing field (unless it has a default), a field of the
    wrong JSON type and an unknown one."""
    if not isinstance(data, dict):
        raise CardError(f"{where}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise CardError(f"{where}: unknown field(s) {unknown}")
    values = {}
    for name, spec in known.items():
        if name in data:
            values[name] = _typed(data[name], hints[name], f"{where}: field {name!r}")
        elif spec.default is MISSING and spec.default_factory is MISSING:
            raise CardError(f"{where}: missing field {name!r}")
    return values


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the plain hints cards use (str, int, float, bool, dict,
    tuple[...]); other hints (unions, Any) pass the value through."""
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise CardError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(value)
    expected = {float: (int, float)}.get(hint, hint)
    if hint in (dict, str, int, float, bool) and (
            not isinstance(value, expected) or (hint is not bool and isinstance(value, bool))):
        raise CardError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
    return value


def _upgrade_v1(data: dict) -> dict:
    """A card written before schema versions: ``feature_names`` and ``normalisation`` moved
    into the landmark kinds' ``input``, everything else as it was."""
    data = dict(data)
    feature_names = data.pop("feature_names", None)
    normalisation = data.pop("normalisation", None)
    spec = dict(data.get("input") or {})
    if normalisation:
        spec.update(feature_names=feature_names or [], mean=normalisation.get("mean"),
                    std=normalisation.get("std"))
    data["input"] = spec
    data["schema"] = SCHEMA_VERSION
    return data


def check_extractor(card, where: str) -> None:
    """Refuse an entry trained on lip features this app no longer extracts (its card says
    which; entries from before the card said so are taken as they are)."""
    trained_on = card.data.get("extractor")
    current = extractor_key(FeatureConfig())
    if trained_on is not None and trained_on != current:
        raise ValueError(f"{where} was trained on lip features of another extractor version "
                         f"({trained_on}; this app extracts {current}), which it would misread: "
                         f"train it again on its clips ({card.data.get('videos', 'its videos')})")
