"""MediaPipe landmarks and per-frame features on the real GRID clips."""
import itertools
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from features import landmarks
from features.frame_features import FEATURE_NAMES, FeaturePipeline
from features.grid import parse_align
from features.landmarks import (LandmarkerConfig, LandmarkExtractor, ModelFileError,
                                MODEL_PATH)
from features.topology import EYE_CORNERS, LIP_POINTS
from features.video import VideoFileSource, read_frames

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


def _first_frames(grid_dir, count=12):
    source = VideoFileSource(grid_dir / "video" / "bbaf2n.mp4")
    return list(itertools.islice(source, count))


def _detect_all(extractor, frames):
    faces = [extractor.detect(f.rgb, f.timestamp_ms) for f in frames]
    assert all(face is not None for face in faces)
    return np.stack([f.points for f in faces]), np.stack([f.blendshapes for f in faces])


class _PublicOnly:
    """A FaceLandmarker as a MediaPipe release without the private names would give it."""

    def __init__(self, landmarker):
        self._real = landmarker

    def detect_for_video(self, image, timestamp_ms):
        return self._real.detect_for_video(image, timestamp_ms)

    def close(self):
        self._real.close()


class _ChangedPrivateCall(_PublicOnly):
    """A FaceLandmarker whose private C entry point no longer takes the fast path's arguments."""

    def __init__(self, landmarker):
        super().__init__(landmarker)
        self._handle = landmarker._handle
        self._lib = SimpleNamespace(MpFaceLandmarkerDetectForVideo=self._refuse,
                                    MpFaceLandmarkerCloseResult=lambda result: None)

    @staticmethod
    def _refuse(*args):
        raise TypeError(f"MpFaceLandmarkerDetectForVideo() takes 6 arguments ({len(args)} given)")


@pytest.fixture
def public_calls(monkeypatch):
    """Landmarkers that ran the public detect_for_video, one entry per call."""
    from mediapipe.tasks.python.vision import FaceLandmarker

    calls = []
    public = FaceLandmarker.detect_for_video

    def counted(self, image, timestamp_ms, *rest):
        calls.append(self)
        return public(self, image, timestamp_ms, *rest)
    monkeypatch.setattr(FaceLandmarker, "detect_for_video", counted)
    return calls


def _extractor_with(monkeypatch, wrapper):
    """A LandmarkExtractor whose MediaPipe landmarker is wrapped by ``wrapper``."""
    from mediapipe.tasks.python.vision import FaceLandmarker

    create = FaceLandmarker.create_from_options
    with monkeypatch.context() as patch:
        patch.setattr(FaceLandmarker, "create_from_options",
                      lambda options: wrapper(create(options)))
        return LandmarkExtractor()


def test_private_fast_path_reads_what_the_public_api_returns(grid_dir, public_calls, monkeypatch):
    """The fast path reads MediaPipe's C result itself; it must agree with detect_for_video."""
    frames = _first_frames(grid_dir)
    with LandmarkExtractor() as fast:
        fast_points, fast_shapes = _detect_all(fast, frames)
        assert fast.uses_private_api
    assert public_calls == []
    with pytest.warns(RuntimeWarning), _extractor_with(monkeypatch, _PublicOnly) as public:
        public_points, public_shapes = _detect_all(public, frames)
    assert len(public_calls) == len(frames)
    np.testing.assert_array_equal(fast_points, public_points)
    np.testing.assert_array_equal(fast_shapes, public_shapes)
    assert fast_shapes.max() > 0.1


def _unreadable_result(monkeypatch):
    """MediaPipe takes the frame, then its result cannot be read (a changed C struct)."""
    def changed(pointer, count, fields):
        raise AttributeError(f"'MpNormalizedLandmarkC' has no field {fields[0]!r}")
    monkeypatch.setattr(landmarks, "_struct_array", changed)
    return LandmarkExtractor()


@pytest.mark.parametrize("make, reason, points_px, scores", [
    (lambda patch: _extractor_with(patch, _PublicOnly), "has no _lib, _handle", 0.0, 0.0),
    (lambda patch: _extractor_with(patch, _ChangedPrivateCall), "TypeError", 0.0, 0.0),
    # The frame MediaPipe took goes in again 1 ms later, tracked from its own first
    # pass: its points move by up to 0.3 px, its blendshape scores by up to 0.02.
    (_unreadable_result, "AttributeError", 0.5, 0.05),
], ids=["names-missing", "call-refused", "result-unreadable"])
def test_without_the_private_api_the_public_one_is_used_with_one_warning(
        grid_dir, monkeypatch, make, reason, points_px, scores):
    frames = _first_frames(grid_dir)
    with LandmarkExtractor() as fast:
        expected_points, expected_shapes = _detect_all(fast, frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with make(monkeypatch) as extractor:
            points, shapes = _detect_all(extractor, frames)
            assert not extractor.uses_private_api
    assert [w.category for w in caught] == [RuntimeWarning]
    assert reason in str(caught[0].message) and "detect_for_video" in str(caught[0].message)
    np.testing.assert_allclose(points, expected_points, rtol=0, atol=points_px)
    np.testing.assert_allclose(shapes, expected_shapes, rtol=0, atol=scores)
