"""The sentence reader's confidences: the posteriors' calibration, its fit and where it is used."""
import json

import numpy as np
import pytest

from training.reader_calibration import (Calibration, PhraseProblem, _phrase_nll_grid,
                                         expected_calibration_error, fit_calibration,
                                         phrase_figures, phrase_list_posterior, phrase_spans,
                                         reading_figures, reading_posterior, something_else)


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def test_the_phrase_posterior_tempers_the_scores_and_biases_something_else():
    likelihoods, other = np.array([-4.0, -10.0, -7.0]), -5.0
    plain = phrase_list_posterior(likelihoods, other, Calibration())
    np.testing.assert_allclose(plain, softmax([-4, -10, -7, -5])[:3])
    calibrated = phrase_list_posterior(likelihoods, other, Calibration(2.0, -3.0))
    np.testing.assert_allclose(calibrated, softmax(np.array([-4, -10, -7, -8]) / 2)[:3])
    # With no reading outside the list, the list takes everything.
    assert phrase_list_posterior(likelihoods, -np.inf, Calibration(2.0, -3.0)).sum() == \
        pytest.approx(1.0)


def test_something_else_is_the_best_reading_outside_the_list():
    readings = [("bin blue", -3.0), ("help", -4.0), ("bin", -6.0)]
    assert something_else(readings, ["Bin  Blue", "help"]) == -6.0
    assert something_else(readings, ["bin blue", "help", "bin"]) == -np.inf


def test_the_readings_posterior_drops_reading_nothing_but_keeps_its_share():
    readings = [("", -1.0), ("set red", -2.0), ("set rad", -6.0)]
    posterior = reading_posterior(readings, Calibration(sentence_temperature=2.0))
    expected = softmax(np.array([-1.0, -2.0, -6.0]) / 2)
    assert [t for t, _ in posterior] == ["set red", "set rad"]
    np.testing.assert_allclose([p for _, p in posterior], expected[1:])


def test_a_calibration_survives_the_card_and_older_cards_read_as_before():
    fitted = Calibration(3.17, -10.0, 6.35, "240 phrase clips of the validation split")
    assert Calibration.from_json(json.loads(json.dumps(fitted.to_json()))) == fitted
    # Readers trained before calibration: phrases untempered, readings at the old constant.
    assert Calibration.from_json({}) == Calibration(1.0, 0.0, 4.0, "")
    with pytest.raises(ValueError, match="phrase_temperature"):
        Calibration.from_json({"phrase_temperature": 0})
    with pytest.raises(ValueError, match="other_bias"):
        Calibration(other_bias=float("nan"))


def _problem(own, distractors, other_with, other_without):
    likelihoods = np.concatenate([[own], distractors])
    k = len(distractors)
    return PhraseProblem(likelihoods, (other_with, other_without),
                         (np.arange(k), np.arange(1, k + 1)))


def _inflated_other_problems(n=150, seed=0):
    """Like GRID's word clips: the listed phrase is always right, but "something else"
    (fragments of the neighbours) scores about as well; without the phrase in the list,
    something else is right and the other phrases lie far below."""
    rng = np.random.default_rng(seed)
    return [_problem(-10.0, -10.0 - rng.uniform(8, 30, 12),
                     -10.0 + rng.normal(0, 2), -10.0 + rng.normal(0, 2)) for _ in range(n)]


def test_the_vectorised_fit_scores_what_the_posterior_gives():
    problems = _inflated_other_problems(20)
    temperatures, biases = np.array([0.5, 2.0, 5.0]), np.array([-8.0, 0.0, 3.0])
    grid = _phrase_nll_grid(problems, temperatures, biases)
    for i, t in enumerate(temperatures):
        for j, b in enumerate(biases):
            assert grid[i, j] == pytest.approx(phrase_figures(problems, Calibration(t, b))["nll"],
                                               abs=1e-4)


def test_fitting_gives_a_right_phrase_its_confidence_without_trusting_unlisted_ones():
    fit_on, held = _inflated_other_problems(seed=0), _inflated_other_problems(seed=1)
    calibration = fit_calibration(fit_on, [], "synthetic clips")
    assert calibration.other_bias < -2
    assert calibration.fitted_on == "150 phrase clips of synthetic clips"
    before, after = phrase_figures(held, Calibration()), phrase_figures(held, calibration)
    assert after["nll"] < 0.5 * before["nll"]
    assert before["sure_of_right_phrase"] < 0.8
    assert after["sure_of_right_phrase"] > 0.95
    assert after["sure_when_unlisted"] < 0.05
    # The reading temperature had nothing to fit on and keeps its default.
    assert calibration.sentence_temperature == Calibration().sentence_temperature


def test_the_reading_temperature_undoes_overconfident_scores():
    """Readings whose scores are 6 times the log-odds of being right: the fit finds ~6."""
    rng = np.random.default_rng(0)
    problems = []
    for _ in range(400):
        logits = rng.normal(0, 1.5, 5)
        right = rng.choice(5, p=softmax(logits))
        texts = [f"reading {k}" for k in range(5)]
        problems.append(([(t, 6 * z) for t, z in zip(texts, logits)], texts[right]))
    calibration = fit_calibration([], problems, "synthetic sentences")
    assert 4.5 < calibration.sentence_temperature < 8
    assert reading_figures(problems, calibration)["calibration_error"] < 0.06 < \
        reading_figures(problems, Calibration(sentence_temperature=1.0))["calibration_error"]
    # Too few to fit on: the defaults, said so.
    assert fit_calibration([], problems[:5], "x") == Calibration()


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    assert expected_calibration_error([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0]) == pytest.approx(0.15)
    assert expected_calibration_error([0.25, 0.95], [0, 1]) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)


class _Set:
    def __init__(self, examples, targets):
        self.examples, self.targets = examples, targets


def test_phrase_clips_are_runs_of_whole_words_with_their_padding():
    from training.kinds.landmark_ctc import sentence_target

    classes = tuple(" abdehilnorstuwy")
    words = [["bin", 10, 20], ["blue", 22, 30], ["at", 33, 36], ["now", 40, 55]]
    timed = sentence_target("bin blue at now", words, classes, ("at", "bin", "blue", "now"))
    whole = sentence_target("lay white", None, classes)
    dataset = _Set([(np.zeros((60, 2)), None), (np.zeros((25, 2)), None)], [timed, whole])
    spans = phrase_spans(dataset, classes)
    assert (0, slice(6, 24), "bin") in spans and (0, slice(36, 59), "now") in spans
    assert (0, slice(6, 40), "bin blue at") in spans and (0, slice(18, 59), "blue at now") in spans
    assert not any(text == "bin blue at now" for _, _, text in spans)     # 3 words at most
    assert (1, slice(0, 25), "lay white") in spans                          # no timings: whole
    assert len(spans) == 4 + 3 + 2 + 1
    assert len(phrase_spans(dataset, classes, limit=5)) == 5


def test_a_trained_reader_reads_with_the_calibration_fitted_on_its_validation_clips(
        sentence_entry, grid_cache):
    import torch

    from recognizer.predictor import Predictor
    from training.decoding import phrase_log_likelihoods

    entry = sentence_entry[0]
    card = json.loads((entry / "card.json").read_text())
    calibration = Calibration.from_json(card["input"]["calibration"])
    # 12 validation sentences of 6 timed words: 15 runs each; too few sentences for the
    # readings' temperature, which keeps its default.
    assert calibration.fitted_on == "180 phrase clips of the validation split"
    assert calibration.sentence_temperature == Calibration().sentence_temperature
    # Fitted away from the defaults, so reading with the defaults below would fail.
    assert (calibration.phrase_temperature, calibration.other_bias) != (1.0, 0.0)
    report = json.loads((entry / "final_report.json").read_text())["test"]["calibration"]
    assert report["calibration"] == card["input"]["calibration"]
    assert report["phrases"]["calibrated"]["lists"] == 2 * 180
    assert "## Confidences on the test split" in (entry / "TRAINING_SUMMARY.md").read_text()

    predictor = Predictor.from_entry(entry, "cpu", phrases=("bin blue at f two now", "help"))
    cache, paths = grid_cache
    clip = cache.load(paths[1::3][1])                 # a sentence the reader never saw
    with torch.inference_mode():
        log_probs, _ = predictor._model_kind.read_emissions(predictor.entry.model,
                                                            predictor.model_batch(clip))
    likelihoods = phrase_log_likelihoods(log_probs, predictor.phrases, predictor.entry.card.classes)
    _, plain = predictor._decoder.readings(log_probs, 20)
    expected = phrase_list_posterior(likelihoods, something_else(plain, predictor.phrases),
                                     calibration)
    np.testing.assert_allclose(predictor.predict(clip).probabilities, expected, atol=1e-5)
