"""The shape the side panels share: a form of settings over a row of large buttons."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

Row = tuple[str, QWidget]


def form_with_buttons(panel: QWidget, rows: Sequence[Row | Sequence[Row]],
                      buttons: Sequence[QPushButton], per_row: int = 4) -> QVBoxLayout:
    """Give ``panel`` a layout: labelled ``rows``, then ``buttons`` large enough to hit
    from a bedside chair, at most ``per_row`` to a line (a narrow panel on a small screen
    cuts none off). Returns the layout for the panel's own widgets below.

    A row is ``(label, widget)``, or a sequence of them side by side on one line
    (a short form leaves more of a small screen to what is below it).
    """
    layout = QVBoxLayout(panel)
    layout.addLayout(form_rows(rows))
    layout.addLayout(button_rows(buttons, per_row))
    return layout


def button_rows(buttons: Sequence[QPushButton], per_row: int = 4) -> QVBoxLayout:
    """``buttons`` large enough to hit from a bedside chair, ``per_row`` to a line."""
    rows = QVBoxLayout()
    for start in range(0, len(buttons), per_row):
        line = QHBoxLayout()
        for button in buttons[start:start + per_row]:
            button.setFont(QFont("Sans", 14, QFont.Bold))
            button.setMinimumHeight(40)
            line.addWidget(button)
        rows.addLayout(line)
    return rows


def form_rows(rows: Sequence[Row | Sequence[Row]]) -> QFormLayout:
    """Labelled ``rows`` (see :func:`form_with_buttons`) as a form layout."""
    form = QFormLayout()
    for row in rows:
        if isinstance(row[0], str):
            form.addRow(*row)
            continue
        (label, widget), *beside = row
        line = QHBoxLayout()
        line.addWidget(widget, stretch=1)
        for text, other in beside:
            line.addSpacing(12)
            line.addWidget(QLabel(text))
            line.addWidget(other, stretch=1)
        form.addRow(label, line)
    return form
