"""training.decoding on arrays: greedy and beam decoding, phrase-list scoring, error rates."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from training.decoding import (BeamDecoder, align, alphabet_of, char_error_rate, encode,
                               greedy_decode, normalise_text, phrase_log_likelihoods,
                               phrase_posterior, word_error_rate)

SENTENCES = ["bin blue at f two now", "lay red by x eight soon", "set white with p nine again"]
ALPHABET = alphabet_of(SENTENCES)


def emissions(text: str, frames: int = 90, confidence: float = 6.0, seed: int = 0,
              noise: float = 0.5) -> torch.Tensor:
    """(frames, V) log-probabilities that spell ``text``: blank, letter, letter per symbol."""
    rng = np.random.default_rng(seed)
    path = []
    for symbol in encode(text, ALPHABET):
        path += [0, symbol, symbol]
    path += [0] * (frames - len(path))
    logits = rng.normal(0, noise, (frames, len(ALPHABET) + 1))
    logits[np.arange(frames), path] += confidence
    return torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)


def test_text_is_normalised_and_encoded_with_the_blank_first():
    assert normalise_text("  I_need\tto  MOVE ") == "i need to move"
    assert ALPHABET[0] == " " and "q" not in ALPHABET
    assert encode("bin", ALPHABET) == [ALPHABET.index(c) + 1 for c in "bin"]
    with pytest.raises(ValueError, match=r"\['q'\]"):
        encode("quit", ALPHABET)


def test_greedy_and_free_beam_read_a_clear_path():
    for sentence in SENTENCES:
        log_probs = emissions(sentence)
        assert greedy_decode(log_probs, ALPHABET) == sentence
        assert BeamDecoder(ALPHABET).decode(log_probs) == sentence


def test_the_lexicon_turns_a_misread_letter_into_a_known_word():
    log_probs = emissions("bin blue at f two now")
    wrong = log_probs.clone()
    o, u = ALPHABET.index("o") + 1, ALPHABET.index("u") + 1
    rows = torch.nonzero(wrong.argmax(1) == o).flatten()[-2:]           # the "o" of "now"
    wrong[rows, u] = wrong[rows, o] + 1.0                               # now -> nuw, narrowly
    assert greedy_decode(wrong, ALPHABET) == "bin blue at f two nuw"
    lexicon = BeamDecoder(ALPHABET, SENTENCES)
    assert lexicon.decode(wrong) == "bin blue at f two now"
    assert set(lexicon.words) == {w for s in SENTENCES for w in s.split()}


def test_phrase_scores_are_exact_ctc_likelihoods_and_rank_the_spoken_phrase_first():
    log_probs = emissions("lay red by x eight soon", noise=1.0)
    scores = phrase_log_likelihoods(log_probs, SENTENCES, ALPHABET)
    for phrase, score in zip(SENTENCES, scores):
        target = torch.tensor([encode(phrase, ALPHABET)])
        expected = -F.ctc_loss(log_probs[:, None], target, torch.tensor([len(log_probs)]),
                               torch.tensor([target.shape[1]]), reduction="sum")
        assert score == pytest.approx(float(expected), rel=1e-5)
    posterior = phrase_posterior(scores)
    assert posterior.argmax() == 1 and posterior.sum() == pytest.approx(1.0)
    assert phrase_log_likelihoods(emissions("bin", frames=12)[:4], ["bin blue at f two now"],
                                  ALPHABET)[0] == -np.inf           # cannot fit in 4 frames
    with pytest.raises(ValueError, match="log-probabilities"):
        phrase_log_likelihoods(log_probs[:, :5], SENTENCES, ALPHABET)


def test_posterior_of_impossible_phrases_is_uniform_not_nan():
    np.testing.assert_allclose(phrase_posterior(np.array([-np.inf, -np.inf])), [0.5, 0.5])
    np.testing.assert_allclose(phrase_posterior(np.array([-1.0, -np.inf])), [1.0, 0.0])


def test_error_rates_count_every_edit():
    assert word_error_rate(["a b c", "d e"], ["a x c y", "d e"]) == pytest.approx(2 / 5)
    assert char_error_rate(["abc"], ["abd"]) == pytest.approx(1 / 3)
    assert word_error_rate(["Bin  Blue"], ["bin blue"]) == 0.0
    assert align("abc", "xbcd") == [("a", "x"), ("b", "b"), ("c", "c"), (None, "d")]
    with pytest.raises(ValueError, match="2 references but 1"):
        word_error_rate(["a", "b"], ["a"])


def _alignment_by_enumeration(frames: np.ndarray, words: list[int]) -> float:
    """The best alignment of ``words`` (no two equal in a row) by trying every labelling of
    the frames: its runs of words, the no-word class 0 left out, must read ``words``."""
    import itertools

    best = -np.inf
    for labels in itertools.product(range(frames.shape[1]), repeat=len(frames)):
        runs = [k for i, k in enumerate(labels) if k and (i == 0 or k != labels[i - 1])]
        if runs == words:
            best = max(best, float(sum(frames[t, k] for t, k in enumerate(labels))))
    return best


def test_word_alignment_is_the_best_labelling_of_the_frames_by_the_words_in_order():
    from training.decoding import word_alignment_scores

    rng = np.random.default_rng(0)
    vocabulary = ("at", "bin", "blue")
    frames = np.log(rng.dirichlet(np.ones(4), size=6))               # 6 frames, none + 3 words
    texts = ["bin blue", "blue bin", "bin", "at bin blue", "", "bin at blue at bin blue bin"]
    scores = word_alignment_scores(frames, texts, vocabulary)
    for text, score in zip(texts[:5], scores):
        words = [vocabulary.index(w) + 1 for w in text.split()]
        assert score == pytest.approx(_alignment_by_enumeration(frames, words)), text
    assert scores[-1] == -np.inf                                     # 7 words, 6 frames
    # The frames' own words score best: a clip of "bin" then "blue" prefers that reading.
    said = np.full((8, 4), np.log(0.02))
    said[:2, 0] = said[2:5, 2] = said[5:, 3] = np.log(0.94)
    aligned = word_alignment_scores(said, ["bin blue", "blue bin", "at blue", "bin"], vocabulary)
    assert aligned.argmax() == 0 and (aligned[0] - aligned[1:] > 5).all()


def test_the_readings_posterior_is_tempered():
    from training.decoding import hypothesis_posterior

    readings = [("bin blue", -10.0), ("bin at", -14.0), ("", -30.0)]
    sharp = dict(hypothesis_posterior(readings, temperature=1.0))
    mild = dict(hypothesis_posterior(readings, temperature=4.0))
    assert sharp["bin blue"] == pytest.approx(1 / (1 + np.exp(-4) + np.exp(-20)))
    assert mild["bin blue"] == pytest.approx(1 / (1 + np.exp(-1) + np.exp(-5)))
    assert sum(mild.values()) == pytest.approx(1.0)
