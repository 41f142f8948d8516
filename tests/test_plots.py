"""The live plots and the video badges: scaling on arrays, the plot panel and the badge under pytest-qt."""
import math
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QRectF
from PySide6.QtGui import QFontMetrics

from features.frame_features import FEATURE_NAMES
from recognizer.capture import RateMeter
from recognizer.gui.views import PlotPanel, VideoView, processed_rate
from recognizer.gui.worker import LiveFrame
from recognizer.live import (
    PLOT_MIN_SPANS,
    PLOT_NAMES,
    FrameResult,
    LiveState,
    PlotHistory,
    personal_range,
    plot_values,
    scale_to_range,
)
from recognizer.recording import RecorderStatus
from recognizer.segmenter import SegmenterConfig, SegmenterState, UtteranceSegmenter

SPANS = np.array([PLOT_MIN_SPANS[name] for name in PLOT_NAMES])
TEETH, TONGUE = PLOT_NAMES.index("teeth_ratio"), PLOT_NAMES.index("tongue_ratio")
RING = np.zeros((20, 2), dtype=np.float32)


def test_each_channel_goes_from_its_own_rest_to_its_own_speech_as_0_to_1():
    # Inner and outer aspect ratios: ranges several times apart, both read 0..1.
    rest, speech = np.array([0.01, 0.35]), np.array([0.30, 0.55])
    values = np.vstack([np.tile(rest, (60, 1)), np.tile(speech, (40, 1))])
    low, high = personal_range(values, [0.1, 0.08])
    np.testing.assert_allclose(low, rest)
    np.testing.assert_allclose(high, speech)
    scaled = scale_to_range(values, low, high)
    np.testing.assert_allclose(scaled[:60], 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[60:], 1.0)
    halfway = scale_to_range((rest + speech) / 2, low, high)
    np.testing.assert_allclose(halfway, 0.5)


def test_a_constant_or_resting_channel_is_flat_at_rest_not_blown_up():
    assert (SPANS > 0).all()
    jitter = 0.2 + 0.001 * np.sin(np.arange(100))
    values = np.column_stack([np.full(100, 0.2), jitter])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rest, speech = personal_range(values, [0.1, 0.1])
        scaled = scale_to_range(values, rest, speech)
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled[:, 0], 0.0)
    # The span is the channel's minimum, so a mouth at rest keeps within a few % of rest.
    np.testing.assert_allclose(speech, rest + 0.1)
    assert np.abs(scaled[:, 1]).max() < 0.05


def test_a_channel_never_measured_stays_nan_and_gaps_are_ignored():
    values = np.column_stack([np.full(50, np.nan), np.r_[np.full(25, np.nan), np.linspace(0, 1, 25)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rest, speech = personal_range(values, [0.05, 0.05])
        scaled = scale_to_range(values, rest, speech)
    assert np.isnan(rest[0]) and np.isnan(speech[0]) and np.isnan(scaled[:, 0]).all()
    assert np.isfinite(rest[1]) and np.isnan(scaled[:25, 1]).all() and np.isfinite(scaled[25:, 1]).all()


def test_plot_values_carry_not_measured_channels_as_nan_with_a_face():
    row = np.arange(10, dtype=np.float32)
    columns = [1, 2, 3, 4, 5, 6]
    measured = [c not in (TEETH, TONGUE) for c in range(len(PLOT_NAMES))]
    values = plot_values(row, columns, measured)
    assert math.isnan(values[TEETH]) and math.isnan(values[TONGUE])
    assert [values[i] for i in range(6) if i not in (TEETH, TONGUE)] == [1.0, 2.0, 3.0, 6.0]
    assert plot_values(row, columns) == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    assert all(math.isnan(v) for v in plot_values(None, columns, measured))
    result = _result(0, values)
    assert result.has_face and not result.measured("teeth_ratio") and result.measured("inner_mar")


def _opening_row(opening: float) -> np.ndarray:
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    row[FEATURE_NAMES.index("inner_mar")] = opening
    return row


def test_the_segmenter_exposes_the_activity_it_thresholds():
    segmenter = UtteranceSegmenter(FEATURE_NAMES)
    config = segmenter.config
    assert segmenter.activity is None
    for index in range(30):
        segmenter.update(index, _opening_row(0.0))
        assert segmenter.activity == 0.0 and segmenter.state == SegmenterState.RESTING
    # Lips still, opening 0.5 above rest: (0.5 - 0) / opening_scale, past on_threshold.
    segmenter.update(30, _opening_row(0.5))
    assert segmenter.activity == pytest.approx(0.5 / config.opening_scale)
    assert segmenter.activity > config.on_threshold and segmenter.state == SegmenterState.MOUTHING
    segmenter.update(31, None, valid=False)
    assert segmenter.activity is None


def _result(index: int, values, face: bool = True, activity: float = 0.5) -> FrameResult:
    ring = RING if face else None
    return FrameResult(index, index * 40, ring, ring, None, LiveState.RESTING, tuple(values),
                       activity=activity)


def _values(teeth: float, tongue: float) -> list[float]:
    values = [0.1, 0.4, 0.01, 0.0, 0.0, 0.1]
    values[TEETH], values[TONGUE] = teeth, tongue
    return values


def test_history_window_keeps_activity_and_faces_in_order():
    history = PlotHistory(4)
    for index in range(6):
        history.append(_result(index, _values(0.0, 0.0), face=index % 2 == 0, activity=float(index)))
    window = history.window()
    np.testing.assert_allclose(window.times, [0.08, 0.12, 0.16, 0.20])
    np.testing.assert_allclose(window.activity, [2, 3, 4, 5])
    assert window.face.tolist() == [True, False, True, False]
    times, values = history.series()
    assert values.shape == (4, len(PLOT_NAMES)) and np.array_equal(times, window.times)


@pytest.fixture
def panel(qtbot):
    history = PlotHistory(50)
    widget = PlotPanel(history)
    qtbot.addWidget(widget)
    widget.resize(800, 420)
    widget.show()
    return widget


def test_teeth_not_measured_with_a_face_reads_not_measured_instead_of_a_zero_line(panel):
    for index in range(20):
        panel.history.append(_result(index, _values(math.nan, math.nan)))
    panel.refresh()
    assert panel.not_measured.isVisible() and panel.not_measured.toPlainText() == "not measured"
    assert np.isnan(panel.curves["teeth_ratio"].getData()[1]).all()
    for index in range(20, 25):
        panel.history.append(_result(index, _values(0.2, math.nan)))
    panel.refresh()
    assert panel.not_measured.isVisible() and panel.not_measured.toPlainText() == "tongue not measured"
    panel.history.append(_result(25, _values(0.3, 0.1)))
    panel.refresh()
    assert not panel.not_measured.isVisible()
    assert np.isfinite(panel.curves["teeth_ratio"].getData()[1][-6:]).all()


def test_no_face_is_a_gap_not_a_not_measured_reading(panel):
    for index in range(10):
        panel.history.append(_result(index, [math.nan] * len(PLOT_NAMES), face=False,
                                     activity=math.nan))
    panel.refresh()
    assert not panel.not_measured.isVisible()


def test_refresh_updates_the_same_items_and_marks_the_segmenters_thresholds(qtbot):
    config = SegmenterConfig(on_threshold=2.0, off_threshold=0.5)
    panel = PlotPanel(PlotHistory(50), segmenter=config)
    qtbot.addWidget(panel)
    assert panel.thresholds["start"].value() == 2.0 and panel.thresholds["stop"].value() == 0.5
    assert panel.thresholds["rest"].value() == 0.0
    curves = dict(panel.curves)
    items = [len(plot.items) for plot in {*panel.rows.values(), panel.activity_plot}]
    for index in range(60):
        opening = 0.3 if 20 <= index < 40 else 0.02
        values = _values(0.0, 0.0)
        values[PLOT_NAMES.index("inner_mar")] = opening
        panel.history.append(_result(index, values, activity=5.0 * opening))
        panel.refresh()
    assert panel.curves == curves
    assert [len(plot.items) for plot in {*panel.rows.values(), panel.activity_plot}] == items
    inner = panel.curves["inner_mar"].getData()[1]
    assert inner.min() == pytest.approx(0.0) and inner.max() == pytest.approx(1.0)
    low, high = panel.activity_plot.viewRange()[1]
    assert low < 0.0 and high >= 1.2 * config.on_threshold


def _live_frame(dropped: int, processed: float, has_face: bool = True):
    ring = RING if has_face else None
    result = FrameResult(0, 0, ring, ring, None, LiveState.MOUTHING, (0.0,) * len(PLOT_NAMES))
    return LiveFrame(np.zeros((240, 320, 3), np.uint8), result, processed, processed, 25.0,
                     dropped, dropped, RecorderStatus("recording", recorded_ms=12_300))


@pytest.mark.parametrize("width", [320, 500, 1400])
def test_badges_fit_their_text_at_any_width(qtbot, width):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(width, 300)
    now = time.monotonic()
    for k in range(240):
        view.show_frame(_live_frame(12345, now - 2.0 + k / 120, has_face=False))
    view.show_message("")
    view.grab()
    texts = [text for text, *_ in view.badges]
    assert texts[0] == "MOUTHING  (no face)" and texts[1].endswith("fps \u00b7 dropped 12345")
    assert float(texts[1].split()[0]) > 60
    bounds = QRectF(view.rect())
    for text, rect, font, _ in view.badges:
        assert rect.width() >= QFontMetrics(font).horizontalAdvance(text), text
        assert rect.height() >= QFontMetrics(font).height(), text
        assert bounds.contains(rect), (text, rect, width)
    rects = [rect for _, rect, _, _ in view.badges]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_the_processed_rate_shows_a_stall_the_sliding_meter_hides():
    times = list(np.arange(0, 10, 0.04))
    meter = RateMeter()
    readings = [meter.tick(t) for t in times]
    assert processed_rate(times, times[-1]) == pytest.approx(25.0, rel=0.02)
    # The worker then spends 1.5 s in a prediction: no frame, so the badge had read 25 all along,
    # and the first frame after it reads 0 then 25 again with a 1 s meter.
    assert readings[-1] == pytest.approx(25.0, rel=0.02)
    assert processed_rate(times, times[-1] + 1.5) < 15
    after = times + [times[-1] + 1.5, times[-1] + 1.54]
    assert [meter.tick(t) for t in after[-2:]][-1] == pytest.approx(25.0, rel=0.02)
    assert processed_rate(after, after[-1]) < 18
    assert processed_rate([], 5.0) == 0.0 and processed_rate([1.0], 1.0) == 0.0
