"""The shape the side panels share: a form of settings over a row of large buttons."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


def form_with_buttons(panel: QWidget, rows: Sequence[tuple[str, QWidget]],
                      buttons: Sequence[QPushButton]) -> QVBoxLayout:
    """Give ``panel`` a layout: labelled ``rows``, then ``buttons`` large enough to hit
    from a bedside chair. Returns the layout for the panel's own widgets below."""
    form = QFormLayout()
    for label, widget in rows:
        form.addRow(label, widget)
    row = QHBoxLayout()
    for button in buttons:
        button.setFont(QFont("Sans", 14, QFont.Bold))
        button.setMinimumHeight(40)
        row.addWidget(button)
    layout = QVBoxLayout(panel)
    layout.addLayout(form)
    layout.addLayout(row)
    return layout
