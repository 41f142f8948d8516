"""Bedside lip reader: entry point.

    python main.py --source FILE             read a video file as the camera
    python main.py --camera N                read webcam N (default 0)
    python main.py --headless --source FILE  recognise: one JSON line per utterance

Until the window exists (the app issue), the first two run the live
pipeline -- landmarks, lip features and the utterance segmenter -- over the
source and print one JSON line per detected utterance, then a summary.
``--headless`` also recognises each utterance with the active registry entry.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python main.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--source", help="video file used as the camera")
    source.add_argument("--camera", type=int, default=0, help="webcam index (default 0)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop a camera after this many seconds")
    parser.add_argument("--headless", action="store_true",
                        help="recognise utterances of --source and print them as JSON lines")
    parser.add_argument("--kind", default="landmark_cnn", choices=("landmark_cnn", "r2plus1d"),
                        help="recogniser for --headless (default landmark_cnn)")
    return parser.parse_args(argv)


def open_source(args: argparse.Namespace):
    from features.video import CameraSource, VideoFileSource

    if args.source:
        return VideoFileSource(args.source)
    return CameraSource(args.camera)


def run(args: argparse.Namespace) -> int:
    from features.frame_features import FEATURE_NAMES, FeaturePipeline
    from features.video import VideoError
    from recognizer.segmenter import UtteranceSegmenter

    try:
        source = open_source(args)
    except VideoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    segmenter = UtteranceSegmenter(FEATURE_NAMES)
    frames = faces = 0
    started = time.monotonic()

    def report(utterances):
        for u in utterances:
            print(json.dumps({"start_frame": u.start, "end_frame": u.end,
                              "start_ms": u.start_ms, "end_ms": u.end_ms}), flush=True)

    with FeaturePipeline(crops=False) as pipeline:
        for frame in source:
            row = pipeline.process(frame)
            frames += 1
            faces += row.features is not None
            report(segmenter.update(frame.index, row.features, row.features is not None,
                                    frame.timestamp_ms))
            if args.max_seconds and time.monotonic() - started > args.max_seconds:
                break
        report(segmenter.flush())
    source.close()
    seconds = time.monotonic() - started
    print(f"{frames} frames, face found in {faces}, {frames / max(seconds, 1e-9):.0f} frames/s",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.headless:
        from recognizer.headless import run_headless

        if not args.source:
            print("error: --headless needs --source FILE", file=sys.stderr)
            return 2
        return run_headless(args.source, kind=args.kind)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
