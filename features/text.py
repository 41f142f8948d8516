"""How a phrase label reads as words, and how patient names compare: shared by the dataset,
the decoders and the window."""
from __future__ import annotations

import unicodedata


def spoken_text(label: str) -> str:
    """The words of a label: NFC, ``_`` read as a space, runs of whitespace made one
    (``i_need_to_move`` -> ``i need to move``)."""
    return " ".join(unicodedata.normalize("NFC", label).replace("_", " ").split())


def patient_key(name: object) -> str | None:
    """How patient names compare: trimmed, NFC, case-folded ("Bed 4" is "bed 4 "); None for
    no name."""
    if not isinstance(name, str) or not name.strip():
        return None
    return unicodedata.normalize("NFC", name).strip().casefold()
