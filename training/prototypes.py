"""Few-shot classification by prototypes, with a temperature fitted by leave-one-out.

Pure NumPy over arrays, so it is tested without a model. Each sample is an
embedding (one clip, the sentence reader's per-frame outputs averaged); a
class's prototype is the unit-length mean of its samples' unit-length
embeddings, and a clip's logit for a class is its cosine similarity to that
prototype divided by a temperature. Where the reader can also score a class's
words (phrase-list CTC), a weighted CTC term joins the logit: each class's
log-likelihood minus the best among the classes it scores, and 0 for the
classes it cannot score, so it only ever says "less likely than the best of
the phrases I know" and leaves the others to the prototypes.

The temperature and the CTC weight are chosen by leave-one-out on the samples
themselves: each sample is classified against prototypes made without it.
With few samples the temperature is pulled towards :data:`DEFAULT_TEMPERATURE`
and the CTC weight towards :data:`DEFAULT_CTC_WEIGHT`, so two lucky samples do not
make the model sure of everything; with no class
of two samples both take their defaults. The defaults are what leave-one-out
picks on the enrol half of ``tests/benchmarks/few_shot_grid.py`` (300 GRID
word clips), never on its test clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TEMPERATURE = 0.05
DEFAULT_CTC_WEIGHT = 0.1
TEMPERATURES = np.geomspace(0.005, 0.5, 41)
CTC_WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0)
PRIOR_SAMPLES = 3.0    # the pull towards DEFAULT_TEMPERATURE, worth this many samples' NLL
# The pull towards DEFAULT_CTC_WEIGHT, in samples' NLL. Without it, samples that leave-one-out
# reads without a miss let the weight climb to 1: the reader's sharp phrase likelihoods then
# make every answer, wrong ones too, 0.9999 sure. Measured with few_shot_grid.py --validate
# (5 draws): it halves the NLL at k = 2 and 3 (0.20 -> 0.09, 0.19 -> 0.08) and changes
# accuracy by +0.1 point.
CTC_WEIGHT_PRIOR = 3.0


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def prototypes(embeddings: np.ndarray, owners: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, D) unit prototypes of ``embeddings`` (N, D) owned by ``owners`` (N,) in 0..K-1;
    a class without samples gets a zero row (similarity 0 to everything)."""
    sums = np.zeros((num_classes, embeddings.shape[1]))
    np.add.at(sums, owners, unit_rows(embeddings))
    return unit_rows(sums)


def similarities(embeddings: np.ndarray, prototype_rows: np.ndarray) -> np.ndarray:
    """(N, K) cosine similarity of each embedding to each prototype."""
    return unit_rows(embeddings) @ prototype_rows.T


def leave_one_out_similarities(embeddings: np.ndarray, owners: np.ndarray,
                               num_classes: int) -> np.ndarray:
    """(N, K) similarities with each sample left out of its own class's prototype;
    its own class's column is NaN where that class has no other sample."""
    units = unit_rows(embeddings)
    sums = np.zeros((num_classes, units.shape[1]))
    np.add.at(sums, owners, units)
    sims = units @ unit_rows(sums).T
    own = sums[owners] - units
    norms = np.linalg.norm(own, axis=1)
    alone = np.bincount(owners, minlength=num_classes)[owners] < 2
    sims[np.arange(len(units)), owners] = np.where(
        alone, np.nan, np.einsum("nd,nd->n", units, own) / np.maximum(norms, 1e-12))
    return sims


def ctc_term(log_likelihoods: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """(N, K) CTC term: ``log_likelihoods`` (N, K) minus the row's best among the ``scored``
    (K,) classes, 0 for classes not scored (and everywhere when none is)."""
    scored = np.asarray(scored, bool)
    term = np.zeros(log_likelihoods.shape)
    if scored.any():
        known = np.where(scored, log_likelihoods, -np.inf)
        term = np.where(scored, known - known.max(axis=1, keepdims=True), 0.0)
    return np.maximum(term, -1e4)


def logits(sims: np.ndarray, term: np.ndarray, temperature: float, weight: float) -> np.ndarray:
    """(N, K) logits of cosine similarities and CTC term."""
    return sims / temperature + weight * term


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class Calibration:
    """What leave-one-out says about a set of samples.

    ``temperature`` and ``ctc_weight``: the chosen values; ``evaluated``: the
    samples whose class has another sample (the only ones leave-one-out can
    test); ``probabilities`` (N, K): each sample's leave-one-out posterior (NaN
    rows for the others); ``accuracy``: over the evaluated samples (None when
    there are none); ``per_class`` (K,): each class's accuracy (NaN where none
    of its samples could be tested).
    """

    temperature: float
    ctc_weight: float
    evaluated: np.ndarray
    probabilities: np.ndarray
    accuracy: float | None
    per_class: np.ndarray
    nll: float | None

    @property
    def fitted(self) -> bool:
        return self.accuracy is not None


def _objective(sims, term, owners, rows, temperature, weight, weight_prior) -> float:
    log_post = log_softmax(logits(sims[rows], term[rows], temperature, weight))
    nll = -log_post[np.arange(len(rows)), owners[rows]].sum()
    pull = np.log((weight + 0.03) / (DEFAULT_CTC_WEIGHT + 0.03)) ** 2
    return nll + PRIOR_SAMPLES * np.log(temperature / DEFAULT_TEMPERATURE) ** 2 + weight_prior * pull


def calibrate(loo_sims: np.ndarray, term: np.ndarray, owners: np.ndarray,
              temperatures=TEMPERATURES, weights=CTC_WEIGHTS,
              weight_prior: float = CTC_WEIGHT_PRIOR) -> Calibration:
    """Temperature and CTC weight minimising the leave-one-out NLL (plus the pull towards
    the default temperature, and ``weight_prior`` samples' worth of pull towards the default
    CTC weight, :data:`CTC_WEIGHT_PRIOR`) of ``loo_sims`` (:func:`leave_one_out_similarities`)
    and ``term`` (:func:`ctc_term`), samples owned by ``owners``."""
    num, num_classes = loo_sims.shape
    rows = np.flatnonzero(~np.isnan(loo_sims[np.arange(num), owners]))
    if not term.any():
        weights = (0.0,)
    if len(rows) == 0:
        return Calibration(DEFAULT_TEMPERATURE, DEFAULT_CTC_WEIGHT if term.any() else 0.0,
                           rows, np.full((num, num_classes), np.nan), None,
                           np.full(num_classes, np.nan), None)
    sims = np.nan_to_num(loo_sims, nan=-1.0)
    _, temperature, weight = min((_objective(sims, term, owners, rows, t, w, weight_prior),
                                  float(t), float(w))
                                 for w in weights for t in temperatures)
    probabilities = np.full((num, num_classes), np.nan)
    probabilities[rows] = np.exp(log_softmax(logits(sims[rows], term[rows], temperature, weight)))
    correct = probabilities[rows].argmax(1) == owners[rows]
    per_class = np.full(num_classes, np.nan)
    for c in np.unique(owners[rows]):
        per_class[c] = correct[owners[rows] == c].mean()
    nll = -np.log(probabilities[rows, owners[rows]]).mean()
    return Calibration(temperature, weight, rows, probabilities, float(correct.mean()),
                       per_class, float(nll))
