"""Splits (group-aware, three strategies), their analysis, and class balancing."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from features.dataset import build_manifest
from features.grid import import_grid
from training.balance import (FocalLoss, class_weights, duplicate_from_group, main, make_sampler,
                              sample_weights)
from training.config import SplitConfig
from training.splits import (connected_groups, group_mask, make_splits, parse_group,
                             split_analysis, write_split_analysis)
from tests.conftest import grid_ids

# A command and a colour from one sentence share its source recording.
WORDS = ("bin", "lay", "set", "blue", "red")
SPEAKERS = {"p1": ("male", "18-39"), "p2": ("male", "40-64"), "p3": ("female", "18-39"),
            "p4": ("female", "40-64"), "p5": ("male", "18-39"), "p6": ("female", "65+")}


@pytest.fixture(scope="module")
def rows(grid_dir, tmp_path_factory):
    """Real GRID word clips with made-up speakers and demographics, one speaker per sentence."""
    root = tmp_path_factory.mktemp("videos")
    ids = [i for i in grid_ids() if i[0] in "bls"]
    summary = import_grid(grid_dir, root, words=WORDS, padding=1, sentences=ids[::5][:40])
    assert not summary.failed
    table = build_manifest(root)
    sources = sorted(set(table["source"]))
    speaker_of = {s: sorted(SPEAKERS)[i % len(SPEAKERS)] for i, s in enumerate(sources)}
    table["speaker"] = table["source"].map(speaker_of)
    table["gender"] = table["speaker"].map(lambda s: SPEAKERS[s][0])
    table["age_band"] = table["speaker"].map(lambda s: SPEAKERS[s][1])
    assert (table.groupby("source")["clip"].count() > 1).any()
    return table


def _owners(rows: pd.DataFrame, splits: dict, column: str) -> dict:
    owners: dict = {}
    for name, index in splits.items():
        for value in rows[column].iloc[index]:
            owners.setdefault(value, set()).add(name)
    return owners


def _assert_partition(rows, splits):
    joined = np.sort(np.concatenate(list(splits.values())))
    np.testing.assert_array_equal(joined, np.arange(len(rows)))
    assert all(len(index) for index in splits.values())
    assert all(len(where) == 1 for where in _owners(rows, splits, "source").values())


@pytest.mark.parametrize("config", [
    SplitConfig(strategy="stratified", seed=3),
    SplitConfig(strategy="speaker", val_fraction=0.2, test_fraction=0.2),
    SplitConfig(strategy="holdout", test_holdout="gender=female,age_band=40-64"),
    SplitConfig(strategy="holdout", val_holdout="age_band=65+", test_holdout="speaker=p2"),
])
def test_no_source_straddles_splits(rows, config):
    splits = make_splits(rows, config)
    _assert_partition(rows, splits)
    again = make_splits(rows, config)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_stratified_puts_every_class_everywhere_and_depends_on_seed(rows):
    three = rows[rows["label"].isin(["bin", "lay", "set"])].reset_index(drop=True)
    splits = make_splits(three, SplitConfig(seed=0))
    for index in splits.values():
        assert set(three["label"].iloc[index]) == {"bin", "lay", "set"}
    other = make_splits(three, SplitConfig(seed=1))
    assert not np.array_equal(splits["test"], other["test"])


def test_speaker_split_never_shares_a_speaker(rows):
    splits = make_splits(rows, SplitConfig(strategy="speaker", seed=2))
    owners = _owners(rows, splits, "speaker")
    assert all(len(where) == 1 for where in owners.values())
    assert split_analysis(rows, splits)["leaks"] == {"speaker": [], "source": []}


def test_speaker_names_differing_in_case_or_spaces_are_one_speaker():
    """Sidecars typed by hand: "Bed 4" and "bed 4 " are one person, as holdout specs match them."""
    speakers = [f"p{i}" for i in range(8)] + ["Bed 4", "bed 4 "]
    frame = pd.DataFrame({
        "speaker": [s for s in speakers for _ in range(4)],
        "source": [f"{s.strip()}-take{t}" for s in speakers for t in (0, 0, 1, 1)],
        "label": ["a", "b"] * (2 * len(speakers))})
    bed = {s: np.flatnonzero(frame["speaker"] == s) for s in ("Bed 4", "bed 4 ")}
    for seed in range(20):
        splits = make_splits(frame, SplitConfig(strategy="speaker", val_fraction=0.2,
                                                test_fraction=0.2, seed=seed))
        where = {name for name, index in splits.items() for s in bed if set(bed[s]) & set(index)}
        assert len(where) == 1, f"seed {seed}: bed 4 is in {sorted(where)}"
        assert split_analysis(frame, splits)["leaks"]["speaker"] == []
    by_hand = {"train": np.r_[np.arange(32), bed["Bed 4"]], "val": np.array([], np.int64),
               "test": bed["bed 4 "]}
    assert split_analysis(frame, by_hand)["leaks"]["speaker"] == ["bed 4"]


def test_holdout_rows_land_where_configured(rows):
    config = SplitConfig(strategy="holdout", test_holdout="gender=female,age_band=40-64")
    splits = make_splits(rows, config)
    held = np.flatnonzero((rows["gender"] == "female") & (rows["age_band"] == "40-64"))
    np.testing.assert_array_equal(splits["test"], held)
    assert not set(splits["val"]) & set(held)
    both = make_splits(rows, SplitConfig(strategy="holdout", val_holdout="gender=Male",
                                         test_holdout="speaker=p6"))
    np.testing.assert_array_equal(both["val"], np.flatnonzero(rows["gender"] == "male"))
    np.testing.assert_array_equal(both["test"], np.flatnonzero(rows["speaker"] == "p6"))
    np.testing.assert_array_equal(both["train"], np.flatnonzero(rows["speaker"].isin(["p3", "p4"])))


@pytest.mark.parametrize("spec, match", [
    ("gender", "not 'column=value'"), ("gender=male,,", "not 'column=value'"),
    ("colour=red", "unknown column 'colour'"), ("gender=male,gender=female", "named twice"),
    ("", "expected 'column=value")])
def test_bad_group_specs_are_named(rows, spec, match):
    with pytest.raises(ValueError, match=match):
        parse_group(spec, rows.columns)


def test_impossible_splits_say_why(rows):
    with pytest.raises(ValueError, match="matches no clip.*gender: female, male"):
        make_splits(rows, SplitConfig(strategy="holdout", test_holdout="gender=other"))
    with pytest.raises(ValueError, match="needs split.val_holdout"):
        make_splits(rows, SplitConfig(strategy="holdout"))
    with pytest.raises(ValueError, match="choose one of"):
        make_splits(rows, SplitConfig(strategy="random"))
    with pytest.raises(ValueError, match="overlap"):
        make_splits(rows, SplitConfig(strategy="holdout", val_holdout="speaker=p1",
                                      test_holdout="gender=male"))
    few = rows[rows["speaker"].isin(["p1", "p2"])]
    with pytest.raises(ValueError, match="only 2 speaker"):
        make_splits(few, SplitConfig(strategy="speaker"))
    tiny = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 2, "source": [f"s{i}" for i in range(8)]})
    with pytest.raises(ValueError, match="class 'b': 2 clip"):
        make_splits(tiny, SplitConfig())


def test_mixed_groups_follow_their_source():
    frame = pd.DataFrame({"label": list("ab" * 12), "source": [f"r{i // 2}" for i in range(24)],
                          "gender": ["male"] * 24})
    frame.loc[0, "gender"] = "female"
    groups = connected_groups(frame, ("source",))
    assert len(set(groups)) == 12 and groups[0] == groups[1]
    splits = make_splits(frame, SplitConfig(seed=4))
    assert all(len(w) == 1 for w in _owners(frame, splits, "source").values())
    with pytest.raises(ValueError, match="source 'r0' has clips in and out"):
        make_splits(frame, SplitConfig(strategy="holdout", test_holdout="gender=female"))


def test_split_analysis_counts_add_up(rows, tmp_path):
    splits = make_splits(rows, SplitConfig(strategy="speaker"))
    analysis = split_analysis(rows, splits)
    assert sum(analysis["sizes"].values()) == analysis["total"] == len(rows)
    for name, size in analysis["sizes"].items():
        assert sum(analysis["classes"][name].values()) == size
        assert sum(analysis["speakers"][name].values()) == size
        for column in ("gender", "age_band"):
            assert sum(analysis["groups"][column][name].values()) == size
    per_class = rows["label"].value_counts()
    for label, count in per_class.items():
        assert sum(analysis["classes"][n].get(label, 0) for n in splits) == count
    path = write_split_analysis(tmp_path, analysis)
    assert path.name == "split_analysis.json" and json.loads(path.read_text()) == analysis
    assert [p.name for p in tmp_path.iterdir()] == ["split_analysis.json"]


def test_inverse_weights_equalise_sampled_classes():
    labels = np.repeat([0, 1, 2], [400, 100, 20])
    weights = class_weights(labels, 3, "inverse")
    assert np.allclose(weights * [400, 100, 20], weights[0] * 400)
    assert np.isclose(weights[labels].mean(), 1.0)
    for mode, expected in (("inverse", [1 / 3] * 3), ("inverse_sqrt", np.sqrt([400, 100, 20]))):
        sampler = make_sampler(labels, mode, generator=torch.Generator().manual_seed(0))
        drawn = np.concatenate([labels[list(sampler)] for _ in range(40)])
        share = np.bincount(drawn, minlength=3) / len(drawn)
        np.testing.assert_allclose(share, np.asarray(expected) / np.sum(expected), atol=0.015)
    assert make_sampler(labels, "none") is None
    assert sample_weights(labels, "inverse").shape == (520,)
    with pytest.raises(ValueError, match=r"classes \[3\] have no sample"):
        class_weights(labels, 4, "inverse")


def test_duplication_reaches_the_largest_class_from_the_group_only():
    frame = pd.DataFrame({"label": ["a"] * 10 + ["b"] * 6 + ["c"] * 3,
                          "gender": (["female"] * 10 + ["male", "male"] + ["female"] * 4
                                     + ["male", "female", "female"])})
    index = duplicate_from_group(frame, "gender=male", seed=1)
    counts = frame["label"].iloc[index].value_counts()
    assert counts.to_dict() == {"a": 10, "b": 10, "c": 10}
    np.testing.assert_array_equal(np.sort(np.unique(index)), np.arange(len(frame)))
    extra = pd.Series(index[len(frame):]).value_counts()
    assert set(extra.index) <= set(np.flatnonzero(frame["gender"] == "male"))
    assert extra[10] == extra[11] == 2 and extra[16] == 7
    with pytest.raises(ValueError, match="class 'c' needs 8 more.*no clip in that group"):
        duplicate_from_group(frame.drop(index=16), "gender=male")


def test_duplication_on_real_rows(rows):
    index = duplicate_from_group(rows, "gender=male,age_band=18-39")
    counts = rows["label"].iloc[index].value_counts()
    assert (counts == rows["label"].value_counts().max()).all()
    assert group_mask(rows.iloc[index[len(rows):]], "gender=male,age_band=18-39").all()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_loss_with_gamma_zero_is_cross_entropy(weighted, smoothing):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=generator)
    target = torch.randint(0, 5, (16,), generator=generator)
    weight = torch.rand(5, generator=generator) + 0.5 if weighted else None
    focal = FocalLoss(0.0, weight, smoothing)(logits, target)
    expected = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    torch.testing.assert_close(focal, expected)
    assert FocalLoss(2.0, weight, smoothing)(logits, target) < expected


def test_focal_loss_downweights_easy_examples():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]], requires_grad=True)
    target = torch.tensor([0, 0])
    with torch.no_grad():
        per_example = [float(FocalLoss(2.0)(logits[i:i + 1], target[i:i + 1])) for i in range(2)]
        ce = [float(F.cross_entropy(logits[i:i + 1], target[i:i + 1])) for i in range(2)]
    assert per_example[0] / ce[0] < 0.01 < per_example[1] / ce[1]
    FocalLoss(2.0)(logits, target).backward()
    assert torch.isfinite(logits.grad).all()


def test_analyze_prints_class_and_group_tables(grid_dir, tmp_path, capsys):
    import_grid(grid_dir, tmp_path, words=["bin", "lay"], sentences=grid_ids()[:6])
    assert main(["analyze", "--videos", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("class", "bin", "gender", "age_band", "speaker", "s1", "unknown", "share %"):
        assert text in out
    assert main(["analyze", "--videos", str(tmp_path / "missing")]) == 2


def test_sentence_split_never_shares_a_transcript():
    texts = [f"sentence {i // 3}" for i in range(60)]            # three takes of each of 20
    rows = pd.DataFrame({"label": [t.replace(" ", "_") for t in texts], "text": texts,
                         "source": [f"take{i}" for i in range(60)], "clip": [f"c{i}" for i in range(60)]})
    splits = make_splits(rows, SplitConfig(strategy="sentence", val_fraction=0.1, test_fraction=0.25))
    _assert_partition(rows, splits)
    assert all(len(where) == 1 for where in _owners(rows, splits, "text").values())
    assert 12 <= len(splits["test"]) <= 18 and len(splits["val"]) >= 3
    counts = split_analysis(rows, splits)["transcripts"]
    for name, index in splits.items():
        assert counts[name] == {"sentences": len(index) // 3, "words": 2 * len(index),
                                "vocabulary": len(index) // 3 + 1}
