"""Face landmarks: the only module that imports MediaPipe.

:class:`LandmarkExtractor` wraps MediaPipe's Tasks ``FaceLandmarker`` in VIDEO
mode and turns each result into NumPy arrays at once. The model bundle ships
with the project and its SHA-256 is checked before it is used.

Each frame is read through MediaPipe's private C handle (``_lib``, ``_handle``,
``Image._image_ptr``) straight into arrays, ~1.3 ms a frame faster than the
public ``detect_for_video``. A MediaPipe release may rename those: when they
are missing, or a call through them fails with ``AttributeError`` or
``TypeError``, the extractor warns once and goes on with the public call.
"""
from __future__ import annotations

import ctypes
import hashlib
import sys
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "assets" / "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
NUM_LANDMARKS = 478
NUM_BLENDSHAPES = 52
PRIVATE_LANDMARKER_NAMES = ("_lib", "_handle")


class ModelFileError(RuntimeError):
    """The landmarker model bundle is missing or is not the expected file."""


@dataclass(frozen=True)
class LandmarkerConfig:
    """Options of the face landmarker (MediaPipe's own thresholds)."""

    model_path: Path = MODEL_PATH
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


@dataclass(frozen=True)
class FaceLandmarks:
    """One face in one frame.

    ``points``: (478, 3) float32 in pixels -- x and y in image pixels, z in
    the same scale as x (MediaPipe's z times the image width).
    ``blendshapes``: (52,) float32 scores in [0, 1], ordered as
    :data:`features.topology.BLENDSHAPE_NAMES`.
    """

    points: np.ndarray
    blendshapes: np.ndarray


def load_model_bytes(path: Path = MODEL_PATH) -> bytes:
    """The model bundle's bytes, after checking its SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: face landmarker model not found; restore it from the repository "
            "(git checkout -- models/assets/face_landmarker.task)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ModelFileError(
            f"{path}: sha256 {digest} is not the expected {MODEL_SHA256}; the file is "
            "damaged or a different model -- restore it from the repository")
    return data


def _struct_array(pointer, count: int, fields: tuple[str, ...]) -> np.ndarray:
    """Copy float fields out of a C array of ctypes structs into a NumPy record array."""
    struct = pointer._type_
    dtype = np.dtype({"names": list(fields), "formats": [np.float32] * len(fields),
                      "offsets": [getattr(struct, f).offset for f in fields],
                      "itemsize": ctypes.sizeof(struct)})
    raw = ctypes.string_at(pointer, count * ctypes.sizeof(struct))
    return np.frombuffer(raw, dtype=dtype, count=count)


@contextmanager
def _without_pyplot():
    """Import MediaPipe without the ``matplotlib.pyplot`` its vision package loads for its
    drawing utilities (only their 3-D plot uses it; detection never does): tens of MB and
    a GUI backend the live app has no use for. Inside, stand-ins answer ``import
    matplotlib.pyplot``; they leave ``sys.modules`` on the way out, so a later import of
    matplotlib gets the real one. Where matplotlib is already loaded nothing changes.
    """
    if "matplotlib" in sys.modules:
        yield
        return
    package, pyplot = types.ModuleType("matplotlib"), types.ModuleType("matplotlib.pyplot")
    package.pyplot = pyplot
    pyplot.__getattr__ = _pyplot_missing
    sys.modules.update({"matplotlib": package, "matplotlib.pyplot": pyplot})
    try:
        yield
    finally:
        for name, stand_in in (("matplotlib.pyplot", pyplot), ("matplotlib", package)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def _pyplot_missing(name: str):
    raise AttributeError(f"matplotlib.pyplot.{name}: MediaPipe was imported without pyplot "
                         "(features.landmarks); import matplotlib before it to plot with "
                         "MediaPipe's drawing utilities")


class LandmarkExtractor:
    """MediaPipe FaceLandmarker in VIDEO mode, one face.

    Use as a context manager; call :meth:`detect` with frames in increasing
    timestamp order. A frame without a face gives ``None``. :attr:`uses_private_api`
    says whether frames still go through MediaPipe's private fast path.
    """

    def __init__(self, config: LandmarkerConfig = LandmarkerConfig()):
        with _without_pyplot():
            from mediapipe.tasks.python import BaseOptions
            from mediapipe.tasks.python.vision import (FaceLandmarker, FaceLandmarkerOptions,
                                                       RunningMode)

        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=load_model_bytes(config.model_path)),
            running_mode=RunningMode.VIDEO,
            num_faces=1,
            output_face_blendshapes=True,
            min_face_detection_confidence=config.min_detection_confidence,
            min_face_presence_confidence=config.min_presence_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._landmarker = FaceLandmarker.create_from_options(options)
        self._last_timestamp = -1
        self._offset_ms = 0
        self._fed_timestamp = -1
        self.uses_private_api = True
        missing = [n for n in PRIVATE_LANDMARKER_NAMES if not hasattr(self._landmarker, n)]
        if missing:
            self._use_public_api(f"its FaceLandmarker has no {', '.join(missing)}")

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> FaceLandmarks | None:
        """Landmarks of the face in an (H, W, 3) uint8 RGB frame, or None."""
        import mediapipe as mp

        # MediaPipe rejects a timestamp that does not increase; a replayed or
        # looped source may repeat one, so nudge it forward.
        timestamp_ms = max(int(timestamp_ms) + self._offset_ms, self._last_timestamp + 1)
        self._last_timestamp = timestamp_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB,
                         data=np.ascontiguousarray(rgb))
        detected = self._detect(image, timestamp_ms)
        if detected is None:
            return None
        points, blendshapes = detected
        height, width = rgb.shape[:2]
        points *= np.array([width, height, width], dtype=np.float32)
        return FaceLandmarks(points, blendshapes)

    def reset(self) -> None:
        """Forget the tracked face, so the next frame starts a new clip at timestamp 0.

        Creating a landmarker costs ~250 ms; a reset costs one frame. An empty
        frame makes MediaPipe lose the face, so the next frame runs the face
        detector as a new landmarker would, and its filters start again.
        """
        self.detect(np.zeros((64, 64, 3), dtype=np.uint8), self._last_timestamp + 1 - self._offset_ms)
        self._offset_ms = self._last_timestamp + 1000

    def _detect(self, image, timestamp_ms: int):
        if self.uses_private_api:
            try:
                return self._detect_arrays(image, timestamp_ms)
            except (AttributeError, TypeError, ctypes.ArgumentError) as error:
                self._use_public_api(f"{type(error).__name__}: {error}")
                if self._fed_timestamp == timestamp_ms:
                    # MediaPipe took the frame before the failure and refuses its timestamp again.
                    timestamp_ms = self._last_timestamp = timestamp_ms + 1
        return self._detect_public(image, timestamp_ms)

    def _use_public_api(self, reason: str) -> None:
        """Switch this extractor to ``detect_for_video`` for good, saying why once."""
        self.uses_private_api = False
        warnings.warn(f"MediaPipe's private FaceLandmarker API is not usable ({reason}); "
                      "reading landmarks through the public detect_for_video instead, "
                      "about 1.3 ms slower a frame", RuntimeWarning)

    def _detect_public(self, image, timestamp_ms: int):
        result = self._landmarker.detect_for_video(image, timestamp_ms)
        if not result.face_landmarks:
            return None
        points = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]],
                          dtype=np.float32)
        scores = np.array([c.score for c in result.face_blendshapes[0]], dtype=np.float32)
        return points, scores

    def _detect_arrays(self, image, timestamp_ms: int):
        """Same as :meth:`_detect_public`, reading the C result straight into arrays.

        MediaPipe's Python wrapper builds 478 landmark objects per frame,
        about 1.3 ms -- a tenth of the frame budget; this reads the same
        C structs with NumPy instead.
        """
        from mediapipe.tasks.python.vision import face_landmarker as mp_face

        result_c = mp_face.MpFaceLandmarkerResultC()
        self._landmarker._lib.MpFaceLandmarkerDetectForVideo(
            self._landmarker._handle, image._image_ptr, None, timestamp_ms,
            ctypes.byref(result_c))
        self._fed_timestamp = timestamp_ms
        try:
            if result_c.face_landmarks_count == 0:
                return None
            marks = result_c.face_landmarks[0]
            rows = _struct_array(marks.landmarks, marks.landmarks_count, ("x", "y", "z"))
            points = np.stack([rows["x"], rows["y"], rows["z"]], axis=1)
            scores = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
            if result_c.face_blendshapes_count:
                cats = result_c.face_blendshapes[0]
                scores[:] = _struct_array(cats.categories, cats.categories_count, ("score",))["score"]
            return points, scores
        finally:
            self._landmarker._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result_c))

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "LandmarkExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
