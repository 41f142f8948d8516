"""A word-class bigram language model of transcripts, for the sentence reader's beam search.

Command sentences such as GRID's ("bin blue at f two now") and a ward's phrases
follow slots: a verb, a colour, a preposition, a letter, a digit, an adverb. A word
bigram learned from a few hundred sentences knows only the pairs it saw and
prefers them; a class bigram (Brown et al., 1992, "Class-based n-gram models of
natural language") learns which *kind* of word follows which, so it forbids
reading a sentence with its letter left out while holding no opinion on which
letter it was:

    P(w | v) = P(class(w) | class(v)) * P(w | class(w))

The classes are found from the transcripts alone, by Brown's agglomerative
clustering: every word starts in a class of its own, and the pair of classes
whose merge loses the least training likelihood is merged, down to one class.
The number of classes kept is the one under which the held-out fifth of the
transcripts is most likely (the clustering run on the other four fifths); the
classes are then found again on all of them. On GRID this finds its six slots.

Pure NumPy: :func:`fit_class_bigram` returns a :class:`ClassBigram`, which the
card stores as plain JSON (:meth:`ClassBigram.to_json`); the decoder asks it
:meth:`ClassBigram.score`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Absolute discount of the class bigram's counts, given to the class unigram.
DISCOUNT = 0.5
#: Words beyond this many (the most frequent first) keep a class of their own: the merge
#: search costs the cube of the number of classes a step.
MAX_CLUSTERED_WORDS = 100
#: One transcript in this many is held out to choose the number of classes.
HOLD_OUT_EVERY = 5
START, END = 0, 1


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _pair_counts(sentences: Sequence[Sequence[str]], index: dict[str, int]) -> np.ndarray:
    """(V + 2, V + 2) counts of consecutive tokens, start and end of sentence included
    (token 0 starts, token 1 ends, word ``w`` is ``index[w]``); unknown words are skipped."""
    counts = np.zeros((len(index) + 2,) * 2)
    for words in sentences:
        tokens = [START] + [index[w] for w in words if w in index] + [END]
        np.add.at(counts, (tokens[:-1], tokens[1:]), 1.0)
    return counts


def _merge_losses(counts: np.ndarray, x: np.ndarray, a: int, others: np.ndarray) -> np.ndarray:
    """Training log-likelihood lost by merging class ``a`` with each class of ``others``,
    given the class pair ``counts`` and their ``x log x``: only the rows and columns of the
    two change."""
    b = others
    before = (x[a].sum() + x[b].sum(1) + x[:, a].sum() + x[:, b].sum(0)
              - x[a, a] - x[b, a] - x[a, b] - x[b, b])
    rows = _xlogx(counts[a][None, :] + counts[b]).sum(1)
    cols = _xlogx(counts[:, a][None, :] + counts[:, b].T).sum(1)
    # Cells in the two merged columns (rows) were counted in rows (cols): take them out.
    rows -= _xlogx(counts[a, a] + counts[b, a]) + _xlogx(counts[a, b] + counts[b, b])
    cols -= _xlogx(counts[a, a] + counts[a, b]) + _xlogx(counts[b, a] + counts[b, b])
    after = rows + cols + _xlogx(counts[a, a] + counts[a, b] + counts[b, a] + counts[b, b])
    out, into = counts[a].sum(), counts[:, a].sum()
    out_b, into_b = counts[b].sum(1), counts[:, b].sum(0)
    margins = (_xlogx(out + out_b) - _xlogx(out) - _xlogx(out_b)
               + _xlogx(into + into_b) - _xlogx(into) - _xlogx(into_b))
    return before - after + margins


def _merge_tree(counts: np.ndarray, clustered: int) -> list[np.ndarray]:
    """Brown's greedy merges of the word tokens (2 ..) of a token pair ``counts``.

    Only the first ``clustered`` words take part; the others keep their own
    class. Returns, for each number of merges done (0, 1, ...), each token's
    class as an array (start and end stay classes 0 and 1).
    """
    current = counts.copy()
    members = [[t] for t in range(len(counts))]
    alive = list(range(2, 2 + clustered))
    assignments = [np.arange(len(counts))]
    while len(alive) > 1:
        best = (math.inf, 0, 0)
        x = _xlogx(current)
        for i, a in enumerate(alive[:-1]):
            others = np.array(alive[i + 1:])
            losses = _merge_losses(current, x, a, others)
            j = int(np.argmin(losses))
            best = min(best, (float(losses[j]), a, int(others[j])))
        _, a, b = best
        current[a] += current[b]
        current[:, a] += current[:, b]
        current[b], current[:, b] = 0.0, 0.0
        members[a] += members[b]
        alive.remove(b)
        assignment = assignments[-1].copy()
        assignment[members[a]] = a
        assignments.append(assignment)
    return [_dense(a) for a in assignments]


def _dense(assignment: np.ndarray) -> np.ndarray:
    """Class labels renumbered 0, 1, ... in order of first appearance (start 0, end 1)."""
    _, first, inverse = np.unique(assignment, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


@dataclass(frozen=True)
class ClassBigram:
    """A class bigram over ``words``.

    ``classes``: each word's class (counted on the tokens: class 0 is the
    start, class 1 the end of a sentence, so word classes are 2 ..);
    ``transitions``: (class before, class after, count) of every class pair
    seen in the transcripts; ``word_counts``: each word's count, which makes
    ``P(w | class(w))``.
    """

    words: tuple[str, ...]
    classes: tuple[int, ...]
    transitions: tuple[tuple[int, int, float], ...]
    word_counts: tuple[float, ...]

    def __post_init__(self):
        if not (len(self.words) == len(self.classes) == len(self.word_counts)):
            raise ValueError("a class bigram needs one class and one count per word")
        size = max(self.classes, default=END) + 1
        table = np.zeros((max(size, END + 1),) * 2)
        for before, after, count in self.transitions:
            if not (0 <= before < len(table) and 0 <= after < len(table)):
                raise ValueError(f"class pair ({before}, {after}) does not fit "
                                 f"{len(table)} classes")
            table[before, after] += count
        object.__setattr__(self, "_log_transition", _smoothed(table))
        object.__setattr__(self, "_log_emission",
                           _log_emissions(np.asarray(self.classes, np.int64),
                                          np.asarray(self.word_counts, np.float64)))
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @property
    def num_classes(self) -> int:
        """Word classes (start and end of sentence not counted)."""
        return len(self._log_transition) - 2

    def word_index(self, word: str) -> int | None:
        return self._index.get(word)

    def score(self, previous: int | None, word: int | None) -> float:
        """log P(``word`` | the word before), by index into :attr:`words`: ``previous`` None
        at the start of a sentence, ``word`` None for its end."""
        before = START if previous is None else self.classes[previous]
        if word is None:
            return float(self._log_transition[before, END])
        return float(self._log_transition[before, self.classes[word]] + self._log_emission[word])

    def unigram(self, word: int) -> float:
        """log of the word's share of all words in the transcripts."""
        return float(math.log(self.word_counts[word] / sum(self.word_counts)))

    def sentence_log_prob(self, text: str) -> float:
        """log P of a whole sentence of known words (its end included)."""
        previous, total = None, 0.0
        for word in text.split():
            index = self._index[word]
            total += self.score(previous, index)
            previous = index
        return total + self.score(previous, None)

    def extended(self, texts: Sequence[str]) -> "ClassBigram":
        """This model with ``texts`` (normalised) counted as transcripts too; their new words
        each get a class of their own, so a phrase list's words can be read in sentence
        mode without clustering again."""
        new = [w for w in dict.fromkeys(w for t in texts for w in t.split()) if w not in self._index]
        first = len(self._log_transition)
        words = self.words + tuple(new)
        classes = self.classes + tuple(range(first, first + len(new)))
        pairs = {(a, b): c for a, b, c in self.transitions}
        counts = list(self.word_counts) + [0.0] * len(new)
        index = {w: i for i, w in enumerate(words)}
        for text in texts:
            tokens = [index[w] for w in text.split()]
            path = [START] + [classes[i] for i in tokens] + [END]
            for pair in zip(path[:-1], path[1:]) if tokens else ():
                pairs[pair] = pairs.get(pair, 0.0) + 1.0
            for i in tokens:
                counts[i] += 1.0
        return ClassBigram(words, classes, _triples(pairs), tuple(counts))

    def to_json(self) -> dict:
        return {"words": list(self.words), "classes": list(self.classes),
                "transitions": [list(t) for t in self.transitions],
                "word_counts": list(self.word_counts)}

    @classmethod
    def from_json(cls, data: dict) -> "ClassBigram":
        return cls(tuple(data["words"]), tuple(int(c) for c in data["classes"]),
                   tuple((int(a), int(b), float(c)) for a, b, c in data["transitions"]),
                   tuple(float(x) for x in data["word_counts"]))


def _triples(pairs: dict) -> tuple[tuple[int, int, float], ...]:
    """Class pair counts ``{(before, after): count}`` as sorted (before, after, count)."""
    return tuple((int(a), int(b), float(c)) for (a, b), c in sorted(pairs.items()) if c)


def _smoothed(table: np.ndarray) -> np.ndarray:
    """(K, K) log P(class after | class before) of pair counts: absolute discounting of
    :data:`DISCOUNT`, the mass given to the add-half class unigram."""
    into = table.sum(0)
    unigram = (into + 0.5) / (into.sum() + 0.5 * len(into))
    unigram[START] = 0.0
    unigram /= unigram.sum()
    rows = table.sum(1, keepdims=True)
    seen = (table > 0).sum(1, keepdims=True)
    safe = np.maximum(rows, 1.0)
    probability = np.maximum(table - DISCOUNT, 0.0) / safe + DISCOUNT * seen / safe * unigram
    probability = np.where(rows > 0, probability, unigram)
    with np.errstate(divide="ignore"):
        return np.log(probability)


def _log_emissions(classes: np.ndarray, word_counts: np.ndarray) -> np.ndarray:
    """log P(word | its class) of each word: its count over its class's."""
    per_class = np.bincount(classes, weights=word_counts)
    return np.log(word_counts / per_class[classes])


def _class_table(assignment: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(K, K) class pair counts of token pair ``counts`` under a token class ``assignment``."""
    k = int(assignment.max()) + 1
    table = np.zeros((k, k))
    first, second = np.nonzero(counts)
    np.add.at(table, (assignment[first], assignment[second]), counts[first, second])
    return table


def _model(words: Sequence[str], assignment: np.ndarray, counts: np.ndarray) -> ClassBigram:
    """The :class:`ClassBigram` of a token class ``assignment`` and token pair ``counts``."""
    table = _class_table(assignment, counts)
    before, after = np.nonzero(table)
    return ClassBigram(tuple(words), tuple(int(c) for c in assignment[2:]),
                       _triples(dict(zip(zip(before, after), table[before, after]))),
                       tuple(float(x) for x in counts.sum(0)[2:]))


def _held_out_score(assignment: np.ndarray, counts: np.ndarray, held: np.ndarray) -> float:
    """Mean log-probability per token of the held-out token pair counts ``held`` under the
    class bigram of ``assignment`` and ``counts`` (what :class:`ClassBigram` would say)."""
    log_transition = _smoothed(_class_table(assignment, counts))
    # The start and end tokens are their classes' only members.
    log_emission = np.concatenate([[0.0, 0.0], _log_emissions(assignment[2:],
                                                              counts.sum(0)[2:])])
    first, second = np.nonzero(held)
    total = held[first, second] @ (log_transition[assignment[first], assignment[second]]
                                   + log_emission[second])
    return float(total / held.sum())


def _vocabulary(sentences: Sequence[Sequence[str]]) -> tuple[list[str], int]:
    """The words by falling count (ties alphabetical), and how many take part in merges."""
    counts: dict[str, int] = {}
    for words in sentences:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    vocabulary = sorted(counts, key=lambda w: (-counts[w], w))
    return vocabulary, min(len(vocabulary), MAX_CLUSTERED_WORDS)


def choose_num_classes(sentences: Sequence[Sequence[str]]) -> int | None:
    """The number of word classes under which the held-out transcripts are most likely
    (None when there are too few transcripts to hold any out)."""
    held = [s for i, s in enumerate(sentences) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    kept = [s for i, s in enumerate(sentences) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
    if not held or not kept:
        return None
    vocabulary, clustered = _vocabulary(kept)
    index = {w: i + 2 for i, w in enumerate(vocabulary)}
    # Held-out sentences with a word the other four fifths lack cannot be scored: left out.
    known = [s for s in held if all(w in index for w in s)]
    if not known:
        return None
    counts, held_counts = _pair_counts(kept, index), _pair_counts(known, index)
    scores = [_held_out_score(a, counts, held_counts) for a in _merge_tree(counts, clustered)]
    return len(vocabulary) - int(np.argmax(scores))


def fit_class_bigram(texts: Sequence[str]) -> ClassBigram:
    """The class bigram of normalised transcripts (words separated by spaces); the number
    of classes chosen on a held-out fifth (:func:`choose_num_classes`)."""
    sentences = [t.split() for t in texts if t.split()]
    if not sentences:
        raise ValueError("a language model needs at least one transcript with words")
    classes = choose_num_classes(sentences)
    vocabulary, clustered = _vocabulary(sentences)
    counts = _pair_counts(sentences, {w: i + 2 for i, w in enumerate(vocabulary)})
    tree = _merge_tree(counts, clustered)
    # Tree step i leaves len(vocabulary) - i word classes; without a held-out part, one per word.
    step = 0 if classes is None else len(vocabulary) - classes
    return _model(vocabulary, tree[min(max(step, 0), len(tree) - 1)], counts)
