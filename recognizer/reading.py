"""How a sentence reader answers, and the command-line flags that choose it (torch-free)."""
from __future__ import annotations

import argparse
from enum import StrEnum


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
