"""The few-shot kind: prototype maths on arrays, then enrolment from real GRID word clips
with the shipped sentence reader's encoder, tested on clips of other sentences."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recognizer.predictor import Predictor
from tests.conftest import COLOUR_WORDS as COLOURS
from tests.conftest import SHIPPED_READER as READER
from training import prototypes
from training.registry import read_card
from training.run import main as run


def test_leave_one_out_similarity_is_the_prototype_made_without_the_sample():
    rng = np.random.default_rng(0)
    embeddings, owners = rng.normal(size=(9, 5)), np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    loo = prototypes.leave_one_out_similarities(embeddings, owners, 4)
    units = prototypes.unit_rows(embeddings)
    for i in range(9):
        keep = np.arange(9) != i
        rows = prototypes.prototypes(embeddings[keep], owners[keep], 4)
        expected = units[i] @ rows.T
        if owners[i] == 3:       # its class has no other sample: untestable
            assert np.isnan(loo[i, 3])
            expected[3] = loo[i, 3]
        np.testing.assert_allclose(loo[i], expected, atol=1e-9)


def test_ctc_term_speaks_only_for_the_phrases_it_scores():
    likelihoods = np.array([[-5.0, -2.0, -9.0], [-1.0, -4.0, -3.0]])
    term = prototypes.ctc_term(likelihoods, np.array([True, True, False]))
    np.testing.assert_allclose(term, [[-3.0, 0.0, 0.0], [0.0, -3.0, 0.0]])
    assert not prototypes.ctc_term(likelihoods, np.zeros(3, bool)).any()


def test_calibration_is_honest_about_clusters_and_about_noise():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)) * 3
    owners = np.repeat(np.arange(4), 5)
    clustered = centres[owners] + rng.normal(size=(20, 16))
    noise = rng.normal(size=(20, 16))
    good = prototypes.calibrate(prototypes.leave_one_out_similarities(clustered, owners, 4),
                                np.zeros((20, 4)), owners)
    bad = prototypes.calibrate(prototypes.leave_one_out_similarities(noise, owners, 4),
                               np.zeros((20, 4)), owners)
    assert good.accuracy == 1.0 and bad.accuracy <= 0.5
    # Sure where the samples agree, unsure where they are noise: the temperature follows.
    assert np.nanmax(good.probabilities, axis=1).mean() > 0.8
    assert np.nanmax(bad.probabilities, axis=1).mean() < 0.6
    assert bad.temperature > good.temperature
    lonely = prototypes.calibrate(prototypes.leave_one_out_similarities(noise[:4], np.arange(4), 4),
                                  np.zeros((4, 4)), np.arange(4))
    assert not lonely.fitted and lonely.temperature == prototypes.DEFAULT_TEMPERATURE


def first_samples(clips: dict, folder: Path, count: int) -> Path:
    """A clip folder with the first ``count`` clips of each word (and their sidecars)."""
    for word, paths in clips.items():
        (folder / word).mkdir(parents=True)
        for path in paths[:count]:
            for suffix in (".mp4", ".json"):
                shutil.copy(str(path).replace(".mp4", suffix), folder / word)
    return folder


def train(kind: str, videos: Path, cache, tmp_path: Path, *flags: str) -> Path:
    assert run(["--model", kind, "--videos", str(videos), "--cache", str(cache.root),
                "--registry", str(tmp_path / "models"), "--runs", str(tmp_path / "runs"),
                "--name", "ward", "--no-progress", *flags]) == 0
    return tmp_path / "models" / "ward"


def test_cross_validation_folds_hold_each_recording_out_once_and_spread_each_class():
    import pandas as pd

    from training.splits import cross_validation_folds

    rows = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 3 + ["c"],
                         "source": ["r1", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]})
    folds = cross_validation_folds(rows, 3, seed=0)
    assert sorted(np.concatenate(folds)) == list(range(10))
    assert sum(0 in f and 1 in f for f in folds) == 1            # one recording, one fold
    for label in "ab":
        held = [int((rows["label"].iloc[f] == label).sum()) for f in folds]
        assert max(held) - min(held) <= 1, (label, held)
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_validation_folds(rows, 1)


def test_small_data_counts_the_recordings_a_split_could_deal_out():
    import pandas as pd

    from training.splits import fewest_recordings

    # Ten clips of "white" in four recordings, two of them beside the rarer "bin", which a split
    # deals out as "bin": two recordings are the split's to deal for "white".
    rows = pd.DataFrame({"label": ["bin", "white"] * 2 + ["white"] * 6 + ["red"] * 3,
                         "source": ["s1", "s1", "s2", "s2"] + ["s3"] * 3 + ["s4"] * 3 + ["s5", "s6", "s7"]})
    assert fewest_recordings(rows) == 2
    assert fewest_recordings(rows[rows["label"] != "bin"]) == 3


def test_a_trained_kind_with_few_samples_is_cross_validated_then_fitted_on_all(colour_clips,
                                                                              grid_cache, tmp_path):
    """Three samples a word: a split would leave one to train on; the report is
    cross-validated and the entry holds a model of all twelve."""
    entry = train("landmark_cnn", first_samples(colour_clips[1], tmp_path / "few", 3), grid_cache[0],
                  tmp_path, "--epochs", "3")
    card = read_card(entry)
    assert card.metrics["evaluation"] == "3-fold cross-validation" and card.training["folds"] == 3
    assert card.data["clips"] == 12 and card.training["epochs_run"] == 3
    report = json.loads((entry / "final_report.json").read_text())["cross_validation"]
    assert report["n"] == 12
    # Each clip was named by exactly one fold's model, which had not trained on it.
    folds = [np.load(f) for f in sorted((tmp_path / "runs" / "ward").glob("fold*.npz"))]
    assert len(folds) == 3 and sum(len(f["labels"]) for f in folds) == 12
    assert all(np.bincount(f["labels"], minlength=4).tolist() == [1, 1, 1, 1] for f in folds)
    merged = np.concatenate([f["probs"].argmax(1) == f["labels"] for f in folds])
    assert report["accuracy"] == pytest.approx(merged.mean())
    assert len(json.loads((entry / "clips.json").read_text())["train"]) == 12
    summary = (entry / "TRAINING_SUMMARY.md").read_text()
    assert "small data" in summary and "fitted on all 12 clips" in summary


def test_few_shot_enrols_in_one_pass_and_names_words_of_other_sentences(colour_clips, grid_cache,
                                                                         tmp_path):
    videos, clips = colour_clips
    entry = train("few_shot", first_samples(clips, tmp_path / "enrol", 3), grid_cache[0], tmp_path)
    card = read_card(entry)
    assert card.kind == "few_shot" and card.classes == COLOURS
    assert card.training["epochs_run"] == 0 and card.training["encoder"] == READER.name
    assert card.metrics["evaluation"] == "leave-one-out" and card.metrics["tested"] == 12
    assert {row["samples"] for row in card.metrics["per_class"].values()} == {3}
    summary = (entry / "TRAINING_SUMMARY.md").read_text()
    assert "leave-one-out" in summary and "| green | 3 |" in summary
    assert json.loads((entry / "final_report.json").read_text())["leave_one_out"]["samples"] == 12

    predictor = Predictor.from_entry(entry, device="cpu")
    held_out = [(word, path) for word, paths in clips.items() for path in paths[3:]]
    cache = grid_cache[0]
    from features.extract import extract_many
    extract_many([Path(p) for _, p in held_out], cache, workers=2)
    predictions = [predictor.predict(cache.load(path)) for _, path in held_out]
    accuracy = np.mean([p.phrase == word for p, (word, _) in zip(predictions, held_out)])
    assert len(held_out) >= 30 and accuracy >= 0.8, accuracy
    # Its confidence means something: the right answers are surer than the wrong ones.
    right = [p.confidence for p, (word, _) in zip(predictions, held_out) if p.phrase == word]
    wrong = [p.confidence for p, (word, _) in zip(predictions, held_out) if p.phrase != word]
    assert np.mean(right) > 0.6 and (not wrong or np.mean(wrong) < np.mean(right))
    # training.evaluate reads the entry as the app does (its batches padded, its logits).
    from training.evaluate import evaluate_entry
    _, _, evaluated, _ = evaluate_entry(entry, videos, cache.root)
    assert evaluated.probs.shape == (len(evaluated.labels), 4) and len(evaluated.labels) >= 42
    assert np.mean(evaluated.probs.argmax(1) == evaluated.labels) >= 0.8
