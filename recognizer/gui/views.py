"""The video panel and the live feature plots: widgets that only paint what the worker sent."""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from recognizer.gui.worker import LiveFrame
from recognizer.live import PLOT_NAMES, LiveState, PlotHistory
from recognizer.recording import COUNTDOWN, RECORDING

STATE_COLOURS = {LiveState.RESTING: QColor("#5f6b7a"), LiveState.MOUTHING: QColor("#e69500"),
                 LiveState.RECOGNISED: QColor("#1f9d55")}
OUTER_LIP_PEN = QColor("#39ff14")
INNER_LIP_PEN = QColor("#00e5ff")
CROP_BOX_PEN = QColor("#ffd400")


def _polygon(points: np.ndarray, scale: float, dx: float, dy: float) -> QPolygonF:
    return QPolygonF([QPointF(x * scale + dx, y * scale + dy) for x, y in points])


class VideoView(QWidget):
    """The camera image with the lip contour, the mouth-crop box, state, frame rate and recording.

    :meth:`show_frame` keeps the newest :class:`LiveFrame` and schedules a
    paint; Qt merges paints, so a slow screen never builds a queue.
    :attr:`paint_latencies_ms` keeps, per painted frame, the time from the
    frame's arrival to the end of its paint (for the speed benchmark).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self._frame: LiveFrame | None = None
        self._painted: LiveFrame | None = None
        self._message = "Starting the video source..."
        self.paint_latencies_ms: deque[float] = deque(maxlen=100_000)
        self.painted_frames = 0

    def show_frame(self, frame: LiveFrame) -> None:
        self._frame = frame
        self.update()

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
        self._badge(painter, QRectF(10, 10, 260, 40), f"{state.upper()}{face}",
                    STATE_COLOURS.get(state, QColor("#5f6b7a")))
        self._badge(painter, QRectF(self.width() - 250, 10, 240, 40),
                    f"{frame.fps:4.1f} fps  dropped {frame.dropped}", QColor(0, 0, 0, 170))
        recorder = frame.recorder
        if recorder.state == COUNTDOWN:
            painter.setPen(QColor("white"))
            painter.setFont(QFont("Sans", 96, QFont.Bold))
            painter.drawText(self.rect(), Qt.AlignCenter, str(recorder.countdown_left_s))
        elif recorder.state == RECORDING:
            self._badge(painter, QRectF(10, self.height() - 50, 300, 40),
                        f"\u25cf REC {recorder.recorded_ms / 1000:.1f} s", QColor("#c81e1e"))

    @staticmethod
    def _badge(painter: QPainter, rect: QRectF, text: str, colour: QColor) -> None:
        painter.fillRect(rect, colour)
        painter.setPen(QColor("white"))
        painter.setFont(QFont("Sans", 16, QFont.Bold))
        painter.drawText(rect, Qt.AlignCenter, text)

    def _paint_message(self, painter: QPainter) -> None:
        box = self.rect().adjusted(30, 0, -30, 0)
        painter.setPen(QColor("white"))
        painter.setFont(QFont("Sans", 18))
        if self._frame is not None:
            box = QRectF(20, self.height() / 2 - 60, self.width() - 40, 120).toRect()
            painter.fillRect(box, QColor(0, 0, 0, 190))
        painter.drawText(box, Qt.AlignCenter | Qt.TextWordWrap, self._message)


PLOT_ROWS = (("Mouth aspect ratio", ("inner_mar", "outer_mar")),
             ("Inner-mouth area", ("inner_area",)),
             ("Teeth / tongue", ("teeth_ratio", "tongue_ratio")),
             ("jawOpen", ("jawOpen",)))
PLOT_COLOURS = {"inner_mar": "#00e5ff", "outer_mar": "#39ff14", "inner_area": "#ffd400",
                "teeth_ratio": "#f5f5f5", "tongue_ratio": "#ff5c8a", "jawOpen": "#c084fc"}


class PlotPanel(pg.GraphicsLayoutWidget):
    """Scrolling plots of the lip features: curves made once, updated in place with ``setData``."""

    def __init__(self, history: PlotHistory, parent=None):
        super().__init__(parent)
        self.history = history
        self.setBackground("#101418")
        self.curves: dict[str, pg.PlotDataItem] = {}
        for row, (title, names) in enumerate(PLOT_ROWS):
            plot = self.addPlot(row=row, col=0)
            plot.setTitle(title, color="#e0e0e0", size="11pt")
            plot.showGrid(x=False, y=True, alpha=0.3)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            if len(names) > 1:
                plot.addLegend(offset=(5, 5))
            for name in names:
                self.curves[name] = plot.plot(pen=pg.mkPen(PLOT_COLOURS[name], width=2), name=name,
                                              connect="finite")

    def refresh(self) -> None:
        """Redraw from the history (the window calls this on a timer, not per frame)."""
        times, values = self.history.series()
        if len(times) == 0:
            return
        times = times - times[-1]
        for column, name in enumerate(PLOT_NAMES):
            self.curves[name].setData(times, values[:, column])
