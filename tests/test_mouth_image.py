"""Teeth/tongue colour ratios and mouth crops on real GRID frames."""
import numpy as np
import pytest

from features.geometry import lip_geometry
from features.landmarks import LandmarkExtractor
from features.mouth_image import (ColourConfig, CropConfig, mouth_colour, mouth_crop,
                                  mouth_crop_box)
from features.topology import INNER_LIP
from features.video import read_frames


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
    raw = ColourConfig(normalise_lighting=False)
    teeth, tongue = mouth_colour(painted, points, raw)
    assert tongue > 0.8 and teeth < 0.05
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
