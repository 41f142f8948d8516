"""Per-clip feature cache, keyed by the file's content and the extractor.

A clip's entry is one ``.npz`` named by the SHA-256 of the video bytes and
:func:`extractor_key` (the extractor version plus its configuration), so an
unchanged file hits the cache wherever it lives, and a changed extractor
recomputes. Entries are written to a temporary name and renamed.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from features.files import atomic_output, write_text_atomic
from features.frame_features import FeatureConfig

# Bump when the meaning of any cached array changes.
EXTRACTOR_VERSION = "1"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "features"


@dataclass(frozen=True)
class ClipFeatures:
    """Features of one clip.

    ``features``: (T, F) float32, 0 where no face; ``valid``: (T,) bool;
    ``timestamps_ms``: (T,) int64; ``crops``: (T, S, S) uint8 mouth crops,
    0 where no face; ``names``: the F feature names; ``fps``: frame rate.
    """

    features: np.ndarray
    valid: np.ndarray
    timestamps_ms: np.ndarray
    crops: np.ndarray
    names: tuple[str, ...]
    fps: float


def extractor_key(config: FeatureConfig) -> str:
    """Short digest of the extractor version and its configuration, the same in every checkout:
    the landmark model counts by its file name (its hash is checked when it loads), not by where
    the checkout lies."""
    settings = asdict(config)
    settings["landmarker"]["model_path"] = Path(settings["landmarker"]["model_path"]).name
    text = json.dumps({"version": EXTRACTOR_VERSION, "config": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """A folder of cached :class:`ClipFeatures`, one ``.npz`` per (file, extractor)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_CACHE_DIR,
                 config: FeatureConfig = FeatureConfig()):
        self.root = Path(root)
        self.extractor = extractor_key(config)

    def path_for(self, video: str | os.PathLike) -> Path:
        return self.root / f"{file_digest(video)}-{self.extractor}.npz"

    def load(self, video: str | os.PathLike, crops: bool = True) -> ClipFeatures | None:
        """The cached features of ``video``, or None on a miss.

        ``crops=False`` skips decompressing the mouth crops (most of the
        entry) and gives an empty (0, S, S) array instead.
        """
        entry = self.path_for(video)
        if not entry.is_file():
            return None
        with np.load(entry, allow_pickle=False) as data:
            features = data["features"]
            stack = data["crops"] if crops else np.zeros((0, 0, 0), np.uint8)
            return ClipFeatures(features, data["valid"], data["timestamps_ms"], stack,
                                tuple(str(n) for n in data["names"]), float(data["fps"]))

    @staticmethod
    def known_failure(entry: Path) -> str | None:
        """Why the video of cache ``entry`` (see :meth:`path_for`) gave no features, or None."""
        marker = entry.with_suffix(".failed")
        return marker.read_text(encoding="utf-8") if marker.is_file() else None

    def save_failure(self, video: str | os.PathLike, reason: str) -> None:
        """Remember that ``video`` (these bytes, this extractor) gives no features."""
        write_text_atomic(self.path_for(video).with_suffix(".failed"), reason)

    def save(self, video: str | os.PathLike, clip: ClipFeatures) -> Path:
        """Store ``clip`` as the entry of ``video`` (atomic)."""
        entry = self.path_for(video)
        with atomic_output(entry) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, features=clip.features, valid=clip.valid,
                                timestamps_ms=clip.timestamps_ms, crops=clip.crops,
                                names=np.array(clip.names), fps=np.float64(clip.fps))
        return entry
