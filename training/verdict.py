"""Whether a newly trained entry is worth using: better than chance, and not worse than
the model in use at the same task.

A classifier is better than chance when its measured accuracy (on its test clips, or by
cross-validation) is above one over its classes by more than luck explains: a one-sided
binomial test at :data:`SIGNIFICANCE` over the clips it was measured on (30 % of 10 clips
of 3 phrases is not; 70 % is). A sentence reader whose word error rate is
:data:`READS_NOTHING_WER` or more reads next to nothing. Against the model in use the
comparison is made only at the same task: two classifiers of the same phrases by their
accuracy, two sentence readers by their WER. Qt-free; the Train tab and training's
registration (which does not activate an entry no better than chance) ask it.
"""
from __future__ import annotations

from dataclasses import dataclass

SIGNIFICANCE = 0.05
READS_NOTHING_WER = 0.9


@dataclass(frozen=True)
class Measured:
    """What one entry measured: ``accuracy`` in [0, 1] (or None) over ``clips`` clips (0:
    not known) of its ``classes``, or a sentence reader's ``wer``; ``evaluation``: how
    (``test``, ``3-fold cross-validation``...)."""

    name: str
    accuracy: float | None = None
    wer: float | None = None
    classes: tuple[str, ...] = ()
    clips: int = 0
    evaluation: str = "test"

    @classmethod
    def of_card(cls, card) -> "Measured":
        clips = card.metrics.get("test_clips") or card.metrics.get("tested") or 0
        return cls(card.name, card.accuracy, card.wer, tuple(card.classes), int(clips),
                   str(card.metrics.get("evaluation", "test")))


@dataclass(frozen=True)
class Verdict:
    """``better_than_chance`` (None: nothing measured), ``worse_than``: the name of the model
    in use it is worse than (None: not worse, or not comparable), ``text``: one line."""

    better_than_chance: bool | None
    worse_than: str | None
    text: str

    @property
    def usable(self) -> bool:
        """Whether to offer the entry as better: it is better than chance and not worse than
        the model in use."""
        return bool(self.better_than_chance) and self.worse_than is None


def chance_of(measured: Measured) -> float:
    """One over the classes: what guessing gets right."""
    return 1.0 / max(1, len(measured.classes))


def beats_chance(measured: Measured) -> bool | None:
    """Whether ``measured`` is better than chance (None when it measured nothing)."""
    if measured.wer is not None:
        return measured.wer < READS_NOTHING_WER
    if measured.accuracy is None:
        return None
    chance = chance_of(measured)
    if measured.clips <= 0:
        return measured.accuracy > chance
    from scipy.stats import binom

    right = round(measured.accuracy * measured.clips)
    return right > chance * measured.clips and binom.sf(right - 1, measured.clips, chance) < SIGNIFICANCE


def same_task(new: Measured, in_use: Measured) -> bool:
    """Two sentence readers, or two classifiers of the same phrases."""
    if new.wer is not None or in_use.wer is not None:
        return new.wer is not None and in_use.wer is not None
    return set(new.classes) == set(in_use.classes) and in_use.accuracy is not None


def judge(new: Measured, in_use: Measured | None) -> Verdict:
    """How ``new`` compares with chance and with the model ``in_use`` (None: none in use)."""
    keeping = f"keeping {in_use.name}" if in_use is not None else "not used"
    figure = _figure(new)
    better = beats_chance(new)
    if better is None:
        return Verdict(None, None, f"{new.name} measured nothing to compare: not offered as better")
    if not better:
        what = "Reads next to nothing" if new.wer is not None else "Not better than chance"
        return Verdict(False, None, f"{what} ({figure}): {keeping}")
    if in_use is not None and same_task(new, in_use):
        if new.wer is not None and new.wer > in_use.wer:
            return Verdict(True, in_use.name, f"Worse than {in_use.name} in use (test WER "
                           f"{new.wer:.0%} against {in_use.wer:.0%}): {keeping}")
        if new.wer is None and new.accuracy < in_use.accuracy:
            return Verdict(True, in_use.name, f"Worse than {in_use.name} in use ({new.accuracy:.0%} "
                           f"against {in_use.accuracy:.0%} of the same phrases): {keeping}")
    return Verdict(True, None, f"Better than chance ({figure})")


def _figure(measured: Measured) -> str:
    """The measured figure in words: ``30 % right on 10 test clips of 3 phrases, chance 33 %``."""
    if measured.wer is not None:
        return f"test WER {measured.wer:.0%}"
    how = (f" on {measured.clips} test clips" if measured.evaluation == "test" and measured.clips
           else f" by {measured.evaluation} on {measured.clips} clips" if measured.clips else "")
    return (f"{measured.accuracy:.0%} right{how} of {len(measured.classes)} phrases, "
            f"chance {chance_of(measured):.0%}")
