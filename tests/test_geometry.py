"""Pure lip geometry on landmark arrays."""
import numpy as np
import pytest

from features.geometry import (GEOMETRY_NAMES, LIP_POINT_NAMES, lip_geometry,
                               normalised_lip_points, polygon_area)
from features.topology import LIP_MIRROR_ORDER, LIP_POINTS, MOUTH_BLENDSHAPES


def face_like_points(seed=0):
    """A (478, 3) array with eyes level 100 px apart above a mouth, plus noise."""
    rng = np.random.default_rng(seed)
    points = rng.normal(0, 5, size=(478, 3)).astype(np.float32) + (200, 200, 0)
    points[33, :2], points[263, :2] = (150, 150), (250, 150)
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    from features.topology import INNER_LIP, OUTER_LIP
    points[list(OUTER_LIP), :2] = np.c_[200 + 30 * np.cos(angles), 250 + 12 * np.sin(angles)]
    points[list(INNER_LIP), :2] = np.c_[200 + 20 * np.cos(angles), 250 + 5 * np.sin(angles)]
    return points


def similarity(points, angle, scale, shift):
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    moved = points.copy()
    moved[:, :2] = points[:, :2] @ rotation.T * scale + shift
    moved[:, 2] *= scale
    return moved


def test_polygon_area_of_known_shapes():
    assert polygon_area(np.array([[0, 0], [2, 0], [2, 3], [0, 3]], float)) == pytest.approx(6.0)
    assert polygon_area(np.array([[0, 0], [0, 3], [2, 3], [2, 0]], float)) == pytest.approx(6.0)


def test_mouth_aspect_ratios_from_known_distances():
    points = face_like_points()
    points[78, :2], points[308, :2] = (180, 250), (220, 250)
    points[13, :2], points[14, :2] = (200, 246), (200, 254)
    points[61, :2], points[291, :2] = (170, 250), (230, 250)
    points[0, :2], points[17, :2] = (200, 238), (200, 262)
    geometry = dict(zip(GEOMETRY_NAMES, lip_geometry(points)))
    assert geometry["inner_mar"] == pytest.approx(8 / 40)
    assert geometry["outer_mar"] == pytest.approx(24 / 60)
    assert geometry["mouth_width"] == pytest.approx(60 / 100)
    assert geometry["mouth_height"] == pytest.approx(24 / 100)
    assert geometry["inner_area"] > 0


@pytest.mark.parametrize("angle,scale,shift", [
    (0.0, 1.0, (35.0, -12.0)), (0.0, 2.5, (0.0, 0.0)), (0.4, 1.0, (0.0, 0.0)),
    (-0.7, 0.3, (400.0, 90.0)),
])
def test_features_invariant_to_translation_scale_rotation(angle, scale, shift):
    points = face_like_points(seed=3)
    moved = similarity(points, angle, scale, np.array(shift))
    np.testing.assert_allclose(lip_geometry(moved), lip_geometry(points), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(normalised_lip_points(moved), normalised_lip_points(points),
                               atol=1e-4)


def test_normalised_frame_levels_the_eyes_and_centres_the_mouth():
    tilted = similarity(face_like_points(), 0.5, 1.7, np.array([10.0, 20.0]))
    lips = normalised_lip_points(tilted)
    assert lips.shape == (40, 2)
    np.testing.assert_allclose(lips.mean(axis=0), 0, atol=1e-5)
    # The synthetic mouth is 60 px wide against 100 px between the eyes, horizontal.
    width = lips[:, 0].max() - lips[:, 0].min()
    height = lips[:, 1].max() - lips[:, 1].min()
    assert width == pytest.approx(0.6, abs=1e-3) and height == pytest.approx(0.24, abs=1e-3)


def test_names_match_shapes_and_mirror_is_an_involution():
    assert len(LIP_POINT_NAMES) == 2 * len(LIP_POINTS) == 80
    assert len(set(LIP_POINTS)) == 40 and len(MOUTH_BLENDSHAPES) == 24
    order = np.array(LIP_MIRROR_ORDER)
    np.testing.assert_array_equal(order[order], np.arange(40))
    lips = normalised_lip_points(face_like_points())
    mirrored = lips[order] * (-1, 1)
    # The synthetic mouth is symmetric about its vertical axis.
    assert np.abs(np.sort(mirrored[:, 0]) - np.sort(lips[:, 0])).max() < 1e-3
