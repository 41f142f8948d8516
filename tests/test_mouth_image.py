"""Teeth/tongue colour ratios and mouth crops on real GRID frames."""
import cv2
import numpy as np
import pytest

from features.geometry import lip_geometry
from features.landmarks import LandmarkExtractor
from features.mouth_image import (ColourConfig, CropConfig, appearance_names, colour_measurable,
                                  mouth_appearance, mouth_colour, mouth_crop, mouth_crop_box)
from features.topology import INNER_LIP
from features.video import read_frames

# Frames of the shared GRID sentences labelled by eye (sentence: frame indices),
# from 8x crops of the mouth: the teeth plainly visible; the lips shut; the mouth
# open with only its dark inside (and perhaps tongue) in sight, no teeth.
TEETH_VISIBLE = {"bbaf2n": (36, 37, 49, 50), "bbaf3s": (28, 29),
                 "bbaf4p": (29, 30, 42, 43, 44, 45),
                 "bbas3a": (15, 16, 37, 38, 39, 48, 50, 52),
                 "bbaszn": (27, 28, 29, 30, 31, 33, 34, 43, 44)}
MOUTH_CLOSED = {"bbaf2n": (0, 5, 60, 65, 70), "bbaf3s": (50, 55, 60, 70),
                "bbaf4p": (5, 55, 65, 70), "bbas3a": (5, 30, 60, 65),
                "bbaszn": (50, 55, 60, 65)}
OPEN_NO_TEETH = {"bbaf2n": (13, 14), "bbaf3s": (41, 42), "bbaf4p": (36, 37),
                 "bbas3a": (34, 35), "bbaszn": (23, 25)}


@pytest.fixture(scope="module")
def open_mouth_frames(grid_dir):
    """(rgb, points) of the three widest-open frames of four sentences."""
    chosen = []
    for sentence in ("bbaf2n", "lgbf8n", "bgaa8p", "swwp2n"):
        frames = read_frames(grid_dir / "video" / f"{sentence}.mp4")
        with LandmarkExtractor() as extractor:
            faces = [(f.rgb, extractor.detect(f.rgb, f.timestamp_ms)) for f in frames]
        faces = [(rgb, face.points) for rgb, face in faces if face is not None]
        faces.sort(key=lambda item: -lip_geometry(item[1])[4])
        chosen += faces[:3]
    return chosen


@pytest.fixture(scope="module")
def labelled_frames(grid_dir):
    """{"teeth" | "closed" | "open": [(rgb, points), ...]} for the frames labelled above."""
    labels = {"teeth": TEETH_VISIBLE, "closed": MOUTH_CLOSED, "open": OPEN_NO_TEETH}
    chosen = {label: [] for label in labels}
    for sentence in TEETH_VISIBLE:
        with LandmarkExtractor() as extractor:
            faces = {f.index: (f.rgb, extractor.detect(f.rgb, f.timestamp_ms))
                     for f in read_frames(grid_dir / "video" / f"{sentence}.mp4")}
        for label, frames in labels.items():
            chosen[label] += [(faces[i][0], faces[i][1].points) for i in frames[sentence]]
    return chosen


def test_teeth_ratio_separates_visible_teeth_from_closed_and_dark_mouths(labelled_frames):
    teeth = {label: np.array([mouth_colour(rgb, points)[0] for rgb, points in frames])
             for label, frames in labelled_frames.items()}
    threshold = 0.08
    assert (teeth["closed"] == 0).all()
    assert (teeth["open"] < threshold).all(), teeth["open"]
    assert np.mean(teeth["teeth"] > threshold) >= 0.9, teeth["teeth"]
    assert np.median(teeth["teeth"]) > 0.2


def test_closed_mouths_are_not_measured_open_ones_are(labelled_frames):
    measured = {label: [colour_measurable(points, rgb.shape) for rgb, points in frames]
                for label, frames in labelled_frames.items()}
    assert not any(measured["closed"])
    assert all(measured["teeth"]) and all(measured["open"])


def test_a_mouth_off_the_image_is_not_measured(open_mouth_frames):
    rgb, points = open_mouth_frames[0]
    assert colour_measurable(points, rgb.shape)
    shifted = points + np.float32([rgb.shape[1] - points[list(INNER_LIP), 0].mean(), 0, 0])
    assert not colour_measurable(shifted, rgb.shape)
    assert mouth_colour(rgb, shifted).tolist() == [0, 0]


def test_the_gate_counts_image_pixels(open_mouth_frames):
    """A mouth far from the camera covers too few pixels for its colour, whatever its shape."""
    import cv2
    rgb, points = open_mouth_frames[0]
    small = cv2.resize(rgb, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    assert not colour_measurable(points * 0.2, small.shape)
    assert colour_measurable(points * 0.2, small.shape, ColourConfig(min_inner_pixels=0))


def gamma(rgb, power):
    return np.round(255 * (rgb / 255.0) ** power).astype(np.uint8)


@pytest.mark.parametrize("lamp", [lambda x: gamma(x, 0.7), lambda x: gamma(x, 1.4),
                                  lambda x: (x * 0.6).astype(np.uint8)],
                         ids=["brighter-gamma", "darker-gamma", "darker-gain"])
def test_ratios_do_not_follow_the_lamp(open_mouth_frames, lamp):
    normalised, raw = [], []
    for rgb, points in open_mouth_frames:
        for config, out in ((ColourConfig(), normalised),
                            (ColourConfig(normalise_lighting=False), raw)):
            out.append(np.abs(mouth_colour(lamp(rgb), points, config)
                              - mouth_colour(rgb, points, config)))
    assert np.max(normalised) < 0.05
    # Without the normalisation the same test fails: the lamp does move the ratios.
    assert np.max(raw) > 0.05


def test_ratios_measure_pixels_inside_the_inner_lip(open_mouth_frames):
    rgb, points = open_mouth_frames[0]
    import cv2
    painted = rgb.copy()
    cv2.fillPoly(painted, [np.round(points[list(INNER_LIP), :2]).astype(np.int32)],
                 (170, 90, 80))  # a tongue red: H 3, S 135, V 170
    raw = ColourConfig(normalise_lighting=False, tongue_border=0)
    teeth, tongue = mouth_colour(painted, points, raw)
    assert tongue > 0.8 and teeth < 0.05
    # By default the tongue is counted a pixel in from the lip, so less of the mouth.
    assert 0.4 < mouth_colour(painted, points, ColourConfig(normalise_lighting=False))[1] < tongue
    cv2.fillPoly(painted, [np.round(points[list(INNER_LIP), :2]).astype(np.int32)],
                 (150, 150, 160))  # a bluish grey, inside the teeth range
    teeth, tongue = mouth_colour(painted, points, raw)
    assert teeth > 0.8 and tongue < 0.05
    assert ((0 <= mouth_colour(rgb, points)) & (mouth_colour(rgb, points) <= 1)).all()


def test_closed_mouth_is_gated_by_size_relative_to_the_face(open_mouth_frames):
    rgb, points = open_mouth_frames[0]
    assert mouth_colour(rgb, points, ColourConfig(min_inner_area=1.0)).tolist() == [0, 0]


def test_size_gate_is_the_inner_area_feature(open_mouth_frames):
    """The gate and the ``inner_area`` feature use one inter-ocular distance (features.geometry)."""
    import cv2

    def ratios(rgb, points, gate):
        return mouth_colour(rgb, points, ColourConfig(normalise_lighting=False, min_inner_area=gate))
    for rgb, points in open_mouth_frames:
        painted = rgb.copy()
        cv2.fillPoly(painted, [np.round(points[list(INNER_LIP), :2]).astype(np.int32)],
                     (170, 90, 80))  # a tongue red, so an ungated mouth has ratios above 0
        area = float(lip_geometry(points)[4])
        ungated = ratios(painted, points, 0.0)
        assert ungated[1] > 0.5
        np.testing.assert_array_equal(ratios(painted, points, area * 0.999), ungated)
        assert ratios(painted, points, area * 1.001).tolist() == [0, 0]


def test_crop_is_centred_on_the_mouth_and_independent_of_distance(open_mouth_frames):
    import cv2
    rgb, points = open_mouth_frames[0]
    crop = mouth_crop(rgb, points)
    assert crop.shape == (96, 96) and crop.dtype == np.uint8
    # The same face at half the size (further from the camera) gives the same crop.
    small = cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    far = mouth_crop(small, points * np.float32([0.5, 0.5, 0.5]))
    assert np.abs(far.astype(int) - crop).mean() < 20
    box = mouth_crop_box(points, CropConfig())
    np.testing.assert_allclose(box.mean(axis=0), points[list(INNER_LIP) , :2].mean(axis=0),
                               atol=0.15 * np.ptp(box[:, 0]))


def test_the_pipeline_says_where_the_colour_was_not_measured(grid_dir):
    """Unmeasured ratios are 0 in the (finite) feature vector and flagged on the frame."""
    from features.frame_features import FEATURE_NAMES, FeaturePipeline
    from features.video import VideoFileSource

    colour = [FEATURE_NAMES.index("teeth_ratio"), FEATURE_NAMES.index("tongue_ratio")]
    frames = list(VideoFileSource(grid_dir / "video" / "bbaf2n.mp4"))
    with FeaturePipeline(crops=False) as pipeline:
        rows = [pipeline.process(f) for f in frames]
    measured = np.array([row.colour_measured for row in rows])
    features = np.stack([row.features for row in rows])
    assert features.shape == (75, len(FEATURE_NAMES)) == (75, 111) and np.isfinite(features).all()
    assert 0.2 < measured.mean() < 0.9
    assert (features[~measured][:, colour] == 0).all()
    assert (features[measured, colour[0]] > 0).any()
    for frame, row in list(zip(frames, rows))[::10]:
        assert row.colour_measured == colour_measurable(row.face.points, frame.rgb.shape)


def test_appearance_reads_the_mouth_region_only_and_row_by_row():
    crop = np.full((96, 96), 100, np.uint8)
    flat = mouth_appearance(crop[None], 8)[0]
    assert flat.shape == (64,) and len(appearance_names(8)) == 64
    assert flat[0] == pytest.approx(100 / 255 * 32, rel=1e-4)    # orthonormal: the mean times 32
    assert np.abs(flat[1:]).max() < 1e-4
    outside = crop.copy()
    outside[:20], outside[:, 80:] = 255, 0                        # nose and cheek, not the mouth
    np.testing.assert_allclose(mouth_appearance(outside[None], 8)[0], flat, atol=1e-4)
    band = crop.copy()
    band[40:52] = 255                                             # a row of teeth across the mouth
    teeth = (mouth_appearance(band[None], 8)[0] - flat).reshape(8, 8)
    # It changes down the rows only: row frequencies (dct<i>_0), none across the columns.
    assert np.abs(teeth[1:, 0]).sum() > 1.0 and np.abs(teeth[:, 1:]).max() < 1e-4
    with pytest.raises(ValueError, match="1 to 32"):
        mouth_appearance(crop[None], 0)


@pytest.mark.parametrize("frames", [1, 3, 4, 6, 75])
def test_appearance_is_each_frames_dct_of_its_resized_mouth(frames):
    """Read 4 frames a resize as channels and through one matrix product, it is still,
    frame by frame, OpenCV's DCT of OpenCV's resize of that frame's mouth region."""
    crops = np.random.default_rng(frames).integers(0, 256, (frames, 96, 96), dtype=np.uint8)
    expected = np.stack([cv2.dct(cv2.resize(c[24:72, 24:72], (32, 32),
                                            interpolation=cv2.INTER_AREA).astype(np.float32)
                                 / 255.0)[:6, :6].ravel() for c in crops])
    got = mouth_appearance(crops, 6)
    assert got.shape == (frames, 36) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_appearance_tells_teeth_from_lips_on_real_mouths(labelled_frames):
    """Leave-one-out nearest centroid over the DCT of real crops: the frames labelled by
    eye with teeth showing against those with the lips shut, and against an open mouth
    with no teeth in sight."""
    features = {label: np.stack([mouth_appearance(mouth_crop(rgb, points)[None], 8)[0]
                                 for rgb, points in frames])
                for label, frames in labelled_frames.items()}
    for other in ("closed", "open"):
        pair = [features["teeth"], features[other]]
        right = 0
        for side, group in enumerate(pair):
            for i in range(len(group)):
                centroids = [np.delete(g, i, axis=0).mean(0) if s == side else g.mean(0)
                             for s, g in enumerate(pair)]
                right += int(np.argmin([np.linalg.norm(group[i] - c) for c in centroids]) == side)
        assert right / sum(map(len, pair)) >= 0.94, other     # measured 50/50 and 37/39
