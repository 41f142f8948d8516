"""Every model kind keeps one contract: shapes, probabilities, embedding, save/load round trip."""
import numpy as np
import pytest
import torch

from training.config import KINDS
from training.models import (KINETICS_MEAN, KINETICS_STD, MODEL_KINDS, build_model,
                             crops_to_clip, embed, freeze_for_stage, input_shape)
from training.registry import load_entry, predict_proba, write_entry

CLASSES = ["water", "pain", "yes"]
# Small enough to run on two CPU cores in a few seconds; r2plus1d takes any clip size.
TINY_ARCH_ARGS = {
    "landmark_cnn": {"in_channels": 6, "num_classes": 3, "length": 16, "width": 8, "depth": 2},
    "r2plus1d": {"num_classes": 3, "frames": 4, "size": 32},
}


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Give BatchNorm non-default running statistics, so the round trip must carry buffers."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)


def test_every_kind_the_clis_offer_has_a_model():
    assert sorted(MODEL_KINDS) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_model_kind_contract(kind, tmp_path):
    arch_args = TINY_ARCH_ARGS[kind]
    torch.manual_seed(0)
    model = build_model(kind, arch_args)
    _randomise_batchnorm(model)
    model.eval()
    batch = torch.randn(2, *input_shape(kind, arch_args))
    with torch.no_grad():
        logits = model(batch)
        features = embed(model, batch)
    assert logits.shape == (2, len(CLASSES))
    assert features.shape == (2, model.fc.in_features)
    assert torch.allclose(model.fc(features), logits, atol=1e-5)

    card = {"kind": kind, "arch_args": arch_args, "classes": CLASSES}
    entry = load_entry(write_entry(tmp_path, None, model, card), device="cpu")
    assert not entry.model.training
    assert entry.card["classes"] == CLASSES
    with torch.no_grad():
        assert torch.allclose(entry.model(batch), logits, atol=1e-6, rtol=0)
    proba = predict_proba(entry, batch.numpy())
    assert proba.shape == (2, len(CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_crops_to_clip_layout_and_normalisation():
    crops = np.full((2, 30, 96, 96), 128, dtype=np.uint8)
    clip = crops_to_clip(crops, size=112, frames=24)
    assert clip.shape == (2, 3, 24, 112, 112) and clip.dtype == torch.float32
    expected = (128 / 255 - np.array(KINETICS_MEAN)) / np.array(KINETICS_STD)
    np.testing.assert_allclose(clip[0, :, 5, 50, 50].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        crops_to_clip(crops.astype(np.float32))


def test_freeze_for_stage_unfreezes_from_the_head():
    model = build_model("r2plus1d", {"num_classes": 3})
    trainable = lambda: {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    freeze_for_stage(model, 0)
    assert trainable() == {"fc"}
    freeze_for_stage(model, 2)
    assert trainable() == {"fc", "layer4", "layer3"}
    params = freeze_for_stage(model, 5)
    assert len(params) == len(list(model.parameters()))


def test_bad_arch_args_and_inputs_are_named():
    with pytest.raises(ValueError, match="unknown model kind 'lstm'"):
        build_model("lstm", {})
    with pytest.raises(ValueError, match="widht"):
        build_model("landmark_cnn", {"in_channels": 4, "num_classes": 2, "widht": 8})
    model = build_model("landmark_cnn", {"in_channels": 4, "num_classes": 2, "length": 10})
    with pytest.raises(ValueError, match=r"\(N, 4, 10\)"):
        model(torch.zeros(1, 5, 10))
