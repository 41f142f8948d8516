"""The alarm an alert phrase ("help") raises: a view of :attr:`AppState.alarm` that sounds
until someone acknowledges it."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLayout, QPushButton, QVBoxLayout, QWidget

from features.text import spoken_text
from recognizer.gui.phrase import ALERT_STYLE
from recognizer.state import AppState, Change, HistoryItem

ALARM_REPEAT_MS = 10_000   # the alarm sounds again until acknowledged


class AlarmBanner(QWidget):
    """The alarm of an alert phrase ("help"): a red band over the whole window, with when it
    was asked, whether it sounds, and "Acknowledge" (also the Esc key).

    Shown while ``state.alarm`` is set, whatever is read meanwhile; ``sound()`` is called
    when it is raised and every :data:`ALARM_REPEAT_MS` until it is acknowledged, then
    ``on_acknowledged(item)`` hears which alarm was.
    """

    def __init__(self, state: AppState, sound: Callable[[], None],
                 on_acknowledged: Callable[[HistoryItem], None], parent=None):
        super().__init__(parent)
        self.state = state
        self._sound = sound
        self._on_acknowledged = on_acknowledged
        self.timer = QTimer(self, interval=ALARM_REPEAT_MS)
        self.timer.timeout.connect(sound)
        self.setAttribute(Qt.WA_StyledBackground, True)     # paint the red over what lies below
        self.setStyleSheet(ALERT_STYLE)
        self.text = QLabel()
        self.text.setFont(QFont("Sans", 22, QFont.Bold))
        self.text.setWordWrap(True)
        self.sound = QLabel()
        self.sound.setFont(QFont("Sans", 13))
        self.sound.setWordWrap(True)
        self.acknowledge = QPushButton("Acknowledge (Esc)")
        self.acknowledge.setFont(QFont("Sans", 16, QFont.Bold))
        self.acknowledge.setMinimumHeight(48)
        self.acknowledge.setStyleSheet("background: #ffffff; color: #b00020; padding: 4px 16px;")
        self.acknowledge.clicked.connect(self.acknowledge_alarm)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.acknowledge_alarm,
                  context=Qt.ApplicationShortcut)
        words = QVBoxLayout()
        words.addWidget(self.text)
        words.addWidget(self.sound)
        layout = QHBoxLayout(self)
        layout.addLayout(words, stretch=1)
        layout.addWidget(self.acknowledge)
        for field in ("alarm", "alarm_problem"):
            state.subscribe(field, self._changed)
        self._changed(None)

    def height_for(self, width: int) -> int:
        """The height its words need at ``width``, as they are now (just changed, maybe)."""
        for layout in (self.layout(), *self.findChildren(QLayout)):
            layout.invalidate()          # a nested layout keeps its sizes until told
        layout = self.layout()
        return max(self.sizeHint().height(),
                   layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else 0)

    def acknowledge_alarm(self) -> None:
        """Someone has seen the alarm: it stops sounding and leaves the screen."""
        alarm = self.state.acknowledge_alarm()
        if alarm is not None:
            self._on_acknowledged(alarm)

    def _changed(self, change: Change | None) -> None:
        alarm = self.state.alarm
        self.setVisible(alarm is not None)
        if change is not None and change.field == "alarm":
            if alarm is None:
                self.timer.stop()
            else:
                self._sound()
                self.timer.start()
        if alarm is None:
            return
        who = f"{self.state.patient} asks" if alarm.patient else "The patient asks"
        self.text.setText(f"\u26a0 {who} for {spoken_text(alarm.phrase).upper()} "
                          f"\u2014 since {alarm.time:%H:%M:%S}")
        self.sound.setText(f"Silent: {self.state.alarm_problem}" if self.state.alarm_problem
                           else "Sounding until someone acknowledges it")
