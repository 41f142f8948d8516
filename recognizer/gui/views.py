"""The video panel and the live feature plots: widgets that only paint what the worker sent."""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from recognizer.gui.worker import LiveFrame
from recognizer.live import (
    PLOT_MIN_SPANS,
    PLOT_NAMES,
    LiveConfig,
    LiveState,
    PlotHistory,
    PlotSeries,
    personal_range,
    scale_to_range,
)
from recognizer.recording import COUNTDOWN, RECORDING
from recognizer.segmenter import SegmenterConfig

STATE_COLOURS = {LiveState.RESTING: QColor("#5f6b7a"), LiveState.MOUTHING: QColor("#e69500"),
                 LiveState.RECOGNISED: QColor("#1f9d55")}
OUTER_LIP_PEN = QColor("#39ff14")
INNER_LIP_PEN = QColor("#00e5ff")
CROP_BOX_PEN = QColor("#ffd400")


BADGE_MARGIN, BADGE_PAD_X, BADGE_PAD_Y = 10, 14, 6
BADGE_POINT_SIZES = (16, 14, 12, 10, 8)
RATE_WINDOW_S = 3.0
STALL_REPAINT_S = 0.25


def processed_rate(times: Sequence[float], now: float, window_s: float = RATE_WINDOW_S) -> float:
    """Frames per second over the ``window_s`` seconds up to ``now``.

    ``times``: monotonic seconds the frames were processed, oldest first. A gap
    since the newest frame longer than the usual frame period counts, so a
    worker busy for a second reads low at once, not only once it is back.
    """
    recent = [t for t in times if now - t <= window_s]
    if len(recent) < 2:
        return 0.0
    span = recent[-1] - recent[0]
    period = span / (len(recent) - 1)
    return (len(recent) - 1) / max(span + max(now - recent[-1] - period, 0.0), 1e-9)


def fitting_font(text: str, width: float) -> QFont:
    """The largest bold badge font whose ``text`` (with padding) fits ``width`` pixels."""
    for size in BADGE_POINT_SIZES:
        font = QFont("Sans", size, QFont.Bold)
        if QFontMetrics(font).horizontalAdvance(text) + 2 * BADGE_PAD_X <= width:
            return font
    return font


def _badge_box(text: str, font: QFont, x: float, y: float) -> QRectF:
    metrics = QFontMetrics(font)
    return QRectF(x, y, metrics.horizontalAdvance(text) + 2 * BADGE_PAD_X,
                  metrics.height() + 2 * BADGE_PAD_Y)


def badge_layout(texts: tuple[str, str], width: float) -> list[tuple[str, QRectF, QFont]]:
    """Rects of the (left, right) top badges in a view ``width`` pixels wide, each sized
    to its text; the right one goes under the left one when both do not fit on a line."""
    fit = width - 2 * BADGE_MARGIN
    left_text, right_text = texts
    left_font, right_font = fitting_font(left_text, fit), fitting_font(right_text, fit)
    left = _badge_box(left_text, left_font, BADGE_MARGIN, BADGE_MARGIN)
    right = _badge_box(right_text, right_font, 0, BADGE_MARGIN)
    right.moveRight(width - BADGE_MARGIN)
    if right.left() < left.right() + BADGE_MARGIN:
        right.moveTop(left.bottom() + BADGE_MARGIN / 2)
    return [(left_text, left, left_font), (right_text, right, right_font)]


def _polygon(points: np.ndarray, scale: float, dx: float, dy: float) -> QPolygonF:
    return QPolygonF([QPointF(x * scale + dx, y * scale + dy) for x, y in points])


class VideoView(QWidget):
    """The camera image with the lip contour, the mouth-crop box, state, frame rate and recording.

    :meth:`show_frame` keeps the newest :class:`LiveFrame` and schedules a
    paint; Qt merges paints, so a slow screen never builds a queue. The frame
    rate shown is :func:`processed_rate` of the frames shown, as of the paint,
    repainted while none come, so a worker stalled in a prediction reads low.
    :attr:`badges` holds the last paint's (text, rect, font, colour) badges.
    :attr:`paint_latencies_ms` keeps, per painted frame, the time from the
    frame's arrival to the end of its paint (for the speed benchmark).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(256, 192)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self._frame: LiveFrame | None = None
        self._painted: LiveFrame | None = None
        self._message = "Starting the video source..."
        self.paint_latencies_ms: deque[float] = deque(maxlen=100_000)
        self.painted_frames = 0
        self._processed: deque[float] = deque(maxlen=2000)
        self.badges: list[tuple[str, QRectF, QFont, QColor]] = []
        self._stall_timer = QTimer(self, interval=round(1000 * STALL_REPAINT_S))
        self._stall_timer.timeout.connect(self._repaint_if_stalled)

    def show_frame(self, frame: LiveFrame) -> None:
        self._frame = frame
        self._processed.append(frame.processed)
        if not self._stall_timer.isActive():
            self._stall_timer.start()
        self.update()

    def processed_fps(self) -> float:
        """Frames per second processed, as of now (:func:`processed_rate` of the frames shown)."""
        return processed_rate(self._processed, time.monotonic())

    def show_message(self, text: str) -> None:
        """Text shown over the view, e.g. why there is no video; empty text removes it."""
        self._message = text
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#101418"))
        frame = self._frame
        if frame is not None:
            self._paint_frame(painter, frame)
        if self._message:
            self._paint_message(painter)
        painter.end()
        if frame is not None and frame is not self._painted:
            self._painted = frame
            self.painted_frames += 1
            self.paint_latencies_ms.append((time.monotonic() - frame.arrived) * 1000)

    def _paint_frame(self, painter: QPainter, frame: LiveFrame) -> None:
        height, width = frame.rgb.shape[:2]
        image = QImage(frame.rgb.data, width, height, 3 * width, QImage.Format_RGB888)
        scale = min(self.width() / width, self.height() / height)
        dx, dy = (self.width() - width * scale) / 2, (self.height() - height * scale) / 2
        painter.drawImage(QRectF(dx, dy, width * scale, height * scale), image)
        painter.setRenderHint(QPainter.Antialiasing)
        result = frame.result
        for points, colour in ((result.outer_lip, OUTER_LIP_PEN), (result.inner_lip, INNER_LIP_PEN)):
            if points is not None:
                painter.setPen(QPen(colour, 2))
                painter.drawPolygon(_polygon(points, scale, dx, dy))
        if result.crop_box is not None:
            painter.setPen(QPen(CROP_BOX_PEN, 2, Qt.DashLine))
            painter.drawPolygon(_polygon(result.crop_box, scale, dx, dy))
        self._paint_badges(painter, frame)

    def _paint_badges(self, painter: QPainter, frame: LiveFrame) -> None:
        state = frame.result.state
        face = "" if frame.result.has_face else "  (no face)"
        rate = f"{self.processed_fps():.1f} fps \u00b7 dropped {frame.dropped}"
        top = badge_layout((f"{state.upper()}{face}", rate), self.width())
        self.badges = [(text, rect, font, colour) for (text, rect, font), colour in
                       zip(top, (STATE_COLOURS.get(state, QColor("#5f6b7a")), QColor(0, 0, 0, 170)))]
        recorder = frame.recorder
        if recorder.state == COUNTDOWN:
            painter.setPen(QColor("white"))
            painter.setFont(QFont("Sans", 96, QFont.Bold))
            painter.drawText(self.rect(), Qt.AlignCenter, str(recorder.countdown_left_s))
        elif recorder.state == RECORDING:
            text = f"\u25cf REC {recorder.recorded_ms / 1000:.1f} s"
            font = fitting_font(text, self.width() - 2 * BADGE_MARGIN)
            rect = _badge_box(text, font, BADGE_MARGIN, 0)
            rect.moveBottom(self.height() - BADGE_MARGIN)
            self.badges.append((text, rect, font, QColor("#c81e1e")))
        for text, rect, font, colour in self.badges:
            painter.fillRect(rect, colour)
            painter.setPen(QColor("white"))
            painter.setFont(font)
            painter.drawText(rect, Qt.AlignCenter, text)

    def _repaint_if_stalled(self) -> None:
        """While no frame comes (a long prediction), repaint so the frame rate shows the stall."""
        if self._processed and time.monotonic() - self._processed[-1] > STALL_REPAINT_S:
            self.update()

    def _paint_message(self, painter: QPainter) -> None:
        box = self.rect().adjusted(30, 0, -30, 0)
        painter.setPen(QColor("white"))
        painter.setFont(QFont("Sans", 18))
        if self._frame is not None:
            box = QRectF(20, self.height() / 2 - 60, self.width() - 40, 120).toRect()
            painter.fillRect(box, QColor(0, 0, 0, 190))
        painter.drawText(box, Qt.AlignCenter | Qt.TextWordWrap, self._message)


ACTIVITY_PEN = "#e69500"
START_PEN, STOP_PEN, REST_PEN = "#ff5252", "#ffd400", "#9aa5b1"
PLOT_ROWS = (("Mouth opening", ("inner_mar", "outer_mar", "jawOpen"), 3, 75),
             ("Teeth / tongue", ("teeth_ratio", "tongue_ratio"), 2, 60))
PLOT_COLOURS = {"inner_mar": "#00e5ff", "outer_mar": "#39ff14", "inner_area": "#ffd400",
                "teeth_ratio": "#f5f5f5", "tongue_ratio": "#ff5c8a", "jawOpen": "#c084fc"}
CURVE_LABELS = {"inner_mar": "inner lips", "outer_mar": "outer lips", "inner_area": "inner area",
                "teeth_ratio": "teeth", "tongue_ratio": "tongue", "jawOpen": "jaw"}
NOT_MEASURED = ("teeth_ratio", "tongue_ratio")
_LIVE = LiveConfig()


def _title(title: str, names: Sequence[str]) -> str:
    """A row title that is its legend too: each curve's name in its colour (no box over the data)."""
    keys = "".join(f"&nbsp;&nbsp;&nbsp;<span style='color:{PLOT_COLOURS[n]}'>\u25ac {CURVE_LABELS[n]}</span>"
                   for n in names)
    return f"{title}{keys}"


class _RowTitle(pg.LabelItem):
    """A plot row's title that never widens the panel: a narrow window cuts its end instead."""

    def updateMin(self) -> None:
        super().updateMin()
        self.setMinimumWidth(0)

    def sizeHint(self, hint, constraint):
        size = super().sizeHint(hint, constraint)
        if hint == Qt.MinimumSize:
            size.setWidth(0)
        return size


def _dashed(colour: str, style=Qt.DashLine, width: float = 2) -> QPen:
    return pg.mkPen(colour, width=width, style=style)


class PlotPanel(pg.GraphicsLayoutWidget):
    """Scrolling plots of the lip features, readable from across a bed.

    The big row is the segmenter's activity (opening and lip motion above rest,
    in threshold units) with its rest level and its start / stop thresholds;
    below, each feature curve is scaled to the person's own range over the
    history window (0 = rest, 1 = speech; :func:`~recognizer.live.personal_range`).
    ``inner_area`` stays in the history but is not drawn: so scaled it retraces
    ``inner_mar`` (r = 0.99 on the cached GRID clips). While the newest frame has
    a face but no teeth / tongue value, that row reads "not measured" instead.
    Items are made once and updated in place with ``setData``.
    ``segmenter``: the live segmenter's config (its thresholds are drawn).
    """

    def __init__(self, history: PlotHistory, segmenter: SegmenterConfig = _LIVE.segmenter,
                 window_s: float = _LIVE.history_length / 25, parent=None):
        super().__init__(parent)
        self.history = history
        self.segmenter = segmenter
        self.setBackground("#101418")
        self.ci.layout.setVerticalSpacing(2)
        self._min_spans = np.array([PLOT_MIN_SPANS[name] for name in PLOT_NAMES])
        self._activity_top = 0.0
        self.activity_plot = self._add_row(0, _title("Mouthing", ()), 4, 105, window_s)
        self.activity_curve = self.activity_plot.plot(
            pen=pg.mkPen(ACTIVITY_PEN, width=4), fillLevel=0.0, brush=(230, 149, 0, 70),
            connect="finite")
        self.activity_plot.getAxis("left").setTicks([[(0.0, "rest"), (segmenter.on_threshold, "start")]])
        self.thresholds = {
            "start": self._line(self.activity_plot, segmenter.on_threshold, pg.mkPen(START_PEN, width=3)),
            "stop": self._line(self.activity_plot, segmenter.off_threshold, _dashed(STOP_PEN),
                               "stop"),
            "rest": self._line(self.activity_plot, 0.0, _dashed(REST_PEN))}
        self._fit_activity(np.array([]))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.rows: dict[str, pg.PlotItem] = {}
        for row, (title, names, stretch, least) in enumerate(PLOT_ROWS, start=1):
            plot = self._add_row(row, _title(title, names), stretch, least, window_s)
            plot.setYRange(-0.15, 1.35, padding=0)
            plot.getAxis("left").setTicks([[(0.0, "rest"), (1.0, "speech")]])
            self._line(plot, 0.0, _dashed(REST_PEN))
            self._line(plot, 1.0, _dashed(REST_PEN, Qt.DotLine, 1))
            for name in names:
                self.curves[name] = plot.plot(pen=pg.mkPen(PLOT_COLOURS[name], width=3),
                                              connect="finite")
                self.rows[name] = plot
        self.not_measured = pg.TextItem("", color="#e0e0e0", anchor=(0.5, 0.5))
        self.not_measured.setFont(QFont("Sans", 18, QFont.Bold))
        self.not_measured.setPos(-window_s / 2, 0.5)
        self.not_measured.hide()
        self.rows[NOT_MEASURED[0]].addItem(self.not_measured, ignoreBounds=True)
        self.rows[NOT_MEASURED[0]].getAxis("bottom").show()
        self.setMinimumHeight(math.ceil(self.ci.effectiveSizeHint(Qt.MinimumSize).height()))

    def _add_row(self, row: int, title: str, stretch: int, least: int, window_s: float) -> pg.PlotItem:
        self.addItem(_RowTitle(title, color="#e0e0e0", size="14pt", bold=True, justify="left"),
                     row=2 * row, col=0)
        plot = self.addPlot(row=2 * row + 1, col=0)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setXRange(-window_s, 0, padding=0)
        plot.enableAutoRange(x=False, y=False)
        plot.setMinimumHeight(least)
        plot.hideAxis("bottom")
        for side in ("left", "bottom"):
            axis = plot.getAxis(side)
            axis.setStyle(tickFont=QFont("Sans", 13, QFont.Bold))
            axis.setTextPen("#e0e0e0")
        plot.getAxis("left").setWidth(80)
        self.ci.layout.setRowStretchFactor(2 * row + 1, stretch)
        return plot

    @staticmethod
    def _line(plot: pg.PlotItem, y: float, pen: QPen, label: str | None = None) -> pg.InfiniteLine:
        """A horizontal line at ``y``; ``label`` sits on it at the oldest end, clear of the axis
        ticks (the stop threshold is too close to rest for a tick of its own)."""
        line = pg.InfiniteLine(pos=y, angle=0, pen=pen, movable=False)
        if label:
            line.label = pg.InfLineLabel(line, label, position=0.0, anchors=[(0, 1), (0, 1)],
                                         color=pen.color(), fill=(16, 20, 24, 200))
            line.label.setFont(QFont("Sans", 13, QFont.Bold))
        plot.addItem(line, ignoreBounds=True)
        return line

    def refresh(self) -> None:
        """Redraw from the history (the window calls this on a timer, not per frame)."""
        window = self.history.window()
        if len(window.times) == 0:
            return
        times = window.times - window.times[-1]
        rest, speech = personal_range(window.values, self._min_spans)
        scaled = scale_to_range(window.values, rest, speech)
        for column, name in enumerate(PLOT_NAMES):
            if name in self.curves:
                self.curves[name].setData(times, scaled[:, column])
        self.activity_curve.setData(times, window.activity)
        self._fit_activity(window.activity)
        self._show_not_measured(window)

    def _fit_activity(self, activity: np.ndarray) -> None:
        """Y range of the activity row: the start threshold and the person's own peaks in view."""
        peak = np.nanquantile(activity, 0.98) if np.isfinite(activity).any() else 0.0
        top = max(1.3 * self.segmenter.on_threshold, 1.1 * peak)
        if abs(top - self._activity_top) > 0.05 * self._activity_top:
            self._activity_top = top
            self.activity_plot.setYRange(-0.06 * top, top, padding=0)

    def _show_not_measured(self, window: PlotSeries) -> None:
        """"not measured" over the colour row while the newest face frame lacks those values."""
        newest = window.values[-1]
        missing = [CURVE_LABELS[name] for name in NOT_MEASURED
                   if window.face[-1] and not np.isfinite(newest[PLOT_NAMES.index(name)])]
        text = ""
        if missing:
            text = "not measured" if len(missing) == len(NOT_MEASURED) else f"{missing[0]} not measured"
        if text != self.not_measured.toPlainText():
            self.not_measured.setText(text)
        self.not_measured.setVisible(bool(text))
