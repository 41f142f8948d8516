"""Pixels of the mouth: teeth/tongue colour ratios and the mouth crop.

Image operations with OpenCV over one RGB frame and its landmark array (in
pixels, see :class:`features.landmarks.FaceLandmarks`). No IO, no MediaPipe.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from features.geometry import face_frame, interocular_distance, polygon_area
from features.topology import INNER_LIP, OUTER_LIP

COLOUR_NAMES = ("teeth_ratio", "tongue_ratio")

_INNER_INDEX = np.array(INNER_LIP)
_OUTER_INDEX = np.array(OUTER_LIP)


@dataclass(frozen=True)
class ColourConfig:
    """HSV ranges (OpenCV scale: H 0-179, S and V 0-255) and the size gate.

    Ranges follow lip-sync-core. With ``normalise_lighting`` the mouth
    region is first brought to ``reference_brightness`` (median V in [0, 1])
    by a power curve; ``min_inner_area`` gates by mouth size
    relative to the face: below that inner-lip area (over the squared
    inter-ocular distance) the mouth counts as closed and both ratios are 0.
    """

    teeth_low: tuple[int, int, int] = (110, 0, 65)
    teeth_high: tuple[int, int, int] = (177, 127, 204)
    tongue_low: tuple[int, int, int] = (0, 20, 60)
    tongue_high: tuple[int, int, int] = (20, 180, 255)
    normalise_lighting: bool = True
    reference_brightness: float = 0.5
    roi_margin: float = 0.3
    min_inner_area: float = 0.002


@dataclass(frozen=True)
class CropConfig:
    """Mouth crop for the video recogniser.

    ``face_scale``: side of the square crop as a multiple of the inter-ocular
    distance, so the crop covers the same part of the face at any distance.
    """

    size: int = 96
    face_scale: float = 1.0
    clahe_clip: float = 2.0
    clahe_tiles: int = 8


def _inside_bounds(points_xy: np.ndarray, shape: tuple[int, ...], margin: float):
    low, high = points_xy.min(axis=0), points_xy.max(axis=0)
    pad = (high - low) * margin
    x0, y0 = np.maximum(np.floor(low - pad), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(high + pad) + 1, (shape[1], shape[0])).astype(int)
    return x0, y0, x1, y1


def _normalise_brightness(region: np.ndarray, reference: float) -> np.ndarray:
    """Normalise a lamp's brightness out of an RGB region, (h, w, 3) uint8.

    Two steps on every channel: divide by the region's white point (99th
    percentile of V), which undoes a gain, then apply c -> c ** k so the
    median V becomes ``reference``, which undoes a gamma curve. CLAHE on V
    alone was tried and left the ratios moving by ~0.1, because a gamma
    shift changes saturation as well as value.
    """
    value = cv2.max(cv2.max(region[..., 0], region[..., 1]), region[..., 2])
    cumulative = np.cumsum(np.bincount(value.ravel(), minlength=256)) / value.size
    white = max(float(np.searchsorted(cumulative, 0.99)), 1.0)
    median = float(np.searchsorted(cumulative, 0.5)) / white
    exponent = np.log(reference) / np.log(np.clip(median, 0.02, 0.98))
    levels = np.clip(np.arange(256) / white, 0.0, 1.0)
    table = np.round(255.0 * levels ** exponent).astype(np.uint8)
    return cv2.LUT(region, table)


def mouth_colour(rgb: np.ndarray, points: np.ndarray,
                 config: ColourConfig = ColourConfig()) -> np.ndarray:
    """(teeth_ratio, tongue_ratio) as (2,) float32, shares in [0, 1].

    Each is the share of pixels inside the inner-lip polygon whose HSV value
    falls in the configured range, after the mouth region's brightness is
    normalised (``_normalise_brightness``) so a brighter or darker lamp gives
    the same ratios.
    """
    inner = points[_INNER_INDEX, :2]
    iod = interocular_distance(points)
    if polygon_area(inner) / iod ** 2 < config.min_inner_area:
        return np.zeros(2, dtype=np.float32)
    x0, y0, x1, y1 = _inside_bounds(points[_OUTER_INDEX, :2], rgb.shape, config.roi_margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros(2, dtype=np.float32)
    region = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if config.normalise_lighting:
        region = _normalise_brightness(region, config.reference_brightness)
    hsv = cv2.cvtColor(region, cv2.COLOR_RGB2HSV)
    mask = np.zeros(hsv.shape[:2], dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(inner - (x0, y0)).astype(np.int32)], 1)
    total = int(mask.sum())
    if total == 0:
        return np.zeros(2, dtype=np.float32)
    ratios = [
        int(cv2.countNonZero(cv2.inRange(hsv, low, high) & mask)) / total
        for low, high in ((config.teeth_low, config.teeth_high),
                          (config.tongue_low, config.tongue_high))
    ]
    return np.array(ratios, dtype=np.float32)


def mouth_crop_box(points: np.ndarray, config: CropConfig = CropConfig()) -> np.ndarray:
    """Corners (4, 2) in pixels of the crop square, for drawing over the frame."""
    matrix = _crop_matrix(points, config)
    inverse = cv2.invertAffineTransform(matrix)
    s = config.size
    corners = np.array([[0, 0, 1], [s, 0, 1], [s, s, 1], [0, s, 1]], dtype=np.float64)
    return (corners @ inverse.T).astype(np.float32)


def _crop_matrix(points: np.ndarray, config: CropConfig) -> np.ndarray:
    origin, rotation, scale = face_frame(points)
    zoom = config.size / (config.face_scale * scale)
    linear = rotation * zoom
    centre = np.array([config.size / 2, config.size / 2])
    return np.hstack([linear, (centre - linear @ origin)[:, None]])


def mouth_crop(rgb: np.ndarray, points: np.ndarray,
               config: CropConfig = CropConfig()) -> np.ndarray:
    """(size, size) uint8 grayscale crop centred on the mouth, eyes level, CLAHE."""
    patch = cv2.warpAffine(rgb, _crop_matrix(points, config), (config.size, config.size),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    clahe = cv2.createCLAHE(config.clahe_clip, (config.clahe_tiles, config.clahe_tiles))
    return clahe.apply(gray)
