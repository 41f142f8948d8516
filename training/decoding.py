"""From a CTC model's per-frame character log-probabilities to text, and text metrics.

An alphabet is a tuple of characters; a model over it emits ``len(alphabet) + 1``
log-probabilities a frame, index 0 being the CTC blank and index ``i`` the
character ``alphabet[i - 1]``. A space separates words.

- :func:`greedy_decode`: the most likely symbol per frame, repeats merged, blanks dropped.
- :class:`BeamDecoder`: prefix beam search (flashlight-text's decoder, the one
  torchaudio wraps), free or restricted to a lexicon of words, optionally weighed by
  a word-class language model (:mod:`training.language_model`).
  :meth:`BeamDecoder.nbest` gives the best few, :func:`hypothesis_posterior`
  their probabilities among themselves.
- :func:`phrase_log_likelihoods`: the exact CTC log-likelihood of each of N
  candidate phrases, for scoring a phrase list with no sample of the phrases.
- :func:`word_error_rate`, :func:`char_error_rate`: edit distances over a corpus.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from features.text import spoken_text

BLANK = 0
SPACE = " "
#: Weight of the language model's log-probability against the model's, chosen on the
#: GRID benchmark's validation split (tests/benchmarks/train_grid_sentences.py,
#: ``lm_sweep`` in its JSON).
LM_WEIGHT = 1.0
#: Weight of a reading's alignment under the word head (``arch.word_frames``), chosen on
#: the same benchmark's validation splits of three seeds: mean WER 0.081 without, 0.076 at
#: 0.5, 0.073 at 1, 0.076 at 2 (``head_sweep`` in its JSON).
HEAD_WEIGHT = 1.0
#: Default temperature of a sentence's readings' posterior (:func:`hypothesis_posterior`),
#: for readers whose card has none fitted (:mod:`training.reader_calibration`): their
#: scores sum a whole clip's frames, so at 1 the best reading was sure of itself far more
#: often than right (the shipped reader's validation split: mean confidence 0.91 against
#: 0.59 of sentences read right, calibration error 0.34). 4 has the least negative
#: log-likelihood of the right sentence there (3.30 against 3.76 at 1; test calibration
#: error 0.10 against 0.28).
SENTENCE_TEMPERATURE = 4.0


def normalise_text(text: str) -> str:
    """NFC, case-folded, with runs of whitespace and ``_`` made one space, ends stripped."""
    return spoken_text(unicodedata.normalize("NFC", text).casefold())


def alphabet_of(texts: Iterable[str]) -> tuple[str, ...]:
    """The sorted characters of ``texts`` (normalised), space included."""
    return tuple(sorted(set(SPACE).union(*(normalise_text(t) for t in texts))))


def encode(text: str, alphabet: Sequence[str]) -> list[int]:
    """Symbol indices (1-based; 0 is the blank) of ``text``; ``ValueError`` naming any
    character the alphabet lacks."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    text = normalise_text(text)
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"{text!r}: characters {unknown} are not in the model's alphabet "
                         f"{''.join(alphabet)!r}")
    return [index[c] for c in text]


def decode_indices(indices: Iterable[int], alphabet: Sequence[str]) -> str:
    """Text of 1-based symbol indices (blanks skipped), whitespace tidied."""
    return " ".join("".join(alphabet[i - 1] for i in indices if i != BLANK).split())


def greedy_decode(log_probs: np.ndarray | torch.Tensor, alphabet: Sequence[str]) -> str:
    """Best path of (T, V) log-probabilities: argmax per frame, repeats merged, blanks dropped."""
    return decode_indices(_merge_repeats(np.asarray(torch.as_tensor(log_probs).argmax(-1).cpu())),
                          alphabet)


class BeamDecoder:
    """Prefix beam search over (T, V) log-probabilities, optionally restricted to ``lexicon``.

    With a lexicon every decoded word is one of its words (an unknown word
    can never win); without one any string over the alphabet can. Spaces
    separate words, as in the model's alphabet. With ``language_model`` (a
    :class:`training.language_model.ClassBigram` knowing every lexicon word)
    the search weighs each word by ``lm_weight`` times its log-probability
    given the word before, plus ``word_score``; the readings of that search
    and of the lexicon's alone are then scored exactly (:meth:`nbest`). Built
    once and reused: the lexicon's trie is made here.
    """

    def __init__(self, alphabet: Sequence[str], lexicon: Iterable[str] | None = None,
                 beam_size: int = 20, beam_threshold: float = 50.0, word_score: float = 0.0,
                 language_model=None, lm_weight: float = LM_WEIGHT,
                 head_words: Sequence[str] = (), head_weight: float = HEAD_WEIGHT):
        from flashlight.lib.text import decoder as fl

        if SPACE not in alphabet:
            raise ValueError("the alphabet has no space, so it cannot separate words")
        if language_model is not None and lexicon is None:
            raise ValueError("a language model scores words: give the lexicon too")
        self.alphabet = tuple(alphabet)
        self.space = self.alphabet.index(SPACE) + 1
        self.language_model, self.lm_weight, self.word_score = language_model, lm_weight, word_score
        self.head_words, self.head_weight = tuple(head_words), head_weight
        self._head_vocabulary = frozenset(self.head_words)
        # (LM, trie, decoder): a decoder refers to its LM and trie without owning them.
        self._searches: list[tuple] = []
        if lexicon is None:
            self.words: tuple[str, ...] = ()
            options = fl.LexiconFreeDecoderOptions(
                beam_size=beam_size, beam_size_token=len(self.alphabet) + 1,
                beam_threshold=beam_threshold, lm_weight=0.0, sil_score=0.0, log_add=True,
                criterion_type=fl.CriterionType.CTC)
            lm = fl.ZeroLM()
            self._searches.append((lm, None, fl.LexiconFreeDecoder(options, lm, self.space,
                                                                   BLANK, [])))
            return
        self.words = tuple(sorted({w for text in lexicon for w in normalise_text(text).split()}))
        if not self.words:
            raise ValueError("the lexicon holds no word")
        models = [(fl.ZeroLM(), 0.0)]
        if language_model is not None:
            models.append((_word_lm(fl, language_model, self.words), lm_weight))
        for lm, weight in models:
            options = fl.LexiconDecoderOptions(
                beam_size=beam_size, beam_size_token=len(self.alphabet) + 1,
                beam_threshold=beam_threshold, lm_weight=weight, word_score=word_score,
                unk_score=-math.inf, sil_score=0.0, log_add=True,
                criterion_type=fl.CriterionType.CTC)
            trie = self._trie(fl, lm if weight else None)
            self._searches.append((lm, trie, fl.LexiconDecoder(
                options, trie, lm, self.space, BLANK, len(self.words), [], False)))

    def _trie(self, fl, lm=None):
        """The lexicon's words, each ending at a space, smeared with ``lm``'s lookahead."""
        trie = fl.Trie(len(self.alphabet) + 1, self.space)
        for word_index, word in enumerate(self.words):
            # A word ends at a space: letters that are words too ("a", "t") cannot be
            # read as a run of one-letter words inside a longer one.
            trie.insert(encode(word, self.alphabet) + [self.space], word_index,
                        0.0 if lm is None else lm.lookahead(word_index))
        trie.smear(fl.SmearingMode.MAX)
        return trie

    def decode(self, log_probs: np.ndarray | torch.Tensor) -> str:
        """The best hypothesis of one clip's (T, V) log-probabilities."""
        best = self.nbest(log_probs, 1)
        return best[0][0] if best else ""

    def nbest(self, log_probs: np.ndarray | torch.Tensor, n: int) -> list[tuple[str, float]]:
        """Up to ``n`` distinct hypotheses of one clip with their scores, best first.

        Without a language model a score is the beam's (the log-probability of the
        paths that read the hypothesis). With one, every reading of either search
        scores its exact CTC log-likelihood plus ``lm_weight`` times its sentence
        log-probability plus ``word_score`` a word: the language model's search
        finds the grammatical readings, the lexicon's keeps the others in the
        running, so a reading the language model cannot place still has its odds.
        """
        return self.readings(log_probs, n)[0]

    def readings(self, log_probs: np.ndarray | torch.Tensor, n: int,
                 word_log_probs: np.ndarray | torch.Tensor | None = None
                 ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """From one pass over the clip: :meth:`nbest`'s ``n`` best, and the ``n`` best of the
        lexicon's search alone with their beam scores (what a decoder without the language
        model gives; the same list when there is none). With ``word_log_probs``, the word
        head's (T, len(head_words) + 1) per-frame log-probabilities, where every reading's
        words are the head's, each reading of the first list scores exactly (its CTC
        log-likelihood, plus the language model's where there is one) plus ``head_weight``
        times its :func:`word_alignment_scores`, with or without a language model."""
        emissions = torch.as_tensor(log_probs, dtype=torch.float32).cpu()
        if emissions.ndim != 2 or emissions.shape[1] != len(self.alphabet) + 1:
            raise ValueError(f"expected {len(self.alphabet) + 1} symbols a frame, "
                             f"got {tuple(emissions.shape)}")
        found = [self._search(search, emissions) for *_, search in self._searches]
        plain = _best(found[0], n)
        texts = list(dict.fromkeys(text for scores in found for text in scores))
        heard = (word_log_probs is not None and self.words and self._head_vocabulary
                 and all(self._head_vocabulary.issuperset(text.split()) for text in texts))
        if self.language_model is None and not heard:
            return plain, plain
        scores = self._rescored(emissions, texts)
        if heard:
            aligned = word_alignment_scores(word_log_probs, texts, self.head_words)
            scores = {t: scores[t] + self.head_weight * a for t, a in zip(texts, aligned)}
        return _best(scores, n), plain

    def _search(self, search, emissions: torch.Tensor) -> dict[str, float]:
        frames, symbols = emissions.shape
        if self.words:
            # The model ends a sentence without a space; one closing space ends its last word.
            close = torch.full((1, symbols), -1e4)
            close[0, self.space] = 0.0
            emissions = torch.cat([emissions, close])
            frames += 1
        emissions = emissions.contiguous()
        scores: dict[str, float] = {}
        for result in search.decode(emissions.data_ptr(), frames, symbols):
            text = self._text(result, symbols)
            # Paths that differ only where blanks fall read the same words: one hypothesis.
            scores[text] = float(np.logaddexp(scores.get(text, -np.inf), result.score))
        return scores

    def _rescored(self, emissions: torch.Tensor, texts: list[str]) -> dict[str, float]:
        """Exact CTC log-likelihood plus the weighted sentence log-probability of each text."""
        spoken = [t for t in texts if t]
        acoustic = dict(zip(spoken, phrase_log_likelihoods(emissions, spoken, self.alphabet)
                            if spoken else []))
        acoustic[""] = float(emissions[:, BLANK].sum())
        model = self.language_model
        if model is None:
            return {t: acoustic[t] + self.word_score * len(t.split()) for t in texts}
        return {t: acoustic[t] + self.lm_weight * model.sentence_log_prob(t)
                + self.word_score * len(t.split()) for t in texts}

    def _text(self, result, symbols: int) -> str:
        if self.words:
            return " ".join(self.words[i] for i in result.words if 0 <= i < len(self.words))
        # Per-frame symbols: merge repeats first, then drop blanks, or "soon" reads "son".
        merged = _merge_repeats(list(result.tokens))
        return decode_indices(merged[(merged > 0) & (merged < symbols)], self.alphabet)


def _best(scores: dict[str, float], n: int) -> list[tuple[str, float]]:
    return sorted(((t, float(v)) for t, v in scores.items()), key=lambda item: -item[1])[:n]


def _word_lm(fl, model, words: tuple[str, ...]):
    """flashlight's view of a :class:`training.language_model.ClassBigram` over the decoder's
    ``words``: one LM state per last word, so hypotheses ending in different words of one
    class are never merged into one."""
    indices = [model.word_index(w) for w in words]
    unknown = [w for w, i in zip(words, indices) if i is None]
    if unknown:
        raise ValueError(f"the language model does not know the words {unknown[:5]}; "
                         "decode without it or refit it on transcripts holding them")

    class WordLM(fl.LM):
        def __init__(self):
            fl.LM.__init__(self)
            self.root = fl.LMState()
            self.last: dict = {self.root: None}

        def _after(self, word_index):
            state = self.root.child(word_index)
            self.last[state] = None if word_index < 0 else indices[word_index]
            return state

        def start(self, start_with_nothing):
            return self.root

        def score(self, state, word_index):
            return self._after(word_index), model.score(self.last[state], indices[word_index])

        def finish(self, state):
            return self._after(-1), model.score(self.last[state], None)

        def lookahead(self, word_index) -> float:
            """The word's log-probability whatever comes before it, for the trie's smearing."""
            return model.unigram(indices[word_index])

    return WordLM()


def hypothesis_posterior(hypotheses: Sequence[tuple[str, float]],
                         temperature: float = SENTENCE_TEMPERATURE) -> list[tuple[str, float]]:
    """(text, log score) hypotheses as (text, probability) over the list, summing to 1, the
    scores divided by ``temperature`` first."""
    if not hypotheses:
        return []
    probabilities = phrase_posterior(np.array([score for _, score in hypotheses]) / temperature)
    return [(text, float(p)) for (text, _), p in zip(hypotheses, probabilities)]


def _merge_repeats(tokens: Sequence[int]) -> np.ndarray:
    """Per-frame symbols with each run of one symbol made one (CTC's collapse, before blanks go)."""
    tokens = np.asarray(tokens)
    keep = np.ones(len(tokens), bool)
    keep[1:] = tokens[1:] != tokens[:-1]
    return tokens[keep]


def word_alignment_scores(word_log_probs: np.ndarray | torch.Tensor, texts: Sequence[str],
                          vocabulary: Sequence[str]) -> np.ndarray:
    """(len(texts),) each text's best alignment to a clip's (T, W + 1) per-frame word
    log-probabilities (class 0: no word, class i: ``vocabulary[i - 1]``): its words in order,
    each a run of one frame or more, runs of no word optional before, between and after
    them. -inf for a text with more words than frames."""
    frames = np.asarray(torch.as_tensor(word_log_probs, dtype=torch.float32).cpu(), np.float64)
    number = {w: i + 1 for i, w in enumerate(vocabulary)}
    # States per text: none, word 1, none, word 2, ..., word n, none.
    states = [[0] + [k for w in text.split() for k in (number[w], 0)] for text in texts]
    width = max(len(s) for s in states)
    classes = np.array([s + [0] * (width - len(s)) for s in states])          # (H, S)
    real = np.arange(width)[None] < np.array([len(s) for s in states])[:, None]
    # A word state may be entered from the word before it, skipping the optional none.
    skip = (classes > 0) & (np.arange(width)[None] >= 2)
    # Each frame's log-probability of each state, -inf past a text's last state: (T, H, S).
    emitted = np.where(real, frames[:, classes], -np.inf)
    # Two columns of -inf before the states, so "from one or two states back" are slices.
    score = np.full((len(texts), width + 2), -np.inf)
    score[:, 2:4] = emitted[0][:, :2]
    for row in emitted[1:]:
        best = np.maximum(score[:, 2:], score[:, 1:-1])
        best = np.where(skip, np.maximum(best, score[:, :-2]), best)
        score[:, 2:] = best + row
    score = score[:, 2:]
    ends = np.array([len(s) for s in states])
    last = score[np.arange(len(texts)), ends - 1]
    word_end = np.where(ends >= 2, score[np.arange(len(texts)), np.maximum(ends - 2, 0)], -np.inf)
    return np.maximum(last, word_end)


def phrase_log_likelihoods(log_probs: torch.Tensor, phrases: Sequence[str],
                           alphabet: Sequence[str], context: float | None = None) -> np.ndarray:
    """(N,) exact CTC log-likelihood of each phrase under one clip's (T, V) log-probabilities.

    One batched ``ctc_loss`` of the clip against every phrase; a phrase that
    cannot fit in T frames gets ``-inf``. With ``context`` (a log-probability
    per frame, <= 0) the clip may also hold speech around the phrase: a filler
    symbol that stands for anything, at ``context`` a frame, may come before
    and after it (separated by a space), as in a word cut from running speech;
    each phrase then scores the sum over "alone", "after", "before" and
    "between" such speech.
    """
    if not phrases:
        raise ValueError("no phrase to score")
    if log_probs.ndim != 2 or log_probs.shape[1] != len(alphabet) + 1:
        raise ValueError(f"expected (T, {len(alphabet) + 1}) log-probabilities for an alphabet "
                         f"of {len(alphabet)}, got {tuple(log_probs.shape)}")
    targets = [encode(p, alphabet) for p in phrases]
    empty = [p for p, t in zip(phrases, targets) if not t]
    if empty:
        raise ValueError(f"phrases {empty} hold no character to score")
    log_probs = log_probs.float()
    if context is None:
        return _ctc_log_likelihoods(log_probs, targets)
    filler, space = log_probs.shape[1], alphabet.index(SPACE) + 1
    padded = torch.cat([log_probs, torch.full((len(log_probs), 1), float(context))], dim=1)
    variants = [[t, [filler, space] + t, t + [space, filler], [filler, space] + t + [space, filler]]
                for t in targets]
    scores = _ctc_log_likelihoods(padded, [v for group in variants for v in group])
    return np.logaddexp.reduce(scores.reshape(len(targets), 4), axis=1)


def _ctc_log_likelihoods(log_probs: torch.Tensor, targets: list[list[int]]) -> np.ndarray:
    frames = log_probs.shape[0]
    batch = log_probs[:, None].expand(frames, len(targets), log_probs.shape[1]).contiguous()
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    losses = F.ctc_loss(batch, flat, torch.full((len(targets),), frames, dtype=torch.long),
                        torch.tensor([len(t) for t in targets]), blank=BLANK,
                        reduction="none", zero_infinity=False)
    return (-losses).cpu().numpy().astype(np.float64)


def phrase_posterior(log_likelihoods: np.ndarray) -> np.ndarray:
    """The phrases' log-likelihoods normalised over the list (equal priors): (N,) summing to 1."""
    finite = np.isfinite(log_likelihoods)
    if not finite.any():
        return np.full(len(log_likelihoods), 1.0 / len(log_likelihoods))
    shifted = np.where(finite, log_likelihoods - log_likelihoods[finite].max(), -np.inf)
    weights = np.exp(shifted)
    return weights / weights.sum()


def align(reference: Sequence, hypothesis: Sequence) -> list[tuple]:
    """A minimum-edit alignment: (reference unit or None, hypothesis unit or None) pairs, in order."""
    rows, cols = len(reference) + 1, len(hypothesis) + 1
    cost = np.zeros((rows, cols), np.int64)
    cost[:, 0], cost[0, :] = np.arange(rows), np.arange(cols)
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]))
    pairs, i, j = [], rows - 1, cols - 1
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            pairs.append((reference[i - 1], hypothesis[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((reference[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hypothesis[j - 1]))
            j -= 1
    return pairs[::-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word edits (substitutions, deletions, insertions) over all reference words."""
    return _error_rate(references, hypotheses, str.split)


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Character edits over all reference characters (spaces count)."""
    return _error_rate(references, hypotheses, list)


def _error_rate(references, hypotheses, units) -> float:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = sum(sum(a != b for a, b in align(units(normalise_text(r)), units(normalise_text(h))))
                for r, h in zip(references, hypotheses))
    total = sum(len(units(normalise_text(r))) for r in references)
    return edits / total if total else float(edits > 0)
