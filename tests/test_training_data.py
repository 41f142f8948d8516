"""training.data and training.transforms on real GRID word clips: loading, resampling,
normalisation, augmentation, and the kinds' datasets."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from features.cache import ClipFeatures, FeatureCache
from features.dataset import build_manifest, save_clip
from features.frame_features import FEATURE_NAMES, FeaturePipeline
from features.grid import import_grid
from features.mouth_image import appearance_names, mouth_appearance
from features.video import Frame, read_frames
from training.config import AugmentConfig, DataConfig
from training.data import load_dataset
from training.kinds import get_kind
from training.kinds.landmark_cnn import clip_sequence
from training.transforms import (add_noise, augment_sequence, drop_frames, fit_normalisation,
                                 mirror, mirror_plan, resample_linear, resample_nearest, resize_crops,
                                 time_warp)
from tests.conftest import grid_ids

LANDMARKS, CROPS = get_kind("landmark_cnn"), get_kind("r2plus1d")
CPU = torch.device("cpu")

WORDS = ("bin", "lay", "set")
PER_CLASS = 4
CONFIG = DataConfig(sequence_length=32, velocities=True, crop_frames=24, workers=1)
SEQUENCE_NAMES = FEATURE_NAMES + tuple(f"d_{n}" for n in FEATURE_NAMES) + ("duration_s",)


def _sentences(count: int) -> list[str]:
    """``count`` sentence ids spread over the bin / lay / set commands (the first letter)."""
    ids = [i for i in grid_ids() if i[0] in "bls"]
    return ids[::max(1, len(ids) // count)][:count]


@pytest.fixture(scope="module")
def videos(grid_dir, tmp_path_factory):
    """Word clips of bin / lay / set from 40 sentences, plus two clips that cannot work."""
    root = tmp_path_factory.mktemp("videos")
    summary = import_grid(grid_dir, root, words=WORDS, padding=2, sentences=_sentences(40))
    assert not summary.failed and len(summary.written) >= 30
    save_clip(root, "bin", [np.zeros((96, 96, 3), np.uint8)] * 6, 25.0, clip_name="zz_black")
    (root / "lay" / "zz_garbage.mp4").write_bytes(b"not a video " * 100)
    return root


@pytest.fixture(scope="module")
def manifest(videos):
    table = build_manifest(videos)
    good = table[~table["clip"].str.startswith("zz_")].groupby("label").head(PER_CLASS)
    bad = table[table["clip"].str.startswith("zz_")]
    return pd.concat([good, bad], ignore_index=True)


@pytest.fixture(scope="module")
def loaded(manifest, tmp_path_factory):
    """(landmark ClipSet, progress calls, cache) for 12 real clips and the two bad ones."""
    cache = FeatureCache(tmp_path_factory.mktemp("cache"))
    calls = []
    clips = load_dataset(manifest, cache, "landmark_cnn", LANDMARKS.spec_from(CONFIG), workers=1,
                         on_progress=lambda p, e: calls.append((p, e)))
    return clips, calls, cache


def test_bad_clips_are_dropped_by_name_and_the_rest_load(loaded, manifest):
    clips, calls, _ = loaded
    assert sorted(Path(p).name for p in clips.failed) == ["zz_black.mp4", "zz_garbage.mp4"]
    assert all(Path(path).name in reason for path, reason in clips.failed.items())
    assert len(calls) == len(manifest)
    assert len(clips.rows) == len(WORDS) * PER_CLASS
    assert not clips.rows["clip"].str.startswith("zz_").any()


def test_landmark_arrays_are_aligned_with_rows(loaded):
    clips, _, _ = loaded
    n = len(clips.rows)
    assert clips.examples.shape == (n, len(SEQUENCE_NAMES), CONFIG.sequence_length)
    assert clips.examples.dtype == np.float32 and np.isfinite(clips.examples).all()
    assert clips.names == SEQUENCE_NAMES
    assert clips.classes == tuple(sorted(WORDS))
    assert [clips.classes[k] for k in clips.labels] == list(clips.rows["label"])
    assert {"speaker", "source", "gender", "age_band"} <= set(clips.rows.columns)
    assert (clips.rows["speaker"] == "s1").all()


def test_crop_kind_reads_the_same_cache(loaded, manifest):
    clips, _, cache = loaded
    spec = CROPS.spec_from(CONFIG)
    crops = load_dataset(manifest, cache, "r2plus1d", spec, workers=1)
    assert crops.names == () and crops.examples.dtype == np.uint8
    size = CONFIG.crop_size
    assert crops.examples.shape == (len(clips.rows), CONFIG.crop_frames, size, size)
    assert list(crops.rows["clip"]) == list(clips.rows["clip"])
    dataset = CROPS.dataset(crops.examples, crops.labels, spec, augment=AugmentConfig())
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch[0].dtype == torch.uint8 and batch[0].shape == (4, CONFIG.crop_frames, size, size)
    assert CROPS.model_input(batch[0], spec, CPU).shape == (4, 3, CONFIG.crop_frames, size, size)


def test_crops_are_resized_to_the_configured_size(loaded, manifest):
    _, _, cache = loaded
    spec = CROPS.spec_from(DataConfig(crop_frames=8, crop_size=56))
    small = load_dataset(manifest, cache, "r2plus1d", spec, workers=1)
    assert small.examples.shape[1:] == (8, 56, 56)
    clip = torch.from_numpy(small.examples[:2])
    assert CROPS.model_input(clip, spec, CPU).shape == (2, 3, 8, 56, 56)
    flat = np.full((3, 96, 96), 77, np.uint8)
    assert (resize_crops(flat, 40) == 77).all() and resize_crops(flat, 96) is not flat


def test_unknown_kind_is_refused(manifest, tmp_path):
    with pytest.raises(ValueError, match="transformer"):
        load_dataset(manifest, FeatureCache(tmp_path), "transformer", None)


@pytest.mark.parametrize("frames", [1, 7, 32, 90])
def test_resampling_keeps_shapes_and_ends(frames):
    ramp = np.linspace(0, 1, frames, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], np.float32)
    out = resample_linear(ramp, 32)
    assert out.shape == (32, 2) and out.dtype == np.float32
    if frames > 1:
        np.testing.assert_allclose(out[:, 0], np.linspace(0, 1, 32), atol=1e-6)
    crops = np.arange(frames, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    picked = resample_nearest(crops, 24)
    assert picked.shape == (24, 4, 4) and picked[0, 0, 0] == 0 and picked[-1, 0, 0] == frames - 1


def test_clip_sequence_trims_faceless_ends_and_fills_gaps():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, len(FEATURE_NAMES))).astype(np.float32)
    valid = np.ones(20, bool)
    valid[:3] = valid[-2:] = valid[9:11] = False
    features[~valid] = 0.0
    clip = ClipFeatures(features, valid, np.arange(20) * 40, np.zeros((20, 96, 96), np.uint8),
                        FEATURE_NAMES, 25.0)
    sequence, names = clip_sequence(clip, LANDMARKS.spec_from(CONFIG))
    assert sequence.shape == (len(SEQUENCE_NAMES), 32) and names == SEQUENCE_NAMES
    np.testing.assert_allclose(sequence[:len(FEATURE_NAMES), 0], features[3], rtol=1e-6)
    np.testing.assert_allclose(sequence[:len(FEATURE_NAMES), -1], features[17], rtol=1e-6)
    # Frames 3..17 carry a face: 15 frames at 25 fps.
    np.testing.assert_allclose(sequence[-1], 15 / 25.0)


def test_feature_groups_can_be_left_out_by_both_landmark_kinds():
    """Lip points and blendshapes out: neither kind reads them, the card's channel names say
    so (and the live check with them), and a group that does not exist is named."""
    from features.frame_features import FEATURE_GROUPS
    from training.kinds.landmark_ctc import clip_frames

    features = np.random.default_rng(0).normal(size=(12, len(FEATURE_NAMES))).astype(np.float32)
    clip = ClipFeatures(features, np.ones(12, bool), np.arange(12) * 40,
                        np.zeros((12, 96, 96), np.uint8), FEATURE_NAMES, 25.0)
    out = ("lip_points", "blendshapes")
    dropped = FEATURE_GROUPS["lip_points"] + FEATURE_GROUPS["blendshapes"]
    kept = [n for n in FEATURE_NAMES if n not in dropped]
    config = replace(CONFIG, leave_out=out)
    sequence, names = clip_sequence(clip, LANDMARKS.spec_from(config))
    assert names[:len(kept)] == tuple(kept) and len(names) == 2 * len(kept) + 1   # velocities, duration
    columns = [FEATURE_NAMES.index(n) for n in kept]
    np.testing.assert_allclose(sequence[:len(kept), 0], features[0, columns], rtol=1e-6)
    reader = get_kind("landmark_ctc")
    frames, _, names = clip_frames(clip, reader.spec_from(config))
    assert names[:len(kept)] == tuple(kept) and frames.shape[1] == len(names)
    with pytest.raises(ValueError, match=r"leave_out \['lips'\]: not a feature group; the groups "
                                         r"are geometry, lip_points, colour, blendshapes"):
        reader.spec_from(replace(CONFIG, leave_out=("lips",)))


def test_normalisation_of_constant_channels_stays_finite(loaded):
    clips = loaded[0]
    sequences = clips.examples.copy()
    sequences[:, 0] = 0.0
    sequences[:, 1] = 7.5
    spec = LANDMARKS.fit_spec(LANDMARKS.spec_from(CONFIG), replace(clips, examples=sequences),
                              np.arange(len(sequences)))
    normalised = LANDMARKS.model_input(torch.from_numpy(sequences), spec, CPU).numpy()
    assert np.isfinite(normalised).all() and (normalised[:, :2] == 0).all()
    varying = sequences.std(axis=(0, 2)) > 1e-3
    np.testing.assert_allclose(normalised[:, varying].mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(normalised[:, varying].std(axis=(0, 2)), 1, atol=1e-3)
    with pytest.raises(ValueError, match="NaN"):
        fit_normalisation(np.full((2, 3, 4), np.nan))


def test_mirror_plan_swaps_partners_and_sides():
    source, sign = mirror_plan(SEQUENCE_NAMES)
    at = SEQUENCE_NAMES.index
    assert source[at("lip61_x")] == at("lip291_x") and sign[at("lip61_x")] == -1
    assert source[at("lip61_y")] == at("lip291_y") and sign[at("lip61_y")] == 1
    assert source[at("d_lip185_x")] == at("d_lip409_x") and sign[at("d_lip185_x")] == -1
    assert source[at("lip0_x")] == at("lip0_x") and sign[at("lip0_x")] == -1
    assert source[at("mouthSmileLeft")] == at("mouthSmileRight")
    assert source[at("d_mouthRight")] == at("d_mouthLeft")
    assert source[at("inner_mar")] == at("inner_mar") and sign[at("teeth_ratio")] == 1


def test_mirroring_twice_is_identity(loaded):
    clips = loaded[0]
    plan = mirror_plan(clips.names)
    for sequence in clips.examples[:3]:
        once = mirror(sequence, plan)
        assert not np.allclose(once, sequence)
        np.testing.assert_array_equal(mirror(once, plan), sequence)


def test_mirrored_features_match_a_mirrored_video(grid_dir):
    """Features of a flipped frame are the plan's mirror of the original frame's."""
    frames = read_frames(grid_dir / "video" / "bbaf2n.mp4")[20:40:4]
    with FeaturePipeline(crops=False) as pipeline:
        original = np.stack([pipeline.process(f).features for f in frames]).T
        pipeline.reset()
        flipped = np.stack([pipeline.process(Frame(f.index, f.timestamp_ms,
                                                   np.ascontiguousarray(f.rgb[:, ::-1]))).features
                            for f in frames]).T
    lips = np.array([n.startswith("lip") for n in FEATURE_NAMES])
    source, sign = mirror_plan(FEATURE_NAMES)
    error = np.abs(mirror(original, (source, sign)) - flipped)[lips].mean()
    swap_only = np.abs(original[source] - flipped)[lips].mean()
    negate_only = np.abs(original * sign[:, None] - flipped)[lips].mean()
    assert error < 0.01 and error < 0.25 * min(swap_only, negate_only)


def test_time_warp_and_frame_drop_keep_shape_ends_and_order():
    rng = np.random.default_rng(1)
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (3, 1))
    for _ in range(20):
        warped = time_warp(ramp, rng, 0.3)
        assert warped.shape == ramp.shape and (np.diff(warped, axis=1) >= -1e-6).all()
        np.testing.assert_allclose(warped[:, [0, -1]], ramp[:, [0, -1]], atol=1e-6)
        np.testing.assert_allclose(drop_frames(ramp, rng, 0.2), ramp, atol=1e-6)
    np.testing.assert_allclose(time_warp(ramp, rng, 0.0), ramp, atol=1e-6)
    wiggle = np.sin(np.linspace(0, 6, 32, dtype=np.float32))[None]
    assert not np.allclose(drop_frames(wiggle, np.random.default_rng(2), 0.3), wiggle)


def test_noise_is_scaled_per_channel():
    rng = np.random.default_rng(3)
    noisy = add_noise(np.zeros((2, 20000), np.float32), rng, 0.1, np.array([1.0, 10.0]))
    np.testing.assert_allclose(noisy.std(axis=1), [0.1, 1.0], rtol=0.05)


def test_landmark_dataset_is_seeded_by_torch_and_holds_raw_sequences(loaded):
    clips = loaded[0]
    spec = LANDMARKS.fit_spec(LANDMARKS.spec_from(CONFIG), clips, np.arange(len(clips.labels)))
    plain = LANDMARKS.dataset(clips.examples, clips.labels, spec)
    x, y = plain[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == clips.examples.shape[1:]
    assert y.dtype == torch.int64 and int(y) == clips.labels[0]
    np.testing.assert_array_equal(x.numpy(), clips.examples[0])
    augmented = LANDMARKS.dataset(clips.examples, clips.labels, spec, AugmentConfig())
    torch.manual_seed(5)
    first = augmented[1][0]
    torch.manual_seed(5)
    assert torch.equal(first, augmented[1][0]) and not torch.allclose(first, plain[1][0])
    batch, labels = next(iter(DataLoader(augmented, batch_size=5, shuffle=True)))
    assert batch.shape == (5, *clips.examples.shape[1:]) and torch.isfinite(batch).all()


def test_augment_sequence_respects_zero_config(loaded):
    sequence = loaded[0].examples[0]
    plan = mirror_plan(loaded[0].names)
    off = AugmentConfig(time_warp=0.0, noise=0.0, frame_drop=0.0, mirror=0.0)
    np.testing.assert_array_equal(augment_sequence(sequence, np.random.default_rng(0), off, plan),
                                  sequence)
    always = AugmentConfig(time_warp=0.0, noise=0.0, frame_drop=0.0, mirror=1.0)
    np.testing.assert_array_equal(augment_sequence(sequence, np.random.default_rng(0), always, plan),
                                  mirror(sequence, plan))


@pytest.mark.parametrize("name", ["landmark_cnn", "landmark_ctc"])
def test_relative_input_does_not_see_a_face_s_own_proportions(loaded, name):
    """A face whose lip features are scaled and shifted (other proportions, another rest)
    gives the same relative input; the absolute input differs."""
    kind = get_kind(name)
    clip = loaded[2].load(loaded[0].rows["path"][0], crops=False)
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.7, 1.4, clip.features.shape[1]).astype(np.float32)
    shift = rng.uniform(-0.2, 0.2, clip.features.shape[1]).astype(np.float32)
    other = replace(clip, features=np.where(clip.valid[:, None], clip.features * scale + shift, 0))
    relative = kind.spec_from(replace(CONFIG, relative="clip"))
    absolute = kind.spec_from(CONFIG)

    def channels(example):      # (C, T) whatever the kind's layout
        return example[0].T if isinstance(example, tuple) else example

    same = [channels(kind.example(c, relative)[0]) for c in (clip, other)]
    differ = [channels(kind.example(c, absolute)[0]) for c in (clip, other)]
    moving = differ[0].std(axis=1) > 1e-3        # near-constant channels meet the std floor
    assert moving.sum() > 100
    np.testing.assert_allclose(same[0][moving], same[1][moving], atol=1e-3)
    assert not np.allclose(differ[0][moving], differ[1][moving], atol=1e-3)


@pytest.mark.parametrize("name", ["landmark_cnn", "landmark_ctc"])
def test_appearance_adds_the_mouth_s_channels_from_the_crops(loaded, name):
    """appearance: k appends k x k DCT channels (and their velocities) computed from the
    clip's crops, leaves the landmark channels as they were, and needs the crops."""
    kind = get_kind(name)
    plain_spec, spec = kind.spec_from(CONFIG), kind.spec_from(replace(CONFIG, appearance=4))
    assert kind.uses_crops(spec) and not kind.uses_crops(plain_spec)
    path = loaded[0].rows["path"][0]
    clip = loaded[2].load(path, crops=True)
    (example, names), (plain, plain_names) = kind.example(clip, spec), kind.example(clip, plain_spec)
    channels = lambda e: e[0].T if isinstance(e, tuple) else e      # (C, T)
    example, plain = channels(example), channels(plain)
    dct = appearance_names(4)
    base = tuple(n for n in plain_names if n != "duration_s")
    landmark_part = FEATURE_NAMES + dct
    assert names[:len(landmark_part)] == landmark_part
    assert names[len(landmark_part):2 * len(landmark_part)] == tuple(f"d_{n}" for n in landmark_part)
    for j, n in enumerate(base):
        np.testing.assert_allclose(example[names.index(n)], plain[j], atol=1e-6)
    if name == "landmark_ctc":      # every frame, as read: the DCT of each frame's crop
        found = [names.index(n) for n in dct]
        np.testing.assert_allclose(example[found].T[clip.valid],
                                   mouth_appearance(clip.crops, 4)[clip.valid], atol=1e-6)
    assert example[[names.index(f"d_{n}") for n in dct]].std() > 0, "the mouth never moved"
    with pytest.raises(ValueError, match="crops"):
        kind.example(loaded[2].load(path, crops=False), spec)


def test_appearance_needs_landmark_channels_to_join():
    with pytest.raises(ValueError, match="inputs: landmarks or both"):
        get_kind("landmark_ctc").spec_from(replace(CONFIG, inputs="crops", appearance=4))


def _frame_numbers(target, word_crop=None, speed=0.0):
    """A sentence dataset of one 60-frame clip whose every channel is the frame's number, so
    each frame it gives says where in the clip it lies; with ``word_crop`` it crops words
    and changes speed (by up to ``speed``), nothing else."""
    from training.kinds.landmark_ctc import SentenceDataset

    augment = None if word_crop is None else AugmentConfig(
        word_crop=word_crop, speed=speed, time_mask=0.0, noise=0.0, mirror=0.0)
    features = np.arange(60, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    spec = replace(get_kind("landmark_ctc").spec_from(DataConfig()), feature_names=("a", "b", "c"),
                   mean=(0.0,) * 3, std=(1.0,) * 3)
    return SentenceDataset([(features, None)], [target], spec, augment)


def test_a_word_crop_reads_a_run_of_whole_words_from_their_frames():
    from training.kinds.landmark_ctc import sentence_target
    from training.decoding import alphabet_of, decode_indices

    alphabet = alphabet_of(["bin blue at f two now"])
    timings = [["bin", 0, 10], ["blue", 10, 20], ["at", 20, 25], ["f", 25, 31], ["two", 31, 40],
               ["now", 40, 50]]
    target = sentence_target("bin blue at f two now", timings, alphabet)
    dataset = _frame_numbers(target, word_crop=1.0)
    texts = set()
    for seed in range(40):
        torch.manual_seed(seed)
        (frames, _), (symbols, _) = dataset[0]
        text = decode_indices(symbols, alphabet)
        words = text.split()
        first = next(w for w in timings if w[0] == words[0])
        last = [w for w in timings if w[0] == words[-1]][-1]
        assert " ".join(w[0] for w in timings[timings.index(first):timings.index(last) + 1]) == text
        assert first[1] - 4 <= frames[0, 0] <= first[1] and last[2] - 1 <= frames[-1, 0] <= last[2] + 3
        texts.add(text)
    assert len(texts) > 8, texts             # many different runs of words, not one
    plain = _frame_numbers(target)
    assert decode_indices(plain[0][1][0], alphabet) == "bin blue at f two now"


def test_each_frame_keeps_its_word_through_a_word_crop_and_a_speed_change():
    from training.decoding import alphabet_of
    from training.kinds.landmark_ctc import sentence_target, timed_vocabulary

    timings = [["bin", 2, 10], ["blue", 10, 20], ["at", 22, 25], ["f", 25, 31], ["two", 31, 40],
               ["now", 40, 50]]
    vocabulary = timed_vocabulary([timings, [["soon", 0, 5]]])
    assert vocabulary == ("at", "bin", "blue", "f", "now", "soon", "two")
    alphabet = alphabet_of(["bin blue at f two now soon"])
    target = sentence_target("bin blue at f two now", timings, alphabet, vocabulary)
    expected = np.zeros(60, np.int64)               # the word of each original frame, 0 between
    for word, start, stop in timings:
        expected[start:stop] = vocabulary.index(word) + 1
    assert (target.frame_words(60) == expected).all()
    dataset = _frame_numbers(target, word_crop=0.7, speed=0.3)
    lengths = set()
    for seed in range(30):
        torch.manual_seed(seed)
        (frames, _), (_, words) = dataset[0]
        assert len(words) == len(frames)
        shown = frames[:, 0]                     # where in the original clip each frame lies
        nearest = (words == expected[np.floor(shown).astype(int)]) | (
            words == expected[np.ceil(shown).astype(int)])
        assert nearest.all(), (shown[~nearest], words[~nearest])
        lengths.add(len(frames))
    assert len(lengths) > 10, lengths
    untimed = sentence_target("bin blue", None, alphabet, vocabulary)
    assert untimed.frame_words(60) is None


def test_length_batches_deal_each_clip_once_in_batches_of_like_length_the_dataset_reads():
    from training.decoding import alphabet_of, decode_indices
    from training.kinds.landmark_ctc import LengthBatches, SentenceDataset, sentence_target

    rng = np.random.default_rng(0)
    texts, targets, examples = [], [], []
    for i in range(64):                     # sentences of 3 to 6 words, 6 to 12 frames a word
        words = [f"w{j}" for j in rng.integers(0, 9, rng.integers(3, 7))]
        bounds = np.cumsum([0, *rng.integers(6, 13, len(words))])
        texts.append(" ".join(words))
        examples.append((np.full((bounds[-1] + 4, 3), i, np.float32), None))
        targets.append([[w, int(a), int(b)] for w, a, b in zip(words, bounds, bounds[1:])])
    alphabet = alphabet_of(texts)
    targets = [sentence_target(t, w, alphabet) for t, w in zip(texts, targets)]
    spec = replace(get_kind("landmark_ctc").spec_from(DataConfig()), feature_names=("a", "b", "c"),
                   mean=(0.0,) * 3, std=(1.0,) * 3)
    dataset = SentenceDataset(examples, targets, spec, AugmentConfig(
        word_crop=0.5, speed=0.0, time_mask=0.0, noise=0.0, mirror=0.0))
    batches = LengthBatches(dataset, batch_size=8, group=4)
    assert len(batches) == 8
    torch.manual_seed(1)
    epoch = list(batches)
    torch.manual_seed(1)
    assert list(batches) == epoch                       # seeded by the training loop's torch seed
    assert len(epoch) == 8 and all(len(b) == 8 for b in epoch)
    indices = [i for batch in epoch for i, _ in batch]
    assert sorted(indices) == list(range(64))
    runs = [r for batch in epoch for _, r in batch]
    assert 16 < sum(r is not None for r in runs) < 48     # about half read as word runs
    steps, shuffled = 0, 0
    for batch in epoch:
        lengths = []
        for index, run in batch:
            (frames, _), (symbols, _) = dataset[(index, run)]
            assert (frames == index).all()
            words = texts[index].split()
            expected = words if run is None else words[run[0]:run[1] + 1]
            assert decode_indices(symbols, alphabet) == " ".join(expected)
            lengths.append(len(frames))
        steps += max(lengths)
    for _ in range(20):                 # the same clips and runs dealt in random batches
        order = np.random.default_rng(_).permutation(64)
        lengths = [len(dataset[(indices[i], runs[i])][0][0]) for i in order]
        shuffled += sum(max(lengths[b:b + 8]) for b in range(0, 64, 8)) / 20
    assert steps < 0.85 * shuffled, (steps, shuffled)
    shards = []
    for rank in (0, 1):
        torch.manual_seed(1)
        shards.append(list(LengthBatches(dataset, 8, 4, rank=rank, world=2)))
    assert [len(s) for s in shards] == [4, 4]
    assert shards[0] + shards[1] and not {str(b) for b in shards[0]} & {str(b) for b in shards[1]}


def test_length_batches_and_class_sampling_are_not_asked_for_together():
    from training.config import load_config
    from training.distributed import DistributedContext
    from training.trainer import make_loaders

    config = load_config(None, {"balance.sampling": "inverse", "optim.length_groups": 8})
    with pytest.raises(ValueError, match="balance.sampling 'inverse' and optim.length_groups"):
        make_loaders(config, {"train": [0, 1], "val": [], "test": []}, np.array([0, 1]),
                     DistributedContext(), batches=[[0, 1]])


def test_appearance_drop_blanks_a_clips_appearance_channels_to_their_mean():
    from training.kinds.landmark_ctc import SentenceDataset, sentence_target
    from training.decoding import alphabet_of

    names = ("inner_mar", "dct0_0", "dct0_1", "d_inner_mar", "d_dct0_0", "d_dct0_1")
    spec = replace(get_kind("landmark_ctc").spec_from(DataConfig()), feature_names=names,
                   mean=(0.5, 7.0, 8.0, 0.0, 1.0, 2.0), std=(1.0,) * 6)
    features = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    targets = [sentence_target("bin", None, alphabet_of(["bin"]))]

    def read(drop: float) -> np.ndarray:
        dataset = SentenceDataset([(features, None)], targets, spec, AugmentConfig(
            word_crop=0.0, speed=0.0, time_mask=0.0, noise=0.0, mirror=0.0, appearance_drop=drop))
        return dataset[0][0][0]

    dropped, kept = read(1.0), read(0.0)
    assert (dropped[:, [1, 2, 4, 5]] == np.array([7.0, 8.0, 1.0, 2.0], np.float32)).all()
    np.testing.assert_array_equal(dropped[:, [0, 3]], features[:, [0, 3]])   # the rest as it was
    np.testing.assert_array_equal(kept, features)
