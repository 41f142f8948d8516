"""Recognise a video file without a window: one JSON line per recognised utterance.

    python -m recognizer.headless --source FILE [--registry models] [--kind landmark_cnn] [--loop]
                                  [--mode transcript|phrases] [--phrases a,b,c | --phrases FILE]

``main.py --headless --source FILE`` calls :func:`run_headless`. The file runs
through the same FeaturePipeline and :class:`~recognizer.live.LiveRecognizer`
as the live app, as fast as the machine allows (not paced in real time). Each
line on stdout is ``{"start_ms", "end_ms", "phrase", "confidence", "top3", "text"}``
(``text``: the words a sentence reader read; a classifier's phrase as words);
a summary goes to stderr. A sentence reader (``--kind landmark_ctc``) answers a
phrase of the list (``--mode phrases``, the default: the app's phrases, or
``--phrases``) or the words it reads (``--mode transcript``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from features.frame_features import FEATURE_NAMES, FeaturePipeline
from features.video import VideoError, VideoFileSource
from recognizer.live import LiveRecognizer, Recognition
from recognizer.predictor import Predictor, find_entry, kind_in_use
from recognizer.reading import ReadMode, add_reading_flags
from recognizer.recording import DEFAULT_PHRASES
from training.kinds import DEFAULT_KIND, KINDS
from training.registry import DEFAULT_ROOT, damaged_entries, list_entries


def recognition_json(recognition: Recognition) -> str:
    """One output line: times in ms of the stream, probabilities rounded to 4 places."""
    prediction = recognition.prediction
    return json.dumps({"start_ms": recognition.start_ms, "end_ms": recognition.end_ms,
                       "phrase": prediction.phrase,
                       "confidence": round(prediction.confidence, 4),
                       "top3": [[phrase, round(p, 4)] for phrase, p in prediction.top3],
                       "text": prediction.text})


def load_predictor(registry_root: str | Path, kind: str, err: TextIO,
                   phrases: tuple[str, ...] = DEFAULT_PHRASES,
                   mode: ReadMode | str = ReadMode.PHRASES) -> Predictor | None:
    """The predictor of the registry's entry of ``kind`` (a sentence reader reading in
    ``mode``, choosing among ``phrases``), or None after printing why not."""
    entry = find_entry(registry_root, kind)
    if entry is None:
        damaged = "".join(f"; cannot use the damaged entry {d.path}: {d.reason}"
                          for d in damaged_entries(registry_root))
        others = sorted({e.card.kind for e in list_entries(registry_root)} - {kind})
        use = "".join(f"; or use its {other} model: add --kind {other}" for other in others)
        print(f"error: no usable trained {kind} model in the registry folder "
              f"{Path(registry_root)}{damaged}; train one: python -m training.run --model {kind} "
              f"--videos VIDEOS_DIR --registry {registry_root}{use}", file=err)
        return None
    try:
        predictor = Predictor.from_entry(entry, phrases=phrases, mode=mode)
    except (ValueError, OSError) as error:
        print(f"error: cannot use registry entry {entry}: {error}", file=err)
        return None
    if predictor.reads_sentences and predictor.unspellable:
        print(f"warning: {predictor.name} cannot spell the phrases "
              f"{', '.join(map(repr, predictor.unspellable))} (only the characters "
              f"{''.join(predictor.entry.card.classes)!r}); they are left out", file=err)
    return predictor


def recognise_stream(source, predictor: Predictor, out: TextIO, err: TextIO,
                     max_seconds: float | None = None) -> tuple[int, int, int]:
    """Print each recognition of ``source``'s frames as a JSON line, for at most ``max_seconds``.

    Returns (frames, frames with a face, recognitions).
    """
    recognizer = LiveRecognizer(FEATURE_NAMES, predictor)
    frames = faces = found = 0
    deadline = time.monotonic() + max_seconds if max_seconds else None
    with FeaturePipeline(crops=predictor.needs_crops) as pipeline:
        for frame in source:
            if deadline is not None and time.monotonic() > deadline:
                break
            result = recognizer.process(pipeline.process(frame))
            frames, faces = frames + 1, faces + result.has_face
            if result.error:
                print(f"warning: {result.error}", file=err)
            if result.recognition is not None and result.recognition.final:
                print(recognition_json(result.recognition), file=out, flush=True)
                found += 1
    for recognition in recognizer.finish():
        print(recognition_json(recognition), file=out, flush=True)
        found += 1
    return frames, faces, found


def run_headless(source_path: str | Path, registry_root: str | Path = DEFAULT_ROOT,
                 kind: str | None = None, loop: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None,
                 max_seconds: float | None = None,
                 phrases: tuple[str, ...] = DEFAULT_PHRASES,
                 mode: ReadMode | str = ReadMode.PHRASES) -> int:
    """Recognise every utterance of a video file; exit code 0, or 2 when it cannot start or read.

    Not paced: frames are read as fast as they are processed. ``loop`` runs
    until interrupted (Ctrl-C ends it with exit code 0) or for ``max_seconds``.
    Without ``kind``, the default kind, else one the registry has a model of
    (:func:`~recognizer.predictor.kind_in_use`).
    """
    out, err = out or sys.stdout, err or sys.stderr
    try:
        source = VideoFileSource(source_path, loop=loop)    # a bad file is named before a model loads
    except VideoError as error:
        print(f"error: {error}", file=err)
        return 2
    predictor = load_predictor(registry_root, kind_in_use(registry_root, kind), err, phrases, mode)
    if predictor is None:
        source.close()
        return 2
    started = time.monotonic()
    try:
        frames, faces, found = recognise_stream(source, predictor, out, err, max_seconds)
    except VideoError as error:
        print(f"error: {error}", file=err)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        source.close()
    rate = frames / max(time.monotonic() - started, 1e-9)
    print(f"{frames} frames, face in {faces}, {found} utterances recognised by {predictor.name}, "
          f"{rate:.0f} frames/s", file=err)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recognizer.headless", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="video file to recognise")
    parser.add_argument("--registry", default=str(DEFAULT_ROOT), help="model registry folder")
    parser.add_argument("--kind", choices=KINDS, help=f"recogniser kind (default {DEFAULT_KIND}, "
                        "else one the registry has a model of)")
    parser.add_argument("--loop", action="store_true", help="start the file again at its end")
    parser.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    add_reading_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from training.sentence_reports import read_phrases

    args = parse_args(argv)
    phrases = read_phrases(args.phrases) if args.phrases else DEFAULT_PHRASES
    return run_headless(args.source, args.registry, args.kind, args.loop,
                        max_seconds=args.max_seconds, phrases=phrases, mode=args.mode)


if __name__ == "__main__":
    sys.exit(main())
