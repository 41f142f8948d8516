"""Per-frame lip features: one code path for live frames and frames from files.

:class:`FeaturePipeline` turns a :class:`~features.video.Frame` into a
:class:`FrameFeatures`: the face landmarks, the named feature vector and the
mouth crop. The feature vector is :data:`FEATURE_NAMES` long:

- geometry (5): mouth aspect ratios, width, height, inner area (scale-free);
- lip points (80): the 40 lip landmarks in the face-normalised frame;
- colour (2): teeth and tongue ratios inside the inner lip, 0 where not measured;
- blendshapes (24): jawOpen and every mouth* score.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.geometry import GEOMETRY_NAMES, LIP_POINT_NAMES, lip_geometry, normalised_lip_points
from features.landmarks import FaceLandmarks, LandmarkerConfig, LandmarkExtractor
from features.mouth_image import (COLOUR_NAMES, ColourConfig, CropConfig, colour_measurable,
                                  mouth_colour, mouth_crop)
from features.topology import MOUTH_BLENDSHAPE_INDEX, MOUTH_BLENDSHAPES
from features.video import Frame

FEATURE_NAMES = GEOMETRY_NAMES + LIP_POINT_NAMES + COLOUR_NAMES + MOUTH_BLENDSHAPES
#: The feature vector's groups, by name (a model can be trained without any of them).
FEATURE_GROUPS = {"geometry": GEOMETRY_NAMES, "lip_points": LIP_POINT_NAMES,
                  "colour": COLOUR_NAMES, "blendshapes": MOUTH_BLENDSHAPES}
_BLENDSHAPE_INDEX = np.array(MOUTH_BLENDSHAPE_INDEX)


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the per-frame features (and so the cache key)."""

    landmarker: LandmarkerConfig = field(default_factory=LandmarkerConfig)
    colour: ColourConfig = field(default_factory=ColourConfig)
    crop: CropConfig = field(default_factory=CropConfig)


@dataclass(frozen=True)
class FrameFeatures:
    """What one frame yields. ``face``, ``features`` and ``crop`` are None without a face.

    ``features``: (len(FEATURE_NAMES),) float32; ``crop``: (S, S) uint8.
    ``colour_measured``: whether the teeth and tongue ratios in ``features`` were
    measured (:func:`~features.mouth_image.colour_measurable`). Where False they
    are 0 because the mouth is closed or too small to see, not because no teeth
    show: a plot should leave a gap there. They stay 0, not NaN, in ``features``,
    which the models and the segmenter take as they are.
    """

    index: int
    timestamp_ms: int
    face: FaceLandmarks | None
    features: np.ndarray | None
    crop: np.ndarray | None
    colour_measured: bool = False


def frame_features(rgb: np.ndarray, face: FaceLandmarks,
                   config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The named feature vector of one face in one RGB frame, (F,) float32."""
    return np.concatenate([
        lip_geometry(face.points),
        normalised_lip_points(face.points).ravel(),
        mouth_colour(rgb, face.points, config.colour),
        face.blendshapes[_BLENDSHAPE_INDEX],
    ]).astype(np.float32, copy=False)


class FeaturePipeline:
    """Landmarks, features and mouth crop for a stream of frames (VIDEO mode).

    Use as a context manager; feed frames in timestamp order to :meth:`process`.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig(), *, crops: bool = True):
        self.config = config
        self.crops = crops
        self._extractor = LandmarkExtractor(config.landmarker)

    def process(self, frame: Frame) -> FrameFeatures:
        face = self._extractor.detect(frame.rgb, frame.timestamp_ms)
        if face is None:
            return FrameFeatures(frame.index, frame.timestamp_ms, None, None, None)
        crop = mouth_crop(frame.rgb, face.points, self.config.crop) if self.crops else None
        measured = colour_measurable(face.points, frame.rgb.shape, self.config.colour)
        return FrameFeatures(frame.index, frame.timestamp_ms, face,
                             frame_features(frame.rgb, face, self.config), crop, measured)

    def reset(self) -> None:
        """Start a new, unrelated stream (the next frame's timestamp may restart at 0)."""
        self._extractor.reset()

    def close(self) -> None:
        self._extractor.close()

    def __enter__(self) -> "FeaturePipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
