"""training.language_model on transcripts: word classes, probabilities, and decoding with them."""
import numpy as np
import pytest
import torch

from features.grid import parse_align
from training.decoding import BeamDecoder, alphabet_of, encode, greedy_decode
from training.language_model import ClassBigram, fit_class_bigram

GRID_SLOTS = (("bin", "lay", "place", "set"), ("blue", "green", "red", "white"),
              ("at", "by", "in", "with"), tuple("abcdefghijklmnopqrstuvxyz"),
              ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
              ("again", "now", "please", "soon"))


@pytest.fixture(scope="module")
def grid_transcripts(grid_dir):
    return [" ".join(w.word for w in parse_align(path) if not w.is_silence)
            for path in sorted((grid_dir / "align").glob("*.align"))]


@pytest.fixture(scope="module")
def grid_model(grid_transcripts):
    return fit_class_bigram(grid_transcripts)


def classes_of(model: ClassBigram) -> list[set[str]]:
    groups: dict[int, set[str]] = {}
    for word, cls in zip(model.words, model.classes):
        groups.setdefault(cls, set()).add(word)
    return list(groups.values())


def test_the_classes_found_in_grid_transcripts_never_mix_its_slots(grid_model):
    slot = {w: i for i, words in enumerate(GRID_SLOTS) for w in words}
    groups = classes_of(grid_model)
    assert all(len({slot[w] for w in group}) == 1 for group in groups), groups
    # 51 words in far fewer classes: it generalises beyond the word pairs it saw.
    assert len(groups) <= 15 and sum(len(g) for g in groups) == 51


def test_every_word_and_the_end_share_one_unit_of_probability(grid_model):
    model = grid_model.extended(["i need to move", "help"])
    for before in (None, 0, model.word_index("soon"), model.word_index("help")):
        total = sum(np.exp(model.score(before, w)) for w in range(len(model.words)))
        assert total + np.exp(model.score(before, None)) == pytest.approx(1.0)


def test_a_sentence_with_its_letter_left_out_is_far_less_likely(grid_model):
    short = grid_model.sentence_log_prob("bin blue at two now")
    letters = [grid_model.sentence_log_prob(f"bin blue at {c} two now") for c in GRID_SLOTS[3]]
    # "Some letter stands there" is 50 times likelier than "none does", and any one letter,
    # seen in these transcripts between "at" and "two" or not, is still likelier than none.
    assert np.logaddexp.reduce(letters) > short + np.log(50)
    assert min(letters) > short


def test_the_model_survives_json_and_phrases_extend_it(grid_model):
    again = ClassBigram.from_json(grid_model.to_json())
    assert again == grid_model
    assert again.sentence_log_prob("lay red by x eight soon") == pytest.approx(
        grid_model.sentence_log_prob("lay red by x eight soon"))
    extended = grid_model.extended(["my mouth is dry"])
    assert extended.num_classes == grid_model.num_classes + 4       # each new word its own
    assert extended.sentence_log_prob("my mouth is dry") > -10.0
    with pytest.raises(KeyError):
        grid_model.sentence_log_prob("my mouth is dry")


def test_too_few_transcripts_are_refused_and_a_broken_table_named():
    with pytest.raises(ValueError, match="at least one transcript"):
        fit_class_bigram(["", "  "])
    with pytest.raises(ValueError, match=r"class pair \(0, 7\) does not fit 3 classes"):
        ClassBigram(("a",), (2,), ((0, 2, 1.0), (0, 7, 1.0)), (1.0,))


def test_the_language_model_keeps_a_letter_the_model_barely_saw(grid_transcripts, grid_model):
    """A weak letter loses to the blank in the best path and in the lexicon search; the
    language model knows a letter stands there and reads it."""
    alphabet = alphabet_of(grid_transcripts)
    sentence = "bin blue at f two now"
    path = []
    for symbol in encode(sentence, alphabet):
        path += [0, symbol, symbol]
    path += [0] * (90 - len(path))
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 0.3, (90, len(alphabet) + 1))
    logits[np.arange(90), path] += 6.0
    f = alphabet.index("f") + 1
    for frame in np.flatnonzero(np.array(path) == f):
        logits[frame, 0], logits[frame, f] = 6.0, 3.5                  # the blank wins, narrowly
    log_probs = torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)
    assert greedy_decode(log_probs, alphabet) == "bin blue at two now"
    assert BeamDecoder(alphabet, grid_transcripts).decode(log_probs) == "bin blue at two now"
    weighed = BeamDecoder(alphabet, grid_transcripts, language_model=grid_model)
    assert weighed.decode(log_probs) == sentence
    with pytest.raises(ValueError, match="does not know the words"):
        BeamDecoder(alphabet, grid_transcripts + ["help"], language_model=grid_model)


@pytest.mark.parametrize("weighed", [True, False], ids=["language model", "lexicon alone"])
def test_the_word_head_settles_a_letter_the_characters_leave_open(grid_transcripts, grid_model,
                                                                  weighed):
    """Where the characters read "f" and "s" alike, the reading follows the word head's
    frames: whichever letter it names there, with the language model or the lexicon alone."""
    alphabet = alphabet_of(grid_transcripts)
    path = []
    for symbol in encode("bin blue at f two now", alphabet):
        path += [0, symbol, symbol]
    path += [0] * (90 - len(path))
    logits = np.random.default_rng(1).normal(0, 0.3, (90, len(alphabet) + 1))
    logits[np.arange(90), path] += 6.0
    f, s = alphabet.index("f") + 1, alphabet.index("s") + 1
    letter = np.flatnonzero(np.array(path) == f)
    logits[letter, s] = logits[letter, f]                                # f and s alike
    log_probs = torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)
    words = tuple(sorted({w for t in grid_transcripts for w in t.split()}))
    decoder = BeamDecoder(alphabet, grid_transcripts, head_words=words,
                          language_model=grid_model if weighed else None)
    read = {}
    for named in ("f", "s"):
        head = np.full((90, len(words) + 1), np.log(0.5 / len(words)), np.float32)
        head[:, 0] = np.log(0.5)
        head[letter] = np.log(0.01 / len(words))
        head[letter, words.index(named) + 1] = np.log(0.99)
        read[named] = decoder.readings(log_probs, 1, torch.from_numpy(head))[0][0][0]
    assert read == {"f": "bin blue at f two now", "s": "bin blue at s two now"}
