"""Extraction with the cache: hits, invalidation, bad files, CSV, CLI."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from features.cache import FeatureCache
from features.extract import extract_many, find_videos, main
from features.frame_features import FEATURE_NAMES, FeatureConfig
from features.mouth_image import ColourConfig
from features.video import write_video


@pytest.fixture
def clips(tmp_path, grid_dir):
    """Two real clips and one of each kind of bad file, in a videos folder."""
    root = tmp_path / "videos"
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    for name in ("bbaf2n", "bbaf3s"):
        shutil.copy(grid_dir / "video" / f"{name}.mp4", root / "good" / f"{name}.mp4")
    (root / "bad" / "empty.mp4").touch()
    (root / "bad" / "notes.avi").write_text("not a video at all\n" * 20)
    data = (grid_dir / "video" / "bbaf4p.mp4").read_bytes()
    (root / "bad" / "truncated.mp4").write_bytes(data[:2500])
    write_video(root / "bad" / "noface.mp4", [np.full((120, 160, 3), 128, np.uint8)] * 8, 25)
    return root


def test_bad_files_are_named_and_the_batch_goes_on(clips, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    summary = extract_many(find_videos(clips), cache, workers=2)
    assert sorted(p.name for p in summary.entries) == ["bbaf2n.mp4", "bbaf3s.mp4"]
    assert sorted(p.name for p in summary.failed) == [
        "empty.mp4", "noface.mp4", "notes.avi", "truncated.mp4"]
    for path, reason in summary.failed.items():
        assert path.name in reason
    assert "no face" in summary.failed[clips / "bad" / "noface.mp4"]
    clip = cache.load(clips / "good" / "bbaf2n.mp4")
    assert clip.features.shape == (75, len(FEATURE_NAMES)) and clip.names == FEATURE_NAMES
    assert clip.crops.shape == (75, 96, 96) and clip.valid.all()
    assert clip.fps == pytest.approx(25)


def test_second_run_hits_the_cache_and_a_changed_extractor_recomputes(clips, tmp_path, monkeypatch):
    good = find_videos(clips / "good")
    cache = FeatureCache(tmp_path / "cache")
    first = extract_many(good, cache, workers=1)
    assert first.cache_hits == 0 and len(first.entries) == 2
    second = extract_many(good, cache, workers=1)
    assert second.cache_hits == 2 and second.entries == first.entries

    # Another configuration, or a new extractor version, is another key.
    other = FeatureConfig(colour=ColourConfig(min_inner_area=0.01))
    assert FeatureCache(cache.root, other).path_for(good[0]) != cache.path_for(good[0])
    monkeypatch.setattr("features.cache.EXTRACTOR_VERSION", "test-next")
    bumped = FeatureCache(cache.root)
    assert extract_many(good, bumped, workers=1).cache_hits == 0


def test_a_changed_file_is_recomputed_and_a_moved_one_is_not(clips, tmp_path, grid_dir):
    cache = FeatureCache(tmp_path / "cache")
    path = clips / "good" / "bbaf2n.mp4"
    extract_many([path], cache, workers=1)
    moved = clips / "good" / "renamed.mp4"
    shutil.copy(path, moved)
    assert extract_many([moved], cache, workers=1).cache_hits == 1
    shutil.copy(grid_dir / "video" / "bbaf4p.mp4", path)
    assert extract_many([path], cache, workers=1).cache_hits == 0


def test_interrupted_run_resumes_with_the_rest(clips, tmp_path, monkeypatch):
    good = find_videos(clips / "good")
    cache = FeatureCache(tmp_path / "cache")
    extract_many(good[:1], cache, workers=1)
    (cache.root / ".leftover.npz.1234.partial").write_bytes(b"half")  # a killed writer
    done = []
    summary = extract_many(good, cache, workers=1, on_progress=lambda p, e: done.append(p))
    assert summary.cache_hits == 1 and len(summary.entries) == 2 and len(done) == 2


def test_cli_writes_csv_and_reports_failures(clips, tmp_path, capsys):
    status = main([str(clips), "--cache", str(tmp_path / "cache"), "--csv", str(tmp_path / "csv"),
                   "--workers", "2"])
    out = capsys.readouterr().out
    assert status == 1
    assert "2 clips ready" in out and "4 failed" in out and "noface.mp4" in out
    table = np.genfromtxt(tmp_path / "csv" / "good" / "bbaf2n.csv", delimiter=",", names=True)
    assert len(table) == 75 and "inner_mar" in table.dtype.names
    assert main([str(tmp_path / "nowhere")]) == 2


def test_a_clip_without_a_face_is_remembered_not_decoded_again(clips, tmp_path, monkeypatch):
    noface = [clips / "bad" / "noface.mp4"]
    cache = FeatureCache(tmp_path / "cache")
    first = extract_many(noface, cache, workers=1)
    assert "no face" in first.failed[noface[0]] and first.cache_hits == 0

    def must_not_decode(*args):
        raise AssertionError("decoded a clip already known to show no face")

    monkeypatch.setattr("features.extract.extract_clip", must_not_decode)
    second = extract_many(noface, cache, workers=1)
    assert second.failed == first.failed and second.cache_hits == 1


def test_the_feature_cache_key_is_the_same_in_every_checkout():
    """Registry cards record it: a shipped model must not be refused where the repository lies."""
    from dataclasses import replace

    from features.cache import extractor_key
    from features.frame_features import FeatureConfig

    config = FeatureConfig()
    elsewhere = replace(config, landmarker=replace(
        config.landmarker, model_path=Path("/somewhere/else/models/assets/face_landmarker.task")))
    assert extractor_key(elsewhere) == extractor_key(config)
    stricter = replace(config, landmarker=replace(config.landmarker, min_detection_confidence=0.9))
    assert extractor_key(stricter) != extractor_key(config)
