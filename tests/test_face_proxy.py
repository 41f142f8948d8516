"""The proxies of other faces: fixed, size-keeping transforms of a frame."""
import numpy as np
import pytest

from features.face_proxy import PROXIES, farther, lit, rolled, stretched, write_proxy
from features.video import VideoFileSource


def _frame() -> np.ndarray:
    """A 60x80 frame: a bright 10x20 block (a mouth) right of centre on grey."""
    frame = np.full((60, 80, 3), 100, np.uint8)
    frame[25:35, 45:65] = 250
    return frame


def _block(frame: np.ndarray) -> tuple[float, float, float, float]:
    """(left, right, top, bottom) of the bright pixels."""
    rows, cols = np.nonzero(frame[..., 0] > 200)
    return cols.min(), cols.max(), rows.min(), rows.max()


def test_every_proxy_keeps_the_frame_size_and_changes_it():
    for name, transform in PROXIES.items():
        out = transform(_frame())
        assert out.shape == (60, 80, 3) and out.dtype == np.uint8, name
        assert not np.array_equal(out, _frame()), name


def test_geometry_proxies_move_the_mouth_as_named():
    left, right, top, bottom = _block(_frame())
    narrow = _block(stretched(0.5, 1.0)(_frame()))
    assert narrow[1] - narrow[0] == pytest.approx((right - left) / 2, abs=1.5)
    assert (narrow[2], narrow[3]) == (top, bottom)
    far = _block(farther(0.5)(_frame()))
    assert far[1] - far[0] == pytest.approx((right - left) / 2, abs=1.5)
    assert far[3] - far[2] == pytest.approx((bottom - top) / 2, abs=1.5)
    turned_up = _block(rolled(90.0)(_frame()))          # counter-clockwise: right goes up
    assert turned_up[3] < 30 and turned_up[1] - turned_up[0] < 12


def test_lighting_proxies_change_colour_not_shape():
    warm = lit(1.0, (1.2, 1.0, 0.5))(_frame())
    assert _block(warm) == _block(_frame())
    assert tuple(warm[0, 0]) == (120, 100, 50)
    darker = lit(2.0, (1.0, 1.0, 1.0))(_frame())
    assert darker[0, 0, 0] == round(255 * (100 / 255) ** 2)


def test_a_proxy_video_has_the_frames_and_rate_of_its_source(tmp_path, grid_dir):
    source = sorted((grid_dir / "video").glob("*.mp4"))[0]
    out = write_proxy(source, "dark_warm", tmp_path / "dark.mp4")
    original, proxy = VideoFileSource(source), VideoFileSource(out)
    assert (proxy.fps, proxy.frame_count) == (original.fps, original.frame_count)
    first = next(iter(proxy)).rgb.astype(int)
    assert first[..., 2].mean() < next(iter(VideoFileSource(source))).rgb[..., 2].mean() - 20
