"""List and manage the registry's entries from the command line.

    python -m training.registry list|show NAME|activate NAME|delete NAME [--registry models]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.card import Card
from training.kinds import get_kind
from training.registry import (DEFAULT_ROOT, entry_path, activate, active_names, damaged_entries,
                               delete, list_entries, read_card)


def _accuracy(card: Card) -> str:
    """Test accuracy, or a sentence reader's test WER (:attr:`Card.wer`)."""
    for key in ("accuracy", "val_accuracy"):
        if isinstance(card.metrics.get(key), (int, float)):
            return f"{100 * card.metrics[key]:.1f}%"
    return f"WER {100 * card.wer:.1f}%" if card.wer is not None else "-"


def _classes(card: Card) -> str:
    """How many classes, or for a sentence reader how many words it knows."""
    words = getattr(card.input, "lexicon", None)
    reads = get_kind(card.kind).reads_sentences     # a few-shot entry has its encoder's lexicon
    return f"{len(words)} words" if words and reads else str(len(card.classes))


def _print_list(root: Path) -> None:
    active = set(active_names(root).values())
    damaged = damaged_entries(root)
    rows = [("", "NAME", "KIND", "CLASSES", "ACCURACY", "CREATED")]
    rows += [("*" if e.name in active else "", e.name + (" (shipped)" if e.shipped else ""),
              e.card.kind, _classes(e.card), _accuracy(e.card), e.card.created_at or "-")
             for e in list_entries(root)]
    if len(rows) == 1 and not damaged:
        print(f"no entries in {root}")
        return
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        print("* = active")
    for entry in damaged:
        print(f"DAMAGED {entry.name}: {entry.reason}; {entry.advice}")


def _print_show(root: Path, name: str) -> None:
    path = entry_path(root, name)
    card = read_card(path)
    is_active = active_names(root).get(card.kind) == name
    print(f"{name}  ({path}){'  [active]' if is_active else ''}")
    print(f"files: {', '.join(sorted(p.name for p in path.iterdir()))}")
    print(json.dumps(card.to_json(), indent=2, sort_keys=True))
    problem = next((d for d in damaged_entries(root) if d.name == name), None)
    if problem:
        print(f"DAMAGED: {problem.reason}; {problem.advice}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", "--root", dest="root", type=Path, default=DEFAULT_ROOT,
                        help=f"model registry folder (default {DEFAULT_ROOT})")
    parser = argparse.ArgumentParser(prog="python -m training.registry",
                                     description="List and manage trained models.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="list entries; * marks active ones")
    for command, text in (("show", "print an entry's card"), ("activate", "make it active"),
                          ("delete", "delete an entry")):
        sub = commands.add_parser(command, parents=[common], help=text)
        sub.add_argument("name")
    commands.choices["delete"].add_argument("--force", action="store_true",
                                            help="also delete an active entry")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "list":
            _print_list(args.root)
        elif args.command == "show":
            _print_show(args.root, args.name)
        elif args.command == "activate":
            activate(args.root, args.name)
            print(f"activated {args.name}")
        elif args.command == "delete":
            delete(args.root, args.name, force=args.force)
            print(f"deleted {args.name}")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
