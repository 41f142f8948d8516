"""Fixed transforms of a video that imitate other faces and other bedsides: a proxy for new
people, made from the one speaker there is.

Each :data:`PROXIES` entry maps an RGB frame to another of the same size: face and mouth
proportions (the frame stretched about its centre), head pose (rolled in the image plane,
or turned to one side by a perspective warp), camera distance (the frame shrunk into a
border of its own edge pixels), and skin tone and lighting (gamma and colour cast). They
are deterministic, so one clip's proxies are the same on every run, and the features of
their videos are cached like any other's. A proxy never replaces real other faces: it
measures whether the input depends on one face's geometry and colour.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from features.video import VideoFileSource, write_video

Transform = Callable[[np.ndarray], np.ndarray]


def _affine(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def stretched(sx: float, sy: float) -> Transform:
    """The frame scaled by ``sx`` across and ``sy`` down, about its centre (a narrower,
    wider or longer face and mouth)."""
    def transform(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        cx, cy = width / 2, height / 2
        matrix = np.float32([[sx, 0, cx * (1 - sx)], [0, sy, cy * (1 - sy)]])
        return _affine(frame, matrix)
    return transform


def rolled(degrees: float) -> Transform:
    """The frame rotated by ``degrees`` about its centre (a head tilted sideways)."""
    def transform(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        return _affine(frame, cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0))
    return transform


def turned(squeeze: float) -> Transform:
    """A perspective warp that shortens the frame's right side by ``squeeze`` of its height
    and narrows it (a head turned to one side)."""
    def transform(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        inset_y, inset_x = squeeze * height / 2, squeeze * width / 2
        target = np.float32([[0, 0], [width - inset_x, inset_y],
                             [width - inset_x, height - inset_y], [0, height]])
        matrix = cv2.getPerspectiveTransform(source, target)
        return cv2.warpPerspective(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
    return transform


def farther(scale: float) -> Transform:
    """The frame shrunk to ``scale`` of its size inside a border of its edge pixels (the
    camera farther away)."""
    return stretched(scale, scale)


def lit(gamma: float, gains: tuple[float, float, float]) -> Transform:
    """Each channel raised to ``gamma`` and multiplied by its gain (R, G, B): darker or
    lighter skin, warmer or cooler light."""
    table = np.stack([np.clip(255 * (np.arange(256) / 255) ** gamma * gain, 0, 255)
                      for gain in gains]).astype(np.uint8)

    def transform(frame: np.ndarray) -> np.ndarray:
        return np.stack([table[c][frame[..., c]] for c in range(3)], axis=-1)
    return transform


#: The proxies, by name: each imitates one way another patient's video differs.
PROXIES: dict[str, Transform] = {
    "narrow_face": stretched(0.85, 1.0),
    "wide_face": stretched(1.15, 1.0),
    "long_face": stretched(1.0, 1.15),
    "rolled_10": rolled(10.0),
    "turned": turned(0.25),
    "farther": farther(0.6),
    "dark_warm": lit(1.6, (1.1, 0.95, 0.8)),
    "bright_cool": lit(0.6, (0.9, 1.0, 1.15)),
}


def write_proxy(video: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    """The video ``video`` under the proxy ``name``, written to ``out`` (same frame rate)."""
    transform, source = PROXIES[name], VideoFileSource(video)
    return write_video(out, (transform(frame.rgb) for frame in source), source.fps)
