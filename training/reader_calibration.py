"""How sure a sentence reader may say it is: its two posteriors, calibrated on held-out clips.

A reader's scores sum a whole clip's frames, so taken as they are its posteriors are
not the odds of being right. On the shipped reader's test split, uncalibrated:

- **Phrase mode** (a phrase list): each phrase's CTC log-likelihood against "something
  else", the best lexicon reading that is no phrase of the list. Runs of words cut from
  running speech read their neighbours' fragments too, so "something else" took the
  probability of right phrases: the app was sure of 48 % of them (87 % calibrated, while
  sure of a phrase for 6 % of the clips whose phrase was not listed).
- **Transcript mode** (the words read): mean confidence 0.94 for readings right 67 % of
  the time (0.55 calibrated; log loss 1.76 -> 0.64).

:class:`Calibration` holds what corrects both: the phrases' temperature and the bias of
"something else" (:func:`phrase_list_posterior`), and the readings' temperature
(:func:`reading_posterior`). :func:`fit_calibration` fits them on a reader's
validation clips when it is trained (:meth:`LandmarkCTCKind.calibrate`), and the card
keeps them (``input.calibration``); :func:`calibration_report` measures them on its
test clips for the reports.

The phrase-mode problems (:func:`phrase_problems`): runs of 1 to :data:`MAX_WORDS`
whole words cut from the clips with their word timings (:data:`PADDING` frames
around, as GRID's word clips and the live segmenter's margin), or, without timings,
the clips whole; each scored against a list of :data:`LIST_SIZE` phrases drawn from the
others' texts, once with its own text in the list and once without, when the right
answer is "something else".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from training.decoding import (SENTENCE_TEMPERATURE, decode_indices, hypothesis_posterior,
                               normalise_text, phrase_posterior)

LIST_SIZE = 12          # phrases of a fitting list (the GRID benchmark's words are 12)
MAX_WORDS = 3           # longest run of words cut as one phrase
PADDING = 4             # frames kept around a cut run of words
MAX_CLIPS = 240         # phrase clips cut a split at most (a few seconds of reading)
MIN_PROBLEMS = 20       # fewer held-out problems than this: the defaults stay
PHRASE_TEMPERATURES = np.geomspace(0.25, 8.0, 16)
OTHER_BIASES = np.linspace(-40.0, 20.0, 31)
SENTENCE_TEMPERATURES = np.geomspace(0.5, 16.0, 16)


@dataclass(frozen=True)
class Calibration:
    """``phrase_temperature`` and ``other_bias`` (added to "something else"'s score before
    the temperature) of phrase mode, ``sentence_temperature`` of transcript mode, and
    ``fitted_on``: what they were fitted on ("" for the defaults, which are what readers
    trained before calibration used)."""

    phrase_temperature: float = 1.0
    other_bias: float = 0.0
    sentence_temperature: float = SENTENCE_TEMPERATURE
    fitted_on: str = ""

    def __post_init__(self):
        for name in ("phrase_temperature", "sentence_temperature"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"calibration {name} must be a positive number, got {value!r}")
        if not np.isfinite(self.other_bias):
            raise ValueError(f"calibration other_bias must be finite, got {self.other_bias!r}")

    @classmethod
    def from_json(cls, data: dict | None) -> Calibration:
        """The card's ``input.calibration``; the defaults for an empty one (older cards)."""
        if not data:
            return cls()
        known = {k: data[k] for k in ("phrase_temperature", "other_bias",
                                      "sentence_temperature", "fitted_on") if k in data}
        return cls(**known)

    def to_json(self) -> dict:
        return asdict(self)


def phrase_list_posterior(likelihoods: np.ndarray, other: float,
                          calibration: Calibration) -> np.ndarray:
    """(K,) probabilities of K listed phrases from their CTC log-likelihoods and the score of
    "something else" (:func:`something_else`), which takes the rest."""
    scores = np.append(np.asarray(likelihoods, np.float64), other + calibration.other_bias)
    return phrase_posterior(scores / calibration.phrase_temperature)[:-1]


def something_else(readings: Sequence[tuple[str, float]], phrases: Sequence[str]) -> float:
    """The best score of a reading (the lexicon search's, without the language model, as
    the phrases are scored) that is no phrase of the list; -inf when there is none."""
    listed = {normalise_text(p) for p in phrases}
    return max((score for text, score in readings if text not in listed), default=-np.inf)


def reading_posterior(readings: Sequence[tuple[str, float]],
                      calibration: Calibration) -> list[tuple[str, float]]:
    """Transcript mode's (text, probability) of the readings that say something, best first;
    reading nothing keeps its share, so they may sum to less than 1."""
    return [(t, p) for t, p in hypothesis_posterior(readings, calibration.sentence_temperature)
            if t]


# -- the held-out problems -------------------------------------------------------------------

@dataclass(frozen=True)
class PhraseProblem:
    """One clip's scores: ``likelihoods`` of the candidate texts, its own text first,
    ``others``: "something else"'s score for each of the two lists (with its own text,
    without it), ``lists``: the two lists as indices into the candidates."""

    likelihoods: np.ndarray
    others: tuple[float, float]
    lists: tuple[np.ndarray, np.ndarray]


def phrase_spans(dataset, classes: Sequence[str], seed: int = 0,
                 limit: int = MAX_CLIPS) -> list[tuple[int, slice, str]]:
    """(example, frames, text) of the phrase clips of a :class:`SentenceDataset`: runs of
    1 to :data:`MAX_WORDS` timed words with :data:`PADDING` frames around, else whole clips;
    at most ``limit``, drawn with ``seed``."""
    spans = []
    for i, target in enumerate(dataset.targets):
        length = len(dataset.examples[i][0])
        if not target.words:
            spans.append((i, slice(0, length), decode_indices(target.symbols, classes)))
            continue
        for first in range(len(target.words)):
            for last in range(first, min(first + MAX_WORDS, len(target.words))):
                run = target.words[first:last + 1]
                text = " ".join(decode_indices(word, classes) for word, *_ in run)
                frames = slice(max(0, run[0][1] - PADDING), min(length, run[-1][2] + PADDING))
                if frames.stop > frames.start:
                    spans.append((i, frames, text))
    if len(spans) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(spans), limit, replace=False))
        spans = [spans[k] for k in keep]
    return spans


def phrase_problems(kind, model, card, dataset, device, decoder, seed: int = 0,
                    beam: int = 20) -> list[PhraseProblem]:
    """The phrase-mode problems of ``dataset``'s clips (module docstring), scored by
    ``model``; ``decoder``: the reader's beam search (:func:`transcript_decoder`)."""
    spans = phrase_spans(dataset, card.classes, seed)
    texts = sorted({normalise_text(text) for *_, text in spans})
    if len(texts) < 2:
        return []
    rng = np.random.default_rng(seed)
    problems = []
    model.eval()
    for i, frames, text in spans:
        features, crops = dataset.examples[i]
        batch = kind.example_input((features[frames], None if crops is None else crops[frames]),
                                   card.input, device)
        with torch.inference_mode():
            log_probs = kind.emissions(model, batch).cpu()
        own = normalise_text(text)
        others = [t for t in texts if t != own]
        drawn = list(rng.choice(len(others), min(LIST_SIZE, len(others)), replace=False))
        candidates = [own] + [others[k] for k in drawn]
        # With its own text: it and LIST_SIZE - 1 others; without: LIST_SIZE others.
        with_own = np.arange(min(LIST_SIZE, len(candidates)))
        without = np.arange(1, len(candidates))
        _, plain = decoder.readings(log_probs, beam)
        likelihoods = np.asarray(kind.phrase_log_likelihoods(log_probs, card, tuple(candidates)))
        problems.append(PhraseProblem(
            likelihoods, (something_else(plain, [candidates[k] for k in with_own]),
                          something_else(plain, [candidates[k] for k in without])),
            (with_own, without)))
    return problems


def reading_problems(decoder, outputs, references, words, beam: int = 20
                     ) -> list[tuple[list[tuple[str, float]], str]]:
    """Each clip's readings (text, score) as transcript mode weighs them, and its transcript,
    from the clips' log-probabilities, transcripts and word head's log-probabilities
    (:func:`training.sentence_reports.read_split`)."""
    return [(decoder.readings(log_probs, beam, head)[0], normalise_text(reference))
            for log_probs, reference, head in zip(outputs, references, words)]


# -- fitting and measuring -------------------------------------------------------------------

def _phrase_lists(problems: Sequence[PhraseProblem]):
    """Per problem and list: (the list's phrases' likelihoods, something else's score, the
    right phrase's index in the list, or -1 for "something else")."""
    for problem in problems:
        for listed, other in zip(problem.lists, problem.others):
            # The clip's own text is candidate 0; a list holds it first or not at all.
            yield problem.likelihoods[listed], other, 0 if listed[0] == 0 else -1


def _phrase_outcomes(problems: Sequence[PhraseProblem], calibration: Calibration):
    """Per problem and list: (probabilities of the list's phrases, the right one's index in
    them or -1 for "something else")."""
    for likelihoods, other, right in _phrase_lists(problems):
        yield phrase_list_posterior(likelihoods, other, calibration), right


def phrase_figures(problems: Sequence[PhraseProblem], calibration: Calibration,
                   threshold: float = 0.5) -> dict:
    """Phrase mode's NLL of the right answer, accuracy and calibration error of its best
    answer (a phrase or something else), and how often the app's ``threshold``
    (:func:`recognizer.predictor.is_sure`'s rule) is sure of a right listed phrase and of a
    phrase when the right one is not listed."""
    from recognizer.predictor import sure_of

    nll, confidence, right, sure_listed, sure_unlisted = [], [], [], [], []
    for probabilities, answer in _phrase_outcomes(problems, calibration):
        full = np.append(probabilities, max(0.0, 1.0 - probabilities.sum()))
        best = int(np.argmax(full))
        truth = answer if answer >= 0 else len(probabilities)
        nll.append(-np.log(max(full[truth], 1e-12)))
        confidence.append(full[best])
        right.append(best == truth)
        top = int(np.argmax(probabilities))
        sure = sure_of(probabilities[top], len(probabilities), threshold)
        if answer >= 0:
            sure_listed.append(sure and top == answer)
        else:
            sure_unlisted.append(sure)
    return {"lists": len(nll), "nll": _round(np.mean(nll)), "accuracy": _round(np.mean(right)),
            "mean_confidence": _round(np.mean(confidence)),
            "calibration_error": _round(expected_calibration_error(confidence, right)),
            "sure_of_right_phrase": _round(np.mean(sure_listed)),
            "sure_when_unlisted": _round(np.mean(sure_unlisted))}


def reading_figures(problems, calibration: Calibration) -> dict:
    """Transcript mode's accuracy, mean confidence and calibration error of its best reading,
    and the mean binary log loss of that confidence."""
    confidence, right = _reading_outcomes(problems, calibration.sentence_temperature)
    return {"sentences": len(right), "accuracy": _round(np.mean(right)),
            "mean_confidence": _round(np.mean(confidence)),
            "calibration_error": _round(expected_calibration_error(confidence, right)),
            "log_loss": _round(_log_loss(confidence, right))}


def _reading_outcomes(problems, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    confidence, right = [], []
    for readings, reference in problems:
        posterior = [(t, p) for t, p in hypothesis_posterior(readings, temperature) if t]
        confidence.append(posterior[0][1] if posterior else 0.0)
        right.append(bool(posterior) and posterior[0][0] == reference)
    return np.asarray(confidence), np.asarray(right, bool)


def _log_loss(confidence, right) -> float:
    p = np.clip(np.asarray(confidence, np.float64), 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(right, np.log(p), np.log1p(-p))))


def expected_calibration_error(confidence, right, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over ``bins`` equal-width confidence bins, weighted by
    their share of the answers."""
    confidence, right = np.asarray(confidence, np.float64), np.asarray(right, np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        inside = which == b
        error += inside.mean() * abs(confidence[inside].mean() - right[inside].mean())
    return float(error)


def fit_calibration(phrases: Sequence[PhraseProblem], readings, where: str) -> Calibration:
    """The grid point of least phrase NLL, and the readings' temperature of least log loss
    of the best reading's confidence; each part keeps its default with fewer than
    :data:`MIN_PROBLEMS` problems. ``where`` names the clips, for ``fitted_on``."""
    default, parts = Calibration(), []
    temperature, bias = default.phrase_temperature, default.other_bias
    if len(phrases) >= MIN_PROBLEMS:
        nll = _phrase_nll_grid(phrases, PHRASE_TEMPERATURES, OTHER_BIASES)
        t, b = np.unravel_index(int(np.argmin(nll)), nll.shape)
        temperature, bias = float(PHRASE_TEMPERATURES[t]), float(OTHER_BIASES[b])
        parts.append(f"{len(phrases)} phrase clips")
    sentence = default.sentence_temperature
    if len(readings) >= MIN_PROBLEMS:
        _, sentence = min((_log_loss(*_reading_outcomes(readings, t)), float(t))
                          for t in SENTENCE_TEMPERATURES)
        parts.append(f"{len(readings)} sentences")
    fitted_on = f"{' and '.join(parts)} of {where}" if parts else ""
    return Calibration(temperature, bias, sentence, fitted_on)


def _phrase_nll_grid(problems: Sequence[PhraseProblem], temperatures, biases) -> np.ndarray:
    """(len(temperatures), len(biases)) mean NLL of the right answer over every list of
    ``problems``, as :func:`phrase_list_posterior` gives it (phrases, then something else)."""
    rows, truths = [], []
    for likelihoods, other, right in _phrase_lists(problems):
        rows.append(np.append(likelihoods, other))
        truths.append(right if right >= 0 else len(likelihoods))
    width = max(len(r) for r in rows)
    # Lists one shorter (too few texts to draw from) are padded with impossible phrases
    # before their "something else", which stays last.
    scores = np.full((len(rows), width), -np.inf)
    for i, row in enumerate(rows):
        scores[i, :len(row) - 1], scores[i, -1] = row[:-1], row[-1]
    truths = np.array([t if t < len(r) - 1 else width - 1 for t, r in zip(truths, rows)])
    other = np.zeros(width)
    other[-1] = 1.0
    shifted = scores[None, None] + np.asarray(biases)[None, :, None, None] * other
    scaled = shifted / np.asarray(temperatures)[:, None, None, None]
    scaled = np.where(np.isfinite(scores)[None, None], scaled, -np.inf)
    top = scaled.max(-1, keepdims=True)
    log_norm = np.log(np.exp(scaled - top).sum(-1)) + top[..., 0]
    right = np.take_along_axis(scaled, truths[None, None, :, None], -1)[..., 0]
    return np.mean(log_norm - right, axis=-1)


def calibration_report(phrases, readings, calibration: Calibration) -> dict:
    """Both modes' figures (:func:`phrase_figures`, :func:`reading_figures`) with the
    card's calibration and with none (temperatures 1, no bias)."""
    none = Calibration(1.0, 0.0, 1.0)
    report = {"calibration": calibration.to_json()}
    if phrases:
        report["phrases"] = {"calibrated": phrase_figures(phrases, calibration),
                             "uncalibrated": phrase_figures(phrases, none)}
    if readings:
        report["transcripts"] = {"calibrated": reading_figures(readings, calibration),
                                 "uncalibrated": reading_figures(readings, none)}
    return report


def _round(value) -> float:
    return round(float(value), 4)
