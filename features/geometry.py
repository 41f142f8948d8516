"""Lip geometry: pure functions over a (478, 3) landmark array.

Input landmarks are in pixels (see :class:`features.landmarks.FaceLandmarks`);
only x and y are used. Every output is scale-free: lengths are divided by
the inter-ocular distance (outer eye corners 33-263), areas by its square.
"""
from __future__ import annotations

import numpy as np

from features.topology import (EYE_CORNERS, INNER_HORIZONTAL, INNER_LIP, INNER_VERTICAL,
                               LIP_POINTS, OUTER_HORIZONTAL, OUTER_VERTICAL)

GEOMETRY_NAMES = ("inner_mar", "outer_mar", "mouth_width", "mouth_height", "inner_area")
LIP_POINT_NAMES = tuple(f"lip{i}_{axis}" for i in LIP_POINTS for axis in "xy")

_LIP_INDEX = np.array(LIP_POINTS)
_INNER_INDEX = np.array(INNER_LIP)


def _distance(points: np.ndarray, pair: tuple[int, int]) -> float:
    a, b = pair
    return float(np.hypot(*(points[a, :2] - points[b, :2])))


def interocular_distance(points: np.ndarray) -> float:
    """Distance between the outer eye corners, in the units of ``points``."""
    return _distance(points, EYE_CORNERS)


def polygon_area(xy: np.ndarray) -> float:
    """Area of a simple polygon given as (N, 2) vertices in order (shoelace)."""
    x, y = xy[:, 0], xy[:, 1]
    wrap = x[-1] * y[0] - y[-1] * x[0]  # the edge from the last vertex back to the first
    return 0.5 * abs(float(x[:-1] @ y[1:] - y[:-1] @ x[1:] + wrap))


def lip_geometry(points: np.ndarray) -> np.ndarray:
    """Mouth shape of one face as (5,) float32, named by :data:`GEOMETRY_NAMES`.

    inner_mar: inner-lip opening 13-14 over inner width 78-308;
    outer_mar: outer opening 0-17 over outer width 61-291;
    mouth_width, mouth_height: 61-291 and 0-17 over the inter-ocular distance;
    inner_area: area of the inner-lip polygon over the squared inter-ocular distance.
    """
    iod = interocular_distance(points)
    outer_width = _distance(points, OUTER_HORIZONTAL)
    outer_height = _distance(points, OUTER_VERTICAL)
    return np.array([
        _distance(points, INNER_VERTICAL) / max(_distance(points, INNER_HORIZONTAL), 1e-6),
        outer_height / max(outer_width, 1e-6),
        outer_width / iod,
        outer_height / iod,
        polygon_area(points[_INNER_INDEX, :2]) / iod ** 2,
    ], dtype=np.float32)


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face-normalised frame: (origin (2,), rotation (2, 2), scale).

    Origin is the mouth centre (mean of the 40 lip points), the rotation
    makes the eye line horizontal, the scale is the inter-ocular distance.
    A point p maps to ``rotation @ (p - origin) / scale``.
    """
    origin = points[_LIP_INDEX, :2].mean(axis=0)
    dx, dy = points[EYE_CORNERS[1], :2] - points[EYE_CORNERS[0], :2]
    angle = np.arctan2(dy, dx)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]])
    return origin, rotation, float(np.hypot(dx, dy))


def normalised_lip_points(points: np.ndarray) -> np.ndarray:
    """The 40 lip landmarks as (40, 2) float32 in the face-normalised frame.

    Invariant to translating, scaling and rotating (in the image plane) the
    whole landmark array. Order follows :data:`features.topology.LIP_POINTS`.
    """
    origin, rotation, scale = face_frame(points)
    return ((points[_LIP_INDEX, :2] - origin) @ rotation.T / scale).astype(np.float32)
