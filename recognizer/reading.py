"""How a sentence reader answers, the command-line flags that choose it, and the demo's
clip (torch-free)."""
from __future__ import annotations

import argparse
from enum import StrEnum
from pathlib import Path

# ``main.py --demo``: GRID speaker 1 saying "set green at v six please" (CC BY 4.0), a sentence
# of the shipped sentence reader's test split, read by the registry's sentence reader.
DEMO_CLIP = Path(__file__).resolve().parents[1] / "models" / "assets" / "demo" / "sgav6p.mp4"
DEMO_KIND = "landmark_ctc"


class ReadMode(StrEnum):
    """A sentence reader answers the words it reads, or a phrase from a list."""

    TRANSCRIPT = "transcript"
    PHRASES = "phrases"


def add_reading_flags(parser: argparse.ArgumentParser) -> None:
    """``--mode`` and ``--phrases``: how a sentence reader answers (headless mode, ``main.py``)."""
    parser.add_argument("--mode", choices=[m.value for m in ReadMode], default=ReadMode.PHRASES.value,
                        help="a sentence reader answers a phrase of the list (phrases, the "
                             "default) or the words it reads (transcript)")
    parser.add_argument("--phrases", help="a sentence reader chooses among these phrases "
                                          "(a,b,c or a file of lines; default: the app's phrases)")
