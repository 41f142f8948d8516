"""Shared fixtures: paths to the real GRID data beside the repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parent.parent
GRID_DIR = REPO_ROOT.parent / "shared" / "data" / "grid_s1"


def grid_ids() -> list[str]:
    """Sorted ids of the shared GRID sentences."""
    return sorted(p.stem for p in (GRID_DIR / "video").glob("*.mp4"))


@pytest.fixture(scope="session")
def grid_dir() -> Path:
    if not (GRID_DIR / "video").is_dir():
        pytest.fail(f"{GRID_DIR}: the shared GRID data is missing; tests need ../shared beside the repo")
    return GRID_DIR


@pytest.fixture(scope="session")
def grid_cache(grid_dir):
    """A feature cache holding all 300 shared GRID sentences: (cache, video paths).

    Kept under the repository's ``.cache/`` (keyed by file content and
    extractor version, so it is never stale): the first run extracts for
    about 2.5 minutes on two cores, later runs load it.
    """
    from features.cache import FeatureCache
    from features.extract import extract_many, find_videos

    cache = FeatureCache(REPO_ROOT / ".cache" / "test-features")
    paths = find_videos(grid_dir / "video")
    summary = extract_many(paths, cache, workers=2)
    assert not summary.failed, summary.failed
    return cache, paths
