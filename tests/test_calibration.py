"""Confidence that means what it says: trained classifiers calibrated on held-apart clips,
and an entry no better than chance or than the model in use not offered as better."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from recognizer.predictor import Predictor
from training import registry
from training.kinds import get_kind
from training.kinds.classifier import fit_temperature, tempered
from training.run import main as train
from training.verdict import Measured, judge

TRAINED_ON = ("bin", "lay", "place")
CLIPS_EACH = 3


@pytest.fixture(scope="module")
def near_chance(word_models, tmp_path_factory):
    """A tiny 1D-CNN trained, without label smoothing, on 3 clips of each of 3 GRID command
    words whose labels are rotated among the words, so nothing can be learnt: it
    cross-validates (3 folds) and fits all 9, then says 80 % of whatever it reads.
    Returns (entry, the held-apart clips of the three words, the run's events)."""
    videos, cache, _ = word_models
    root = tmp_path_factory.mktemp("near_chance")
    held = []
    for k, word in enumerate(TRAINED_ON):
        clips = sorted((videos / word).glob("*.mp4"))
        for j, clip in enumerate(clips[:CLIPS_EACH]):
            folder = root / "videos" / TRAINED_ON[(k + j) % len(TRAINED_ON)]
            folder.mkdir(parents=True, exist_ok=True)
            for part in (clip, clip.with_suffix(".json")):
                shutil.copy(part, folder)
        held += clips[CLIPS_EACH:]
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"optim": {"batch_size": 16, "label_smoothing": 0.0},
                                      "arch": {"width": 16, "depth": 2}}))
    events = root / "events.jsonl"
    assert train(["--config", str(config), "--epochs", "40", "--videos", str(root / "videos"),
                  "--cache", str(cache.root), "--registry", str(root / "models"), "--runs",
                  str(root / "runs"), "--name", "near-chance", "--no-progress",
                  "--events", str(events)]) == 0
    return (root / "models" / "near-chance", held,
            [json.loads(line) for line in events.read_text().splitlines()])


def _confidence_and_accuracy(predictor: Predictor, clips, cache) -> tuple[float, float]:
    readings = [predictor.predict(cache.load(clip)) for clip in clips]
    return (float(np.mean([r.confidence for r in readings])),
            float(np.mean([r.phrase == clip.parent.name for r, clip in zip(readings, clips)])))


def test_a_near_chance_classifier_is_calibrated_to_near_chance(near_chance, word_models):
    entry, held, _ = near_chance
    cache = word_models[1]
    loaded = registry.load_entry(entry, "cpu")
    calibration = loaded.card.training["calibration"]
    assert calibration["fitted_on"] == "9 out-of-fold predictions of 3-fold cross-validation"
    assert loaded.card.input.temperature > 1.0
    confidence, accuracy = _confidence_and_accuracy(Predictor(loaded), held, cache)
    raw = replace(loaded, card=replace(loaded.card, input=replace(loaded.card.input, temperature=1.0)))
    raw_confidence, raw_accuracy = _confidence_and_accuracy(Predictor(raw), held, cache)
    assert raw_accuracy == accuracy and accuracy < 0.5                 # near chance (1/3)
    assert raw_confidence > accuracy + 0.4                            # as trained: far too sure
    assert abs(confidence - 1 / 3) < 0.05                             # calibrated: near chance
    assert abs(confidence - accuracy) < 0.2
    # What the card records of its calibration says the same of the out-of-fold clips.
    assert calibration["after"]["mean_confidence"] < 0.45 < calibration["before"]["mean_confidence"]


def test_a_card_from_before_calibration_reads_as_before(near_chance, tmp_path):
    entry, _, _ = near_chance
    older = shutil.copytree(entry, tmp_path / "older")
    card = json.loads((older / "card.json").read_text())
    del card["input"]["temperature"]
    (older / "card.json").write_text(json.dumps(card))
    loaded = registry.load_entry(older, "cpu")
    assert loaded.card.input.temperature == 1.0
    args = loaded.card.arch_args
    with torch.no_grad():
        logits = loaded.model(torch.randn(2, args["in_channels"], args["length"]))
    kind = get_kind(loaded.card.kind)
    assert torch.allclose(kind.probabilities(logits, loaded.card.input), torch.softmax(logits, 1))


def test_the_progress_of_a_cross_validated_run_counts_every_fold(near_chance):
    from recognizer.gui.train_panel import describe, progress_fraction

    _, _, events = near_chance
    epochs, fractions, texts = None, [], []
    for event in events:
        epochs = event.get("epochs", epochs)
        fraction = progress_fraction(event, epochs)
        if fraction is not None:
            fractions.append(fraction)
        texts.append(describe(event))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "Fold 2 of 3 · epoch 5/40" in texts
    assert "Final fit on every clip · epoch 40/40" in texts
    assert 0.74 < fractions[len(fractions) * 3 // 4 - 1] < 0.76     # 3 folds of 4 fits done


def test_a_near_chance_entry_is_judged_no_better_than_chance(near_chance):
    card = registry.read_card(near_chance[0])
    verdict = judge(Measured.of_card(card), None)
    assert verdict.better_than_chance is False and not verdict.usable
    assert verdict.text.startswith("Not better than chance (") and "of 3 phrases, chance 33%" in verdict.text
    # Nor is it made the model in use, though its kind had none; the run says so.
    assert registry.active_names(near_chance[0].parent) == {}
    [done] = [event for event in near_chance[2] if event["event"] == "done"]
    assert "not made the landmark_cnn in use: no better than chance" in done["text"]


def test_temperature_scaling_flattens_confident_guesses_and_keeps_honest_ones():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    guesses = np.full((60, 3), 0.005)
    picks = rng.integers(0, 3, 60)
    guesses[np.arange(60), picks] = 0.99                            # 99 % sure, right 40 %
    temperature = fit_temperature(guesses, labels)
    assert temperature > 10
    assert tempered(guesses, temperature).max(1).mean() == pytest.approx((picks == labels).mean(), abs=0.02)
    honest = np.full((60, 3), 0.1)
    picks = np.where(np.arange(60) < 48, labels, (labels + 1) % 3)
    honest[np.arange(60), picks] = 0.8                              # 80 % sure, right 80 %
    assert fit_temperature(honest, labels) == pytest.approx(1.0, rel=0.1)
    assert fit_temperature(guesses[:0], labels[:0]) == 1.0


@pytest.mark.parametrize("new, in_use, usable, worse, text", [
    (Measured("new", 0.3, None, ("a", "b", "c"), 10), None, False, None,
     "Not better than chance (30% right on 10 test clips of 3 phrases, chance 33%): not used"),
    (Measured("new", 0.5, None, ("a", "b", "c"), 10), Measured("old", 0.9, None, ("a", "b", "c")),
     False, None, "Not better than chance (50% right on 10 test clips of 3 phrases, chance 33%): "
     "keeping old"),
    (Measured("new", 0.8, None, ("a", "b", "c"), 20), Measured("old", 0.9, None, ("c", "b", "a")),
     False, "old", "Worse than old in use (80% against 90% of the same phrases): keeping old"),
    (Measured("new", 0.8, None, ("a", "b", "c"), 20), Measured("old", 0.9, None, ("a", "b", "d")),
     True, None, "Better than chance (80% right on 20 test clips of 3 phrases, chance 33%)"),
    (Measured("new", None, 1.0), Measured("shipped", None, 0.058), False, None,
     "Reads next to nothing (test WER 100%): keeping shipped"),
    (Measured("new", None, 0.3), Measured("shipped", None, 0.058), False, "shipped",
     "Worse than shipped in use (test WER 30% against 6%): keeping shipped"),
    (Measured("new", None, 0.04), Measured("shipped", None, 0.058), True, None,
     "Better than chance (test WER 4%)"),
])
def test_a_new_entry_is_weighed_against_chance_and_the_model_in_use(new, in_use, usable, worse, text):
    verdict = judge(new, in_use)
    assert (verdict.usable, verdict.worse_than, verdict.text) == (usable, worse, text)
