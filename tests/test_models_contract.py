"""Every model kind keeps one contract, on the path the app uses: a real clip through the
kind's input, a save and load through the registry, then the live Predictor."""
import numpy as np
import pytest
import torch

from features.dataset import build_manifest
from features.grid import import_grid
from recognizer.predictor import Predictor
from training.card import Card
from training.config import DataConfig, TrainConfig
from training.data import load_dataset
from training.kinds import KINDS, get_kind
from training.kinds.landmark_ctc import bidirectional_padded
from training.kinds.r2plus1d import KINETICS_MEAN, KINETICS_STD, crops_to_clip, freeze_for_stage
from training.registry import write_entry

# Small enough to run on two CPU cores in a few seconds; a kind not named here is
# tested with its default architecture.
TINY = {
    "landmark_cnn": {"arch": {"width": 8, "depth": 2}, "data": DataConfig(sequence_length=16)},
    "r2plus1d": {"arch": {}, "data": DataConfig(crop_frames=4, crop_size=32)},
    "landmark_ctc": {"arch": {"conv_width": 16, "conv_layers": 1, "rnn_width": 16, "rnn_layers": 1},
                     "data": DataConfig()},
}


# Each kind as TINY has it, and the landmark kinds once more reading the mouth's appearance.
VARIANTS = [(name, TINY.get(name, {"arch": {}, "data": DataConfig()})) for name in KINDS] + [
    ("landmark_cnn", {**TINY["landmark_cnn"], "data": DataConfig(sequence_length=16, appearance=4)}),
    ("landmark_ctc", {**TINY["landmark_ctc"], "data": DataConfig(appearance=4)})]


@pytest.fixture(scope="module")
def sentences(grid_dir, grid_cache, tmp_path_factory):
    """Three whole GRID sentences (the same bytes as the cached ones) and their manifest."""
    videos = tmp_path_factory.mktemp("sentences")
    import_grid(grid_dir, videos, sentences=[p.stem for p in grid_cache[1][:3]], whole=True)
    return build_manifest(videos), grid_cache[0]


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Give BatchNorm non-default running statistics, so the round trip must carry buffers."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)


def test_kinds_are_found_by_module():
    assert set(KINDS) >= {"landmark_cnn", "r2plus1d"} and "base" not in KINDS
    for name in KINDS:
        assert get_kind(name).name == name
    with pytest.raises(ValueError, match="unknown model kind 'lstm'"):
        get_kind("lstm")


def _same(a, b) -> bool:
    """Tensors, or tuples of tensors, equal element for element."""
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name, tiny", VARIANTS,
                         ids=[f"{n}-appearance" if t["data"].appearance else n for n, t in VARIANTS])
def test_model_kind_contract_through_registry_and_predictor(name, tiny, sentences, tmp_path):
    manifest, cache = sentences
    kind = get_kind(name)
    config = TrainConfig(model=name, arch=tiny["arch"], data=tiny["data"])
    clips = load_dataset(manifest, cache, name, kind.spec_from(config.data), workers=1)
    index = np.arange(len(clips.labels))
    spec = kind.fit_spec(kind.spec_from(config.data), clips, index)
    classes = kind.output_classes(clips)
    args = kind.train_arch_args(config, clips)
    phrases = tuple(clips.rows["text"]) if kind.reads_sentences else None

    torch.manual_seed(0)
    model = kind.build(args)
    _randomise_batchnorm(model)
    model.eval()
    clip = cache.load(manifest["path"][0], crops=kind.uses_crops(spec))
    batch = kind.clip_input(clip, spec, torch.device("cpu"))
    items = kind.dataset(clips.examples, kind.targets(clips, classes), spec)
    collated = (kind.collate or torch.utils.data.default_collate)([items[i] for i in index])[0]
    first = kind.clip_input(cache.load(manifest["path"][1], crops=kind.uses_crops(spec)), spec,
                            torch.device("cpu"))
    assert not _same(first, batch), "two clips gave the same input"
    card = Card(name, args, classes, spec, name="tiny")
    with torch.no_grad():
        candidates, expected = kind.score_clip(model, batch, card, phrases)
        inputs = kind.model_input(collated, spec, torch.device("cpu"))
        embedded = kind.embed(model, inputs)
    assert len(embedded) == len(index)
    np.testing.assert_allclose(expected.sum(), 1.0, atol=1e-5)

    entry = write_entry(tmp_path, None, model, card)
    predictor = Predictor.from_entry(entry, device="cpu", phrases=phrases)
    assert not predictor.entry.model.training and predictor.classes == candidates
    assert predictor.needs_crops == kind.uses_crops(spec)
    prediction = predictor.predict(clip)
    np.testing.assert_allclose(predictor.probabilities(clip), expected, atol=1e-5)
    listed = np.asarray(prediction.probabilities)
    if kind.reads_sentences:     # the list's share: the rest goes to "none of these phrases"
        assert 0 < listed.sum() <= 1 + 1e-5
        listed = listed / listed.sum()
    np.testing.assert_allclose(listed, expected, atol=1e-4)
    assert prediction.phrase == candidates[int(np.argmax(expected))]
    other = predictor.predict(cache.load(manifest["path"][1], crops=kind.uses_crops(spec)))
    assert not np.allclose(other.probabilities, prediction.probabilities), \
        "the prediction ignores its clip"


def test_crops_to_clip_layout_and_normalisation():
    crops = np.full((2, 30, 96, 96), 128, dtype=np.uint8)
    clip = crops_to_clip(crops, size=112, frames=24)
    assert clip.shape == (2, 3, 24, 112, 112) and clip.dtype == torch.float32
    expected = (128 / 255 - np.array(KINETICS_MEAN)) / np.array(KINETICS_STD)
    np.testing.assert_allclose(clip[0, :, 5, 50, 50].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        crops_to_clip(crops.astype(np.float32))


def test_freeze_for_stage_unfreezes_from_the_head():
    model = get_kind("r2plus1d").build({"num_classes": 3})
    trainable = lambda: {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    freeze_for_stage(model, 0)
    assert trainable() == {"fc"}
    freeze_for_stage(model, 2)
    assert trainable() == {"fc", "layer4", "layer3"}
    params = freeze_for_stage(model, 5)
    assert len(params) == len(list(model.parameters()))


def test_bad_arch_args_and_inputs_are_named():
    kind = get_kind("landmark_cnn")
    with pytest.raises(ValueError, match="widht"):
        kind.build({"in_channels": 4, "num_classes": 2, "widht": 8})
    model = kind.build({"in_channels": 4, "num_classes": 2, "length": 10})
    with pytest.raises(ValueError, match=r"\(N, 4, 10\)"):
        model(torch.zeros(1, 5, 10))


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_the_unpacked_encoder_reads_each_clip_as_the_packed_one_does(rnn):
    """Clips of different lengths padded into one batch: the encoder's outputs and gradients
    equal the packed sequence's, each clip's as if it were alone, zero past its length."""
    torch.manual_seed(0)
    kind = get_kind("landmark_ctc")
    model = kind.build({"in_channels": 6, "num_symbols": 5, "conv_width": 8, "rnn": rnn,
                        "rnn_width": 8, "rnn_layers": 3, "dropout": 0.0})
    lengths = torch.tensor([4, 11, 7])
    x = torch.randn(3, 11, 8) * (torch.arange(11)[None, :, None] < lengths[:, None, None])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(model.encoder(packed)[0],
                                                         batch_first=True, total_length=11)
    got = bidirectional_padded(model.encoder, model._directions, x, lengths)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    alone = bidirectional_padded(model.encoder, model._directions, x[:1, :4], lengths[:1])
    torch.testing.assert_close(got[:1, :4], alone, atol=1e-5, rtol=1e-4)
    assert got[0, 4:].abs().max() == 0
    expected.square().sum().backward()
    wanted = [p.grad.clone() for p in model.encoder.parameters()]
    model.zero_grad()
    got.square().sum().backward()
    for want, grad in zip(wanted, (p.grad for p in model.encoder.parameters())):
        torch.testing.assert_close(grad, want, atol=1e-4, rtol=1e-3)


def test_the_sentence_reader_reads_crops_beside_the_landmarks(sentences, tmp_path):
    """``inputs: both``: the 3-D crop front-end runs per frame, the saved entry needs crops."""
    manifest, cache = sentences
    kind = get_kind("landmark_ctc")
    config = TrainConfig(model="landmark_ctc", data=DataConfig(inputs="both", crop_size=32),
                         arch={"conv_width": 8, "conv_layers": 1, "rnn_width": 8, "rnn_layers": 1,
                               "crop_width": 4})
    clips = load_dataset(manifest, cache, "landmark_ctc", kind.spec_from(config.data), workers=1)
    spec = kind.fit_spec(kind.spec_from(config.data), clips, np.arange(3))
    features, crops = clips.examples[0]
    assert crops.shape == (len(features), 32, 32) and crops.dtype == np.uint8
    card = Card("landmark_ctc", kind.train_arch_args(config, clips), kind.output_classes(clips), spec)
    model = kind.build(card.arch_args).eval()
    clip = cache.load(manifest["path"][0], crops=True)
    batch = kind.clip_input(clip, spec, torch.device("cpu"))
    with torch.no_grad():
        log_probs = model(batch)
        blind = model(batch._replace(crops=torch.zeros_like(batch.crops)))
    assert log_probs.shape == (1, len(features), len(card.classes) + 1)
    assert not torch.allclose(log_probs, blind), "the crops do not reach the output"
    predictor = Predictor.from_entry(write_entry(tmp_path, "both", model, card), device="cpu",
                                     phrases=tuple(clips.rows["text"]))
    assert predictor.needs_crops
    with pytest.raises(ValueError, match="crops=True"):
        predictor.predict(cache.load(manifest["path"][0], crops=False))


def test_the_word_head_trains_on_each_frames_word_where_timings_are_known(sentences):
    """``arch.word_frames``: a second head names each frame's word; its cross-entropy joins the
    CTC loss in training, frames between words count as none, and reading ignores it."""
    manifest, cache = sentences
    kind = get_kind("landmark_ctc")
    arch = {**TINY["landmark_ctc"]["arch"], "word_frames": 0.5}
    config = TrainConfig(model="landmark_ctc", arch=arch)
    clips = load_dataset(manifest, cache, "landmark_ctc", kind.spec_from(config.data), workers=1)
    spec = kind.fit_spec(kind.spec_from(config.data), clips, np.arange(3))
    timed = {w for words in clips.rows["words"] for w, _, _ in words}
    args = kind.train_arch_args(config, clips)
    assert args["words"] == len(timed) and len(timed) > 6
    assert spec.head_words == tuple(sorted(timed))          # the card names the head's classes
    model = kind.build(args)
    plain = kind.build({**args, "word_frames": 0.0})
    assert model.word_head.out_features == len(timed) + 1 and plain.word_head is None
    targets = kind.targets(clips, kind.output_classes(clips))
    dataset = kind.dataset(clips.examples, targets, spec)
    (features, _), (symbols, frame_words) = dataset[2]
    items = [dataset[0], dataset[1], ((features[:40], None), (symbols, frame_words[:40]))]
    inputs, (flat, lengths, words) = kind.collate(items)
    batch = kind.model_input(inputs, spec, torch.device("cpu"))
    assert ((words > 0).sum(1) > 0.3 * batch.lengths).all()   # most frames lie in a word
    assert (words[2, 40:] == -1).all() and (words[2, :40] >= 0).all()
    model.eval()                                            # no dropout: the same forward twice
    loss_fn = kind.loss_function(config)
    loss, _, _ = kind.batch_loss(model, batch, (flat, lengths, words), loss_fn)
    log_probs, _ = model(batch, words=True)
    ctc = loss_fn(log_probs.transpose(0, 1), flat, batch.lengths, lengths)
    known = words >= 0
    cross_entropy = torch.nn.functional.cross_entropy(model.word_head(model.embed(batch))[known],
                                                      words[known])
    assert torch.allclose(loss, ctc + 0.5 * cross_entropy)
    loss.backward()
    assert model.word_head.weight.grad.abs().sum() > 0
    assert torch.equal(model(batch), log_probs), "reading must not depend on the word head"
    clip = cache.load(manifest["path"][0], crops=False)
    characters, words_read = kind.read_emissions(model, kind.clip_input(clip, spec, torch.device("cpu")))
    assert words_read.shape == (len(characters), len(timed) + 1)
    assert torch.allclose(words_read.exp().sum(1), torch.ones(len(characters)))
    assert kind.read_emissions(plain.eval(), batch)[1] is None
    untimed = kind.batch_loss(model, batch, (flat, lengths, torch.full_like(words, -1)), loss_fn)[0]
    assert torch.allclose(untimed, ctc)
