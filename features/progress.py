"""Progress of the command lines: the flags they share, and one renderer for their events.

Long jobs report progress as events (JSON-able dicts with an ``event`` key:
``extract``, ``epoch_start``, ``batch``, ``epoch_end``, ``message``, ``done``,
``error``, ...). :class:`ProgressOutput` renders them: as JSON lines to a file
or stdout (``--events``), and on stderr as a progress bar on a terminal, or,
off a terminal (a log file, CI, the app's training process), as one line per
stage or epoch instead of a carriage-return update per step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

# Events that count clips or files through one stage, and how each stage is named.
STAGES = {"extract": "extracting lip features", "import": "importing GRID sentences"}


def add_common_flags(parser: argparse.ArgumentParser, *, cache: Path | str | None,
                     registry: Path | str | None = None, uses_registry: bool = True,
                     events: bool = True) -> None:
    """The flags every command line of the project spells the same way.

    ``--cache`` and ``--no-progress`` always; ``--registry`` when the command
    ``uses_registry``; ``--events`` when it emits events. ``cache`` and
    ``registry`` are the defaults (None: the command's config decides).
    """
    def where(default) -> str:
        return f" (default {default})" if default else ""

    parser.add_argument("--cache", type=Path, default=cache, help="feature cache folder" + where(cache))
    if uses_registry:
        parser.add_argument("--registry", type=Path, default=registry,
                            help="model registry folder" + where(registry or "models/"))
    if events:
        parser.add_argument("--events", metavar="FILE",
                            help="write progress events as JSON lines to FILE ('-': stdout)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar or progress lines on stderr")


def part_text(event: dict) -> str:
    """Which fit of a run an event belongs to ("Fold 2 of 3 · ", "Final fit on every clip
    · "), "" for a run of one fit."""
    if "fold" in event:
        return f"Fold {event['fold']} of {event['folds']} · "
    if event.get("parts", 1) > 1:
        return "Final fit on every clip · "
    return ""


def validation_text(event: dict, percent: bool = False) -> str:
    """An epoch's validation result in words: accuracy for classifiers, WER for sentence readers
    (a fit on every clip has none to validate on, and says so)."""
    if not any(key.startswith("val_") for key in event):
        return "no validation (fitted on every clip)"
    if "val_accuracy" in event:
        value = event["val_accuracy"]
        return f"validation accuracy {value:.1%}" if percent else f"validation accuracy {value:.3f}"
    return f"validation WER {event.get('val_wer', float('nan')):.3f}"


def stage_progress(on_event: Callable[[dict], None], stage: str, total: int
                   ) -> Callable[[object, str | None], None]:
    """An ``on_progress(item, error)`` callback that counts ``total`` items of ``stage``
    (a key of :data:`STAGES`) and reports each as an event."""
    done = 0

    def step(item, error: str | None = None) -> None:
        nonlocal done
        done += 1
        on_event({"event": stage, "done": done, "total": total, **({"error": error} if error else {})})
    return step


class ProgressOutput:
    """Renders progress events to JSON lines and to ``stderr``.

    Batch events reach the JSON stream at most once per ``batch_interval``
    seconds (and always for an epoch's last batch), so a slow model still
    shows progress without a fast one flooding the reader. Messages, results
    and errors always reach ``stderr``; the progress itself only with
    ``progress``.
    """

    def __init__(self, events: str | None = None, progress: bool = True,
                 batch_interval: float = 1.0, stderr: TextIO | None = None):
        self._stream = (sys.stdout if events == "-" else open(events, "a", encoding="utf-8")
                        if events else None)
        self._err = stderr or sys.stderr
        self._progress = progress
        self._terminal = progress and self._err.isatty()
        self._bar = None                   # made at the first progress, so errors print alone
        self._batch_interval = batch_interval
        self._last_batch = float("-inf")
        self._epochs = None

    def _wants(self, event: dict) -> bool:
        if event["event"] != "batch":
            return True
        now = time.monotonic()
        if event["batch"] == event["batches"] or now - self._last_batch >= self._batch_interval:
            self._last_batch = now
            return True
        return False

    def __call__(self, event: dict) -> None:
        if self._stream is not None and self._wants(event):
            self._stream.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")
            self._stream.flush()
        if event["event"] in ("message", "done", "error"):
            self._say(event.get("text", json.dumps(event)))
        elif self._terminal:
            self._draw(event)
        elif self._progress:
            line = self._line(event)
            if line:
                self._say(line)

    def _say(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self._err)
        else:
            print(text, file=self._err, flush=True)

    def _line(self, event: dict) -> str | None:
        """The one line a stage or epoch gets off a terminal (None for the steps between)."""
        name = event["event"]
        if name in STAGES and event["done"] in (1, event["total"]):
            state = "starting" if event["done"] < event["total"] else "done"
            return f"{STAGES[name]}: {state}, {event['done']}/{event['total']}"
        if name == "epoch_start":
            self._epochs = event.get("epochs")
        if name == "epoch_end":
            of = f"/{self._epochs}" if self._epochs else ""
            return (f"{part_text(event)}epoch {event['epoch']}{of}: train loss "
                    f"{event['train_loss']:.3f}, {validation_text(event)}")
        if name == "resumed":
            return f"resumed after epoch {event['epoch']}"
        return None

    def _draw(self, event: dict) -> None:
        from tqdm import tqdm

        name = event["event"]
        if self._bar is None and name in (*STAGES, "batch", "epoch_start"):
            self._bar = tqdm(unit="step", dynamic_ncols=True, file=self._err)
        if self._bar is None:
            return
        if name in STAGES:
            self._bar.set_description(STAGES[name])
            self._bar.total = event["total"]
            self._bar.n = event["done"]
            self._bar.refresh()
        elif name == "batch":
            self._bar.total = event["batches"]
            self._bar.update(1)
        elif name == "epoch_start":
            self._bar.reset()
            self._bar.set_description(f"{part_text(event)}epoch {event['epoch']}/{event['epochs']}")
        elif name == "epoch_end":
            self._bar.set_postfix_str(f"loss {event['train_loss']:.3f}, {validation_text(event)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._stream not in (None, sys.stdout):
            self._stream.close()

    def __enter__(self) -> "ProgressOutput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
