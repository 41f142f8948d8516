"""Train a recogniser, evaluate it and write a registry entry.

    python -m training.run [--config training/config.yaml] [--model landmark_cnn|r2plus1d]
                           [--videos DIR] [--epochs N] [--events FILE|-] [--resume [RUN_DIR]]
    torchrun --nproc_per_node=N -m training.run ...     (DistributedDataParallel)

Progress shows as a bar on the terminal and, with ``--events``, as JSON lines
(one event per line) that the app's training panel reads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from features.files import write_json_atomic
from training.config import DEFAULT_CONFIG, KINDS, ROOT, TrainConfig, load_config

RUNS_DIR = ROOT / ".cache" / "runs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config")
    parser.add_argument("--model", choices=KINDS)
    parser.add_argument("--videos", help="clip folder (videos/<label>/...)")
    parser.add_argument("--cache", help="feature cache folder")
    parser.add_argument("--registry", help="model registry folder (default models/)")
    parser.add_argument("--name", dest="entry_name", help="registry entry name")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--split", choices=("stratified", "speaker", "holdout"))
    parser.add_argument("--pretrained", help="local Kinetics-400 R(2+1)D-18 weights file")
    parser.add_argument("--events", help="write progress events as JSON lines to FILE ('-': stdout)")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue an interrupted run (default: the latest one)")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file with the command line's flags merged over it, once."""
    overrides = {"model": args.model, "data.videos": args.videos, "data.cache": args.cache,
                 "registry": args.registry, "entry_name": args.entry_name,
                 "optim.epochs": args.epochs, "optim.batch_size": args.batch_size,
                 "optim.lr": args.lr, "optim.seed": args.seed, "split.strategy": args.split,
                 "pretrained": args.pretrained}
    if args.seed is not None:
        overrides["split.seed"] = args.seed
    return load_config(args.config, overrides)


def resolve_run(args: argparse.Namespace, config: TrainConfig) -> tuple[Path, TrainConfig, bool]:
    """The run folder, and the config to use: a resumed run keeps the config it started with."""
    from training.registry import default_entry_name

    if args.resume:
        run_dir = _latest_run(args.runs) if args.resume == "latest" else Path(args.resume)
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise FileNotFoundError(f"{run_dir}: not a run folder (no config.json) -- nothing to resume")
        return run_dir, load_config(None, _flatten(json.loads(saved.read_text()))), True
    run_dir = args.runs / (config.entry_name or default_entry_name(config.model))
    run_dir.mkdir(parents=True, exist_ok=False)
    write_json_atomic(run_dir / "config.json", asdict(config))
    return run_dir, config, False


def _latest_run(runs: Path) -> Path:
    unfinished = sorted((p for p in runs.glob("*") if (p / "config.json").is_file()
                         and not (p / "entry.txt").is_file()), key=lambda p: p.stat().st_mtime)
    if not unfinished:
        raise FileNotFoundError(f"{runs}: no interrupted run to resume")
    return unfinished[-1]


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key not in ("arch", "targets"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class EventOutput:
    """Renders events: a tqdm bar on the terminal and JSON lines to a file or stdout.

    Batch events reach the JSON stream at most once per ``batch_interval`` seconds
    (and always for an epoch's last batch), so a slow model still shows progress
    without a fast one flooding the reader.
    """

    def __init__(self, events: str | None, progress: bool, batch_interval: float = 1.0):
        from tqdm import tqdm

        self._stream = (sys.stdout if events == "-" else open(events, "a", encoding="utf-8")
                        if events else None)
        self._progress = progress
        self._bar = None                   # made at the first progress, so errors print alone
        self._tqdm = tqdm
        self._batch_interval = batch_interval
        self._last_batch = float("-inf")

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
            self._tqdm.write(event.get("text", json.dumps(event)), file=sys.stderr)
            return
        if not self._progress:
            return
        if self._bar is None and event["event"] in ("extract", "batch", "epoch_start"):
            self._bar = self._tqdm(unit="step", dynamic_ncols=True, file=sys.stderr)
        if self._bar is None:
            return
        if event["event"] == "extract":
            self._bar.set_description("extracting lip features (clips)")
            self._bar.total = event["total"]
            self._bar.n = event["done"]
            self._bar.refresh()
        elif event["event"] == "batch":
            self._bar.total = event["batches"]
            self._bar.update(1)
        elif event["event"] == "epoch_start":
            self._bar.reset()
            self._bar.set_description(f"epoch {event['epoch']}/{event['epochs']}")
        elif event["event"] == "epoch_end":
            self._bar.set_postfix(loss=f"{event['train_loss']:.3f}",
                                  val_acc=f"{event['val_accuracy']:.3f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._stream not in (None, sys.stdout):
            self._stream.close()


def main(argv: list[str] | None = None) -> int:
    from training.distributed import DistributedContext
    from training.trainer import train

    args = parse_args(argv)
    with DistributedContext() as dist:
        output = EventOutput(args.events if dist.is_main else None,
                             progress=dist.is_main and not args.no_progress)
        try:
            config = config_from_args(args)
            run_dir, config, resume = resolve_run(args, config) if dist.is_main else (None, config, False)
            run_dir, config, resume = dist.share((run_dir, config, resume))
            entry = train(config, run_dir, resume=resume, dist=dist, on_event=output)
        except (ValueError, FileNotFoundError, FileExistsError) as error:
            output({"event": "error", "text": f"error: {error}"})
            return 2
        finally:
            output.close()
    if entry is not None:
        print(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
