"""How a phrase label reads as words, shared by the dataset, the decoders and the window."""
from __future__ import annotations

import unicodedata


def spoken_text(label: str) -> str:
    """The words of a label: NFC, ``_`` read as a space, runs of whitespace made one
    (``i_need_to_move`` -> ``i need to move``)."""
    return " ".join(unicodedata.normalize("NFC", label).replace("_", " ").split())
