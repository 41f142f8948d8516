"""The seeds' two figures: the embedding with UMAP when it is installed (PCA otherwise), saying
which, and the preprocessed mouth as an animated GIF beside ``preview.png``."""
import json
import sys
import types

import numpy as np
from PIL import Image

from training import reports


def blobs(per_class: int = 6, classes: int = 3, width: int = 8):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), per_class)
    return rng.normal(size=(len(labels), width)) + 4 * labels[:, None], labels


def fake_umap(calls: list):
    """A stand-in for umap-learn: records how it is made, projects on the first two features."""
    class UMAP:
        def __init__(self, **options):
            calls.append(options)

        def fit_transform(self, features):
            return np.asarray(features)[:, :2]
    return types.SimpleNamespace(UMAP=UMAP)


def test_the_embedding_uses_umap_when_it_is_installed_and_says_so(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "umap", fake_umap(calls))
    features, labels = blobs()
    path = reports.plot_embedding(features, labels, ["bin", "lay", "set"], tmp_path / "embedding.png")
    assert calls == [{"n_neighbors": 15, "random_state": 0}]
    with Image.open(path) as image:
        assert image.info["Description"] == "penultimate layer embedding, UMAP"
    reports.plot_embedding(features[:5], labels[:5], ["bin"], tmp_path / "few.png")
    assert calls[-1]["n_neighbors"] == 4            # no more neighbours than other points


def test_without_umap_the_embedding_is_pca_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)        # import umap raises ImportError
    features, labels = blobs()
    points, method = reports.embedding_2d(features)
    assert method == "PCA" and points.shape == (len(labels), 2)
    path = reports.plot_embedding(features, labels, ["bin", "lay", "set"], tmp_path / "embedding.png")
    with Image.open(path) as image:
        assert image.info["Description"] == "penultimate layer embedding, PCA"


def test_the_preview_gif_plays_every_frame_of_each_clip_side_by_side(tmp_path):
    """Clip 0 shows grey t * 5 at frame t, clip 1 (shorter) t * 7, then holds its last frame."""
    clips = [np.stack([np.full((32, 32), 5 * t, np.uint8) for t in range(20)]),
             np.stack([np.full((32, 32), 7 * t, np.uint8) for t in range(12)])]
    path = reports.write_preview_gif(clips, ["a (bin)", "b (lay)"], tmp_path / "preview.gif")
    scale = 3                                             # 32 px clips shown about 96 px tall
    panel = 32 * scale
    with Image.open(path) as gif:
        assert gif.n_frames == 20 and gif.info["loop"] == 0
        assert gif.size == (2 * panel + reports.PREVIEW_GAP, panel + reports.PREVIEW_TITLE)
        for t in (0, 5, 11, 19):
            gif.seek(t)
            pixels = np.asarray(gif.convert("L"))[reports.PREVIEW_TITLE:]
            assert (pixels[:, :panel] == 5 * t).all()
            assert (pixels[:, panel + reports.PREVIEW_GAP:] == 7 * min(t, 11)).all()
    assert not list(tmp_path.glob(".*partial*"))


def test_a_training_runs_entry_has_the_preview_as_an_animated_gif(word_models):
    """The landmark kinds' preview draws the lip points 64 px square: twice that in the GIF,
    one clip of the test split beside the next, up to four."""
    _, _, models = word_models
    entry = models / "t"
    card = json.loads((entry / "card.json").read_text())
    clips = min(4, card["metrics"]["test_clips"])
    with Image.open(entry / "preview.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 1
        assert gif.size == (clips * 128 + (clips - 1) * reports.PREVIEW_GAP,
                            128 + reports.PREVIEW_TITLE)


def test_the_summary_says_in_words_whether_a_model_beats_chance():
    from training.reports import better_than_chance

    assert better_than_chance({"binomial_p_vs_chance": 0.623, "chance": 1 / 3}).startswith(
        "- **not** shown better than chance (0.333)")
    assert better_than_chance({"binomial_p_vs_chance": 1e-6, "chance": 0.25}).startswith(
        "- better than chance (0.250)")
