"""MediaPipe landmarks and per-frame features on the real GRID clips."""
import shutil

import numpy as np
import pytest

from features.frame_features import FEATURE_NAMES, FeaturePipeline
from features.grid import parse_align
from features.landmarks import (LandmarkerConfig, LandmarkExtractor, ModelFileError,
                                MODEL_PATH)
from features.topology import EYE_CORNERS, LIP_POINTS
from features.video import read_frames

# Their first frames are corrupt in the corpus itself (grey or smeared
# blocks, checked by eye), so no face can be found there.
CORRUPT_LEADING_FRAMES = {"brwg8p": 12, "lgbf8n": 12, "pbio7a": 32, "sran9s": 10}


def speech_frames(align_path, length):
    """Boolean (length,) mask of frames inside the spoken words."""
    mask = np.zeros(length, bool)
    for word in parse_align(align_path):
        if word.word != "sil":
            mask[word.start_frame:word.end_frame] = True
    return mask


def test_missing_or_wrong_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        LandmarkExtractor(LandmarkerConfig(model_path=tmp_path / "none.task"))
    damaged = tmp_path / "face_landmarker.task"
    shutil.copy(MODEL_PATH, damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ModelFileError, match="sha256"):
        LandmarkExtractor(LandmarkerConfig(model_path=damaged))


def test_landmarks_found_on_every_frame_of_the_shared_clips(grid_cache):
    cache, paths = grid_cache
    assert len(paths) == 300
    for path in paths:
        valid = cache.load(path).valid
        start = CORRUPT_LEADING_FRAMES.get(path.stem, 0)
        assert valid[start:].all(), f"{path.name}: no face at frames {np.flatnonzero(~valid)}"


def test_lip_points_lie_on_the_mouth(grid_dir):
    frames = read_frames(grid_dir / "video" / "bbaf2n.mp4")[::15]
    with LandmarkExtractor() as extractor:
        faces = [extractor.detect(f.rgb, f.timestamp_ms) for f in frames]
    for face in faces:
        assert face.points.shape == (478, 3) and face.blendshapes.shape == (52,)
        lips = face.points[list(LIP_POINTS), :2]
        left, right = face.points[list(EYE_CORNERS), :2]
        nose_tip, chin = face.points[1, 1], face.points[152, 1]
        assert left[0] < lips[:, 0].mean() < right[0]
        assert nose_tip < lips[:, 1].min() and lips[:, 1].max() < chin


def test_mouth_opens_and_moves_with_the_spoken_words(grid_cache, grid_dir):
    cache, paths = grid_cache
    names = list(FEATURE_NAMES)
    mar = names.index("inner_mar")
    lips = [names.index(n) for n in names if n.startswith("lip")]
    louder, livelier = 0, 0
    for path in paths:
        clip = cache.load(path)
        speech = speech_frames(grid_dir / "align" / f"{path.stem}.align", len(clip.valid))
        rest = ~speech & clip.valid
        speech &= clip.valid
        motion = np.r_[0, np.abs(np.diff(clip.features[:, lips], axis=0)).sum(axis=1)]
        louder += clip.features[speech, mar].mean() > clip.features[rest, mar].mean()
        livelier += motion[speech].mean() > motion[rest].mean()
    assert louder >= 0.97 * len(paths), louder
    assert livelier >= 0.97 * len(paths), livelier


def test_pipeline_gives_named_features_and_crops(grid_dir):
    frames = read_frames(grid_dir / "video" / "bbaf2n.mp4")[:5]
    with FeaturePipeline() as pipeline:
        rows = [pipeline.process(f) for f in frames]
    for row in rows:
        assert row.features.shape == (len(FEATURE_NAMES),) == (111,)
        assert np.isfinite(row.features).all()
        assert row.crop.shape == (96, 96) and row.crop.dtype == np.uint8
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_frame_without_a_face_is_marked_not_fatal():
    with FeaturePipeline() as pipeline:
        from features.video import Frame
        row = pipeline.process(Frame(0, 0, np.full((240, 320, 3), 90, np.uint8)))
    assert row.face is None and row.features is None and row.crop is None
