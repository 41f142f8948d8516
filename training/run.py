"""Train a recogniser, evaluate it and write a registry entry.

    python -m training.run [--config FILE] [--model KIND]
                           [--videos DIR] [--epochs N] [--events FILE|-] [--resume [RUN_DIR]]
    torchrun --nproc_per_node=N -m training.run ...     (DistributedDataParallel)

A run starts from ``training/config.yaml``, then the kind's own measured defaults
(``training/kinds/<kind>.yaml``, where it has one), then ``--config``, then the flags.
Progress shows as a bar on the terminal and, with ``--events``, as JSON lines
(one event per line) that the app's training panel reads. ``--model
few_shot`` trains nothing: it embeds every clip with a sentence reader
(``--pretrained ENTRY``, default the registry's) in one pass (:mod:`training.enrol`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from features.files import private_dirs, write_json_atomic
from features.progress import ProgressOutput, add_common_flags
from training.config import ROOT, TrainConfig, load_config, repo_path, saved_config
from training.kinds import KINDS
from training.splits import STRATEGIES

RUNS_DIR = ROOT / ".cache" / "runs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML settings over training/config.yaml "
                        "and the kind's defaults (training/kinds/<kind>.yaml)")
    parser.add_argument("--model", choices=KINDS)
    parser.add_argument("--videos", help="clip folder (videos/<label>/...)")
    add_common_flags(parser, cache=None)
    parser.add_argument("--name", dest="entry_name", help="registry entry name")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--split", choices=("auto", *STRATEGIES))
    parser.add_argument("--pretrained", help="r2plus1d: a local Kinetics-400 weights file; "
                        "few_shot: the sentence reader (landmark_ctc entry) to embed with")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue an interrupted run (default: the latest one)")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The layered defaults and the config file with the command line's flags merged over
    them, once."""
    overrides = {"model": args.model, "data.videos": args.videos,
                 "data.cache": str(args.cache) if args.cache else None,
                 "registry": str(args.registry) if args.registry else None,
                 "entry_name": args.entry_name,
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
        return run_dir, saved_config(json.loads(saved.read_text()), str(saved)), True
    name = config.entry_name or default_entry_name(config.model)
    entry = repo_path(config.registry) / name
    if entry.exists():
        raise FileExistsError(f"registry entry {entry} already exists; choose another --name "
                              f"or delete it (python -m training.registry delete {name})")
    run_dir = args.runs / name
    if run_dir.exists():
        # An unfinished run of this name (an error or a kill ended it): without --resume
        # the user asks to start again, and its checkpoint would only be in the way.
        shutil.rmtree(run_dir)
    private_dirs(run_dir)
    write_json_atomic(run_dir / "config.json", asdict(config))
    return run_dir, config, False


def _latest_run(runs: Path) -> Path:
    unfinished = sorted((p for p in runs.glob("*") if (p / "config.json").is_file()
                         and not (p / "entry.txt").is_file()), key=lambda p: p.stat().st_mtime)
    if not unfinished:
        raise FileNotFoundError(f"{runs}: no interrupted run to resume")
    return unfinished[-1]


def main(argv: list[str] | None = None) -> int:
    from training.distributed import DistributedContext
    from training.enrol import enrol_run
    from training.kinds import get_kind
    from training.trainer import train

    args = parse_args(argv)
    with DistributedContext() as dist:
        output = ProgressOutput(args.events if dist.is_main else None,
                                progress=dist.is_main and not args.no_progress)
        try:
            config = config_from_args(args)
            run_dir, config, resume = resolve_run(args, config) if dist.is_main else (None, config, False)
            run_dir, config, resume = dist.share((run_dir, config, resume))
            run = train if get_kind(config.model).trains_by_epochs else enrol_run
            entry = run(config, run_dir, resume=resume, dist=dist, on_event=output)
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
