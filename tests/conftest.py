"""Shared fixtures: paths to the real GRID data beside the repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parent.parent
GRID_DIR = REPO_ROOT.parent / "shared" / "data" / "grid_s1"


def grid_ids() -> list[str]:
    """Sorted ids of the shared GRID sentences."""
    return sorted(p.stem for p in (GRID_DIR / "video").glob("*.mp4"))


@pytest.fixture(scope="session")
def grid_dir() -> Path:
    if not (GRID_DIR / "video").is_dir():
        pytest.fail(f"{GRID_DIR}: the shared GRID data is missing; tests need ../shared beside the repo")
    return GRID_DIR


@pytest.fixture(scope="session")
def grid_cache(grid_dir):
    """A feature cache holding all 300 shared GRID sentences: (cache, video paths).

    Kept under the repository's ``.cache/`` (keyed by file content and
    extractor version, so it is never stale): the first run extracts for
    about 2.5 minutes on two cores, later runs load it.
    """
    from features.cache import FeatureCache
    from features.extract import extract_many, find_videos

    cache = FeatureCache(REPO_ROOT / ".cache" / "test-features")
    paths = find_videos(grid_dir / "video")
    summary = extract_many(paths, cache, workers=2)
    assert not summary.failed, summary.failed
    return cache, paths


WORDS = ("bin", "lay", "place", "set")
SHIPPED_READER = REPO_ROOT / "models" / "assets" / "entries" / "grid-sentences-landmarks-dct8-s0-t2"
COLOUR_WORDS = ("blue", "green", "red", "white")    # every GRID sentence has one, second


def write_tiny_video_entry(registry_root: Path, name: str = "video") -> Path:
    """An untrained R(2+1)D-18 entry on 8 crops of 32 px for the :data:`WORDS`: its folder."""
    from training import registry
    from training.card import Card
    from training.config import DataConfig
    from training.kinds import get_kind

    kind = get_kind("r2plus1d")
    card = Card("r2plus1d", {"num_classes": len(WORDS), "frames": 8, "size": 32}, WORDS,
                kind.spec_from(DataConfig(crop_frames=8, crop_size=32)))
    return registry.write_entry(registry_root, name, kind.build(card.arch_args), card)


@pytest.fixture(scope="session")
def word_models(tmp_path_factory, grid_dir):
    """GRID command-word clips, their cache and a registry with two tiny landmark entries.

    Returns (videos, cache, models): ``t`` (active) and ``t2`` (another seed). Thirty
    epochs of the tiny CNN take about a second; six leave it near chance.
    Tests that change the registry copy it first.
    """
    import yaml

    from features.cache import FeatureCache
    from features.extract import extract_many, find_videos
    from features.grid import grid_sentences, import_grid
    from training.run import main as train

    root = tmp_path_factory.mktemp("live")
    videos, cache, models = root / "videos", root / "cache", root / "models"
    import_grid(grid_dir, videos, words=list(WORDS), padding=4,
                sentences=grid_sentences(grid_dir)[::6][:48])
    assert not extract_many(find_videos(videos), FeatureCache(cache), workers=2).failed
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "optim": {"batch_size": 16, "patience": 30}, "arch": {"width": 16, "depth": 2},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2}}))
    for name, seed in (("t", "0"), ("t2", "1")):
        assert train(["--config", str(config), "--epochs", "30", "--seed", seed,
                      "--videos", str(videos), "--cache", str(cache), "--registry", str(models),
                      "--runs", str(root / "runs"), "--no-progress", "--name", name]) == 0
    return videos, FeatureCache(cache), models


@pytest.fixture(scope="session")
def sentence_entry(grid_cache, grid_dir, tmp_path_factory):
    """A tiny sentence reader trained for 4 epochs on 80 whole GRID sentences (the cached
    bytes), over the kind's defaults (the mouth's appearance, the word head): (entry, videos,
    cache). Sentences ``[1::3]`` are never among its clips."""
    import yaml

    from features.grid import import_grid
    from training.run import main as train

    root = tmp_path_factory.mktemp("sentences")
    cache, paths = grid_cache
    import_grid(grid_dir, root / "videos", sentences=[p.stem for p in paths[::3][:80]], whole=True)
    config = root / "ctc.yaml"
    config.write_text(yaml.safe_dump({
        "model": "landmark_ctc", "arch": {"conv_width": 32, "conv_layers": 1, "rnn_width": 32,
                                          "rnn_layers": 1, "dropout": 0.1},
        "optim": {"epochs": 4, "batch_size": 8, "lr": 0.005, "label_smoothing": 0.0},
        "split": {"strategy": "auto", "val_fraction": 0.15, "test_fraction": 0.15}}))
    assert train(["--config", str(config), "--videos", str(root / "videos"), "--cache", str(cache.root),
                  "--registry", str(root / "models"), "--runs", str(root / "runs"), "--name", "reader",
                  "--no-progress"]) == 0
    return root / "models" / "reader", root / "videos", cache


class FakeSpeaker:
    """Stands in for the speech engine: remembers what it was asked to say and how often the
    alarm sounded; ``speech_problem`` / ``alarm_problem`` as a real one without them."""

    def __init__(self, speech_problem: str = "", alarm_problem: str = ""):
        self.said: list[str] = []
        self.alerts = 0
        self.speech_problem, self.alarm_problem = speech_problem, alarm_problem

    def say(self, phrase: str) -> None:
        self.said.append(phrase)

    def alert(self) -> None:
        self.alerts += 1


def no_camera():
    """A window source that has no camera (the window says so and keeps its panels)."""
    from features.video import VideoError
    from recognizer.gui.window import SourceSpec

    def fail():
        raise VideoError("no camera in this test")
    return SourceSpec(fail, retry=False, describe="No camera")


@pytest.fixture
def new_window(qtbot, tmp_path):
    """Makes bedside windows (history and settings in ``tmp_path``, a :class:`FakeSpeaker`),
    shown and, unless ``start=False``, started; closes them at the end."""
    from recognizer.gui.window import MainWindow

    made = []

    def make(source=None, registry=None, videos=None, train_args=(), start=True, speaker=None):
        window = MainWindow(source or no_camera(), registry or tmp_path / "models",
                            videos or tmp_path / "videos", tmp_path / "history.csv",
                            tuple(train_args), speaker=speaker or FakeSpeaker())
        qtbot.addWidget(window)
        window.show()
        if start:
            window.start()
        made.append(window)
        return window
    yield make
    for window in made:
        window.close()


@pytest.fixture(scope="session")
def colour_clips(grid_dir, grid_cache, tmp_path_factory):
    """The colour words cut from the shared sentences the shipped reader never trained or
    validated on: (videos folder, {word: [clip, ...]} in sentence order)."""
    from features.cache import file_digest
    from features.dataset import build_manifest
    from features.grid import import_grid
    from training.registry import training_digests

    seen = training_digests(SHIPPED_READER)
    apart = [p.stem for p in grid_cache[1] if file_digest(p) not in seen]
    videos = tmp_path_factory.mktemp("words")
    import_grid(grid_dir, videos, words=COLOUR_WORDS, padding=4, sentences=apart)
    manifest = build_manifest(videos)
    return videos, {w: sorted(manifest.loc[manifest["label"] == w, "path"]) for w in COLOUR_WORDS}
