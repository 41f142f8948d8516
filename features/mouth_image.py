"""Pixels of the mouth: teeth/tongue colour ratios, the mouth crop and its appearance (DCT).

Image operations with OpenCV over one RGB frame and its landmark array (in
pixels, see :class:`features.landmarks.FaceLandmarks`). No IO, no MediaPipe.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from features.geometry import face_frame, interocular_distance, polygon_area
from features.topology import INNER_LIP, OUTER_LIP

COLOUR_NAMES = ("teeth_ratio", "tongue_ratio")

# The lips, teeth and tongue: the middle half of a mouth crop at the default face_scale
# (corner to corner across, nose to chin cut off), as a fraction of the crop's side.
APPEARANCE_REGION = (0.25, 0.75)
APPEARANCE_SIZE = 32

_INNER_INDEX = np.array(INNER_LIP)
_OUTER_INDEX = np.array(OUTER_LIP)
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class ColourConfig:
    """HSV ranges (OpenCV scale: H 0-179, S and V 0-255), lighting and the gate.

    Ranges were measured on GRID's mouths (after the lighting normalisation):
    teeth are the light (V >= 140) pixels of low saturation (S <= 120), of
    any hue (the lit part of GRID's teeth is S 85-120, its lips and the dark
    of the mouth mostly above); the tongue is red (H 170-179 or 0-10: a low hue above
    the high one wraps round red), more saturated than teeth and lit
    (V 140-200: above the dark of the mouth, below the lips in the light),
    counted ``tongue_border`` pixels or more inside the inner lip so that
    the lip the polygon grazes is not taken for tongue.

    With ``normalise_lighting`` the mouth region is brought to
    ``reference_brightness`` (median V over the region's white point) by a
    power curve of exponent at most ``max_gamma`` (or 1 / ``max_gamma``); the
    reference is GRID's own median (0.85-0.90), so GRID frames pass nearly
    unchanged.

    The gate (:func:`colour_measurable`): below ``min_inner_area`` (inner-lip
    area over the squared inter-ocular distance, the ``inner_area`` feature)
    the mouth is closed; below ``min_inner_pixels`` image pixels it is too
    small to see. Either way both ratios are 0, not measured.
    """

    teeth_low: tuple[int, int, int] = (0, 0, 140)
    teeth_high: tuple[int, int, int] = (179, 120, 255)
    tongue_low: tuple[int, int, int] = (170, 121, 140)
    tongue_high: tuple[int, int, int] = (10, 210, 200)
    tongue_border: int = 1
    normalise_lighting: bool = True
    reference_brightness: float = 0.875
    max_gamma: float = 2.0
    roi_margin: float = 0.3
    min_inner_area: float = 0.002
    min_inner_pixels: float = 16.0


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


def _brightness_table(region: np.ndarray, reference: float, max_gamma: float) -> np.ndarray:
    """(256,) uint8 lookup table that normalises a lamp's brightness out of an RGB region.

    Two steps on every channel: divide by the region's white point (99th
    percentile of V), which undoes a gain, then apply c -> c ** k so the
    median V becomes ``reference``, which undoes a gamma curve. CLAHE on V
    alone was tried and left the ratios moving by ~0.1, because a gamma
    shift changes saturation as well as value. The same power on each channel
    raises saturation when k > 1, so k stays within ``max_gamma`` of 1 and the
    reference near the median of the light the ranges were measured in: a
    reference of 0.5 took k to ~6 on GRID, left only the largest channel of
    any pixel above 0 and so every pixel saturated, none in the teeth range.
    """
    value = cv2.max(cv2.max(region[..., 0], region[..., 1]), region[..., 2])
    cumulative = np.cumsum(np.bincount(value.ravel(), minlength=256)) / value.size
    white = max(float(np.searchsorted(cumulative, 0.99)), 1.0)
    median = float(np.searchsorted(cumulative, 0.5)) / white
    exponent = np.log(reference) / np.log(np.clip(median, 0.02, 0.98))
    exponent = np.clip(exponent, 1.0 / max_gamma, max_gamma)
    levels = np.clip(np.arange(256) / white, 0.0, 1.0)
    return np.round(255.0 * levels ** exponent).astype(np.uint8)


def _inner_mask(inner_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 mask, 255 on the pixels the polygon ``inner_xy`` covers by half or more.

    ``cv2.fillPoly`` alone also sets every pixel its outline touches: at
    GRID's size a closed mouth's inner lip of ~3 px² filled ~40 px of lip.
    Filled at 4x and averaged back, a pixel counts when the polygon covers
    at least half of it. Pixel i spans [i, i + 1) in landmark coordinates, as in MediaPipe's.
    """
    height, width = shape
    s = _SUPERSAMPLE
    fine = np.zeros((height * s, width * s), dtype=np.uint8)
    vertices = np.round((inner_xy * s - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(fine, [vertices], 255, cv2.LINE_8, 4)
    coverage = cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.threshold(coverage, 127, 255, cv2.THRESH_BINARY)[1]


def _in_range(hsv: np.ndarray, low: tuple[int, int, int],
              high: tuple[int, int, int]) -> np.ndarray:
    """``cv2.inRange``, except that a low hue above the high one wraps round red (179 -> 0)."""
    if low[0] <= high[0]:
        return cv2.inRange(hsv, low, high)
    return (cv2.inRange(hsv, low, (179, high[1], high[2]))
            | cv2.inRange(hsv, (0, low[1], low[2]), high))


def colour_measurable(points: np.ndarray, shape: tuple[int, ...],
                      config: ColourConfig = ColourConfig()) -> bool:
    """Whether the mouth of ``points`` is open and large enough in an image of ``shape``
    ((H, W, ...)) to measure its colour.

    False when the inner lip is closed (``inner_area`` below ``min_inner_area``),
    covers fewer than ``min_inner_pixels`` pixels, or leaves the image:
    :func:`mouth_colour` then gives 0 for both ratios, which means "not measured",
    not "no teeth".
    """
    inner = points[_INNER_INDEX, :2]
    area = polygon_area(inner)
    if area < config.min_inner_pixels:
        return False
    if area / interocular_distance(points) ** 2 < config.min_inner_area:
        return False
    low, high = inner.min(axis=0), inner.max(axis=0)
    return bool(low.min() >= 0 and high[0] <= shape[1] and high[1] <= shape[0])


def mouth_colour(rgb: np.ndarray, points: np.ndarray,
                 config: ColourConfig = ColourConfig()) -> np.ndarray:
    """(teeth_ratio, tongue_ratio) as (2,) float32, shares in [0, 1].

    Shares of the pixels inside the inner-lip polygon: teeth_ratio of those in
    the teeth range, tongue_ratio of those in the tongue range and at least
    ``tongue_border`` pixels inside the polygon (so a mouth full of tongue
    scores below 1 on a small mouth). The mouth region's brightness is
    normalised first (``_brightness_table``) so a brighter or darker lamp
    gives the same ratios. Both are 0 where :func:`colour_measurable` is False.
    """
    if not colour_measurable(points, rgb.shape, config):
        return np.zeros(2, dtype=np.float32)
    inner = points[_INNER_INDEX, :2]
    x0, y0, x1, y1 = _inside_bounds(inner, rgb.shape, 0.0)
    mouth = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if config.normalise_lighting:
        rx0, ry0, rx1, ry1 = _inside_bounds(points[_OUTER_INDEX, :2], rgb.shape, config.roi_margin)
        region = np.ascontiguousarray(rgb[ry0:ry1, rx0:rx1])
        mouth = cv2.LUT(mouth, _brightness_table(region, config.reference_brightness,
                                                 config.max_gamma))
    hsv = cv2.cvtColor(mouth, cv2.COLOR_RGB2HSV)
    mask = _inner_mask(inner - (x0, y0), hsv.shape[:2])
    interior = cv2.erode(mask, None, iterations=config.tongue_border,
                         borderType=cv2.BORDER_CONSTANT, borderValue=0)
    total = cv2.countNonZero(mask)
    if total == 0:
        return np.zeros(2, dtype=np.float32)
    teeth = cv2.countNonZero(_in_range(hsv, config.teeth_low, config.teeth_high) & mask)
    tongue = cv2.countNonZero(_in_range(hsv, config.tongue_low, config.tongue_high) & interior)
    return np.array([teeth / total, tongue / total], dtype=np.float32)


def appearance_names(coefficients: int) -> tuple[str, ...]:
    """The channel names of :func:`mouth_appearance`: ``dct<row>_<column>``, row-major."""
    return tuple(f"dct{i}_{j}" for i in range(coefficients) for j in range(coefficients))


def mouth_appearance(crops: np.ndarray, coefficients: int) -> np.ndarray:
    """The mouth's appearance per frame: (T, S, S) uint8 mouth crops (:func:`mouth_crop`) ->
    (T, k * k) float32, the k x k lowest-frequency 2-D DCT coefficients of the lips, teeth
    and tongue (k = ``coefficients``), named by :func:`appearance_names`.

    The :data:`APPEARANCE_REGION` of each crop, resized to :data:`APPEARANCE_SIZE` square,
    in [0, 1], through an orthonormal DCT. The DCT of the mouth region is the appearance
    feature of audio-visual speech recognition (Potamianos et al.): it sees what the lip
    contour cannot, whether teeth or tongue show and how the lips are shaped in depth,
    at a cost of microseconds a frame and with nothing learned.
    """
    if not 1 <= coefficients <= APPEARANCE_SIZE:
        raise ValueError(f"appearance coefficients must be 1 to {APPEARANCE_SIZE}, got {coefficients}")
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected (T, S, S) mouth crops, got shape {crops.shape}")
    side, size = crops.shape[1], APPEARANCE_SIZE
    low, high = (round(side * f) for f in APPEARANCE_REGION)
    region = crops[:, low:high, low:high]
    mouths = np.empty((len(crops), size, size), np.float32)
    # OpenCV resizes up to 4 channels in one call: the frames go 4 at a time, as channels.
    for start in range(0, len(crops), 4):
        chunk = np.ascontiguousarray(region[start:start + 4].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (size, size), interpolation=cv2.INTER_AREA)
        mouths[start:start + 4] = resized.reshape(size, size, -1).transpose(2, 0, 1)
    mouths /= 255.0
    basis = _dct_basis(size)[:coefficients]
    return ((basis @ mouths) @ basis.T).reshape(len(crops), -1).astype(np.float32, copy=False)


@lru_cache(maxsize=4)
def _dct_basis(size: int) -> np.ndarray:
    """(size, size) float32 orthonormal DCT-II matrix, row k the k-th basis vector: for an
    image X, ``basis @ X @ basis.T`` is ``cv2.dct(X)``."""
    j = np.arange(size)
    basis = np.sqrt(2.0 / size) * np.cos(np.pi * (2 * j[None] + 1) * j[:, None] / (2 * size))
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


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
