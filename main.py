"""Bedside lip reader: entry point.

    python main.py                           open the window on webcam 0
    python main.py --camera N                ... on webcam N
    python main.py --source FILE [--loop]    ... on a video file played as the camera
    python main.py --demo                    the shipped sentence reader reading a bundled GRID clip
    python main.py --headless --source FILE  no window: one JSON line per recognised utterance
                   [--kind landmark_ctc --mode transcript|phrases --phrases a,b,c]

The window reads the lips live, shows and speaks the phrase, records new
samples into ``videos/`` and trains recognisers into the registry ``models/``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recognizer.reading import add_reading_flags
from training.kinds import DEFAULT_KIND, KINDS

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python main.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--source", help="video file used as the camera")
    source.add_argument("--camera", type=int, default=0, help="webcam index (default 0)")
    source.add_argument("--demo", action="store_true",
                        help="read a bundled GRID sentence with the sentence reader (shipped in "
                             "models/assets), again and again; with --headless, once")
    parser.add_argument("--loop", action="store_true", help="play --source again at its end")
    parser.add_argument("--videos", default=str(ROOT / "videos"), help="recorded samples (default videos/)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="model registry (default models/)")
    parser.add_argument("--history", help="CSV log of recognised phrases (default: history.csv "
                        "in the user's app-data folder); the window's settings are kept beside "
                        "it, in settings.json")
    parser.add_argument("--max-seconds", type=float, help="stop (close the window) after this many seconds")
    parser.add_argument("--headless", action="store_true",
                        help="recognise utterances of --source and print them as JSON lines")
    parser.add_argument("--kind", choices=KINDS,
                        help=f"recogniser for --headless (default {DEFAULT_KIND}, else one the "
                             "registry has a model of: on a fresh clone the shipped sentence reader)")
    add_reading_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.demo:
        from recognizer.reading import DEMO_CLIP, DEMO_KIND

        args.source, args.kind = str(DEMO_CLIP), DEMO_KIND
        if args.headless:
            args.mode = "transcript"
        else:
            from recognizer.gui.app import run_demo

            return run_demo(args.registry, args.videos, args.max_seconds)
    if args.headless:
        from recognizer.headless import run_headless

        if not args.source:
            print("error: --headless needs --source FILE", file=sys.stderr)
            return 2
        from features.dataset import build_manifest
        from recognizer.recording import phrase_list

        from training.sentence_reports import read_phrases

        phrases = (read_phrases(args.phrases) if args.phrases
                   else phrase_list(build_manifest(args.videos)["label"]))
        return run_headless(args.source, args.registry, kind=args.kind, loop=args.loop,
                            max_seconds=args.max_seconds, phrases=phrases, mode=args.mode)
    # A bad --source or --camera opens the window all the same: it says what is wrong and
    # what to do where the video would be.
    from recognizer.gui.app import run_app, source_spec

    return run_app(source_spec(args.camera, args.source, args.loop), args.registry, args.videos,
                   args.history, args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
