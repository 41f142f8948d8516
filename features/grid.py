"""Cut word clips, or copy whole sentences, out of GRID sentence videos into the clip folder.

    python -m features.grid GRID_DIR VIDEOS_DIR [--words bin lay ...] [--padding N] [--speaker s1]
    python -m features.grid GRID_DIR VIDEOS_DIR --sentences [--speaker s1]

``GRID_DIR`` holds ``video/<id>.mp4`` (25 fps) and ``align/<id>.align``. Each
spoken word becomes ``VIDEOS_DIR/<word>/<id>_<index>_<word>.mp4`` (``index``:
the word's place among the sentence's spoken words, from 0) with a sidecar
naming the speaker, the sentence id as ``source`` and the word's frames.
With ``--sentences`` each sentence is kept whole (all its frames) as
``VIDEOS_DIR/<transcript>/<id>.mp4``, the transcript (its non-silence words)
in the sidecar's ``text`` and each word's frames in its ``words``.
Clips already there are skipped, so a second run only fills gaps; a sentence or
word that cannot be cut is named in the summary and the rest go on.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from features.dataset import CLIP_SUFFIX, Sidecar, copy_clip, label_dir, save_clip, validate_label
from features.extract import VIDEO_SUFFIXES
from features.progress import ProgressOutput, stage_progress
from features.video import VideoError, read_frames

GRID_FPS = 25.0
# Align times are in 1/25000 s: 1000 units per frame at 25 fps.
UNITS_PER_FRAME = 1000
SILENCE = frozenset({"sil", "sp"})


class AlignError(ValueError):
    """An ``.align`` file that cannot be parsed; the message names the file and line."""


@dataclass(frozen=True)
class AlignedWord:
    """One token of an align file: frames ``[start_frame, end_frame)`` at 25 fps."""

    word: str
    start_frame: int
    end_frame: int

    @property
    def is_silence(self) -> bool:
        return self.word in SILENCE


def units_to_frame(units: int) -> int:
    """Frame index of a time in 1/25000 s, rounded half up.

    Rounding (not flooring) makes consecutive words, which share a boundary
    time, share the boundary frame too: the words tile the sentence.
    """
    return (units + UNITS_PER_FRAME // 2) // UNITS_PER_FRAME


def _parse_line(line: str, where: str) -> AlignedWord:
    parts = line.split()
    if len(parts) != 3:
        raise AlignError(f"{where}: expected 'start end word', got {line.strip()!r}")
    try:
        start, end = int(parts[0]), int(parts[1])
    except ValueError:
        raise AlignError(f"{where}: start and end must be whole numbers, got {line.strip()!r}") from None
    if not 0 <= start < end:
        raise AlignError(f"{where}: needs 0 <= start < end, got {line.strip()!r}")
    first = units_to_frame(start)
    # A token shorter than half a frame still gets the frame it starts in.
    return AlignedWord(parts[2].lower(), first, max(units_to_frame(end), first + 1))


def parse_align(path: str | os.PathLike) -> list[AlignedWord]:
    """Every token of a GRID ``.align`` file (silences included), in file order.

    Raises ``AlignError`` naming the file and line when a line is not
    ``start end word`` in 1/25000 s, or when the file holds no token.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AlignError(f"{path}: cannot be read ({error})") from None
    tokens = [_parse_line(line, f"{path}:{number}")
              for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not tokens:
        raise AlignError(f"{path}: no tokens; the file is empty")
    return tokens


@dataclass
class ImportSummary:
    """Outcome of an import: clips written and already there, and why others failed.

    ``failed`` maps a sentence id (whole sentence) or a clip name (one word)
    to the reason.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    sentences: int = 0


def grid_sentences(grid_dir: str | os.PathLike) -> list[str]:
    """Sorted ids found under ``video/`` or ``align/`` (a lone one fails on import)."""
    grid_dir = Path(grid_dir)
    if not (grid_dir / "video").is_dir() or not (grid_dir / "align").is_dir():
        raise FileNotFoundError(f"{grid_dir}: expected GRID folders video/ and align/ inside it")
    videos = {p.stem for p in (grid_dir / "video").iterdir()
              if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")}
    aligns = {p.stem for p in (grid_dir / "align").glob("*.align") if not p.name.startswith(".")}
    return sorted(videos | aligns)


def _sentence_video(grid_dir: Path, sentence: str) -> Path:
    for suffix in VIDEO_SUFFIXES:
        path = grid_dir / "video" / f"{sentence}{suffix}"
        if path.is_file():
            return path
    raise VideoError(f"{grid_dir / 'video'}: no video for sentence {sentence}")


@dataclass(frozen=True)
class _WordClip:
    """One word to cut: where it goes and which sentence frames it takes."""

    name: str
    target: Path
    index: int
    word: AlignedWord


def _plan(sentence: str, tokens: list[AlignedWord], videos_root: Path,
          words: frozenset[str] | None) -> list[_WordClip]:
    spoken = [token for token in tokens if not token.is_silence]
    plan = []
    for index, token in enumerate(spoken):
        if words is not None and token.word not in words:
            continue
        name = f"{sentence}_{index}_{token.word}"
        plan.append(_WordClip(name, label_dir(videos_root, token.word) / f"{name}{CLIP_SUFFIX}",
                              index, token))
    return plan


def _cut(clip: _WordClip, frames: list[np.ndarray], sentence: str, text: str,
         padding: int, speaker: str, videos_root: Path) -> Path:
    start = max(0, clip.word.start_frame - padding)
    end = min(len(frames), clip.word.end_frame + padding)
    if start >= end:
        raise VideoError(f"word at frames {clip.word.start_frame}-{clip.word.end_frame} lies past "
                         f"the video's {len(frames)} frames; the video is truncated")
    sidecar = Sidecar(speaker=speaker, source=sentence, extra={
        "corpus": "GRID", "sentence": text, "word_index": clip.index,
        "start_frame": clip.word.start_frame, "end_frame": clip.word.end_frame,
        "clip_start_frame": start, "clip_end_frame": end, "padding": padding})
    return save_clip(videos_root, clip.word.word, frames[start:end], GRID_FPS, sidecar,
                     clip_name=clip.name)


def _import_sentence(grid_dir: Path, sentence: str, videos_root: Path, words: frozenset[str] | None,
                     padding: int, speaker: str, summary: ImportSummary) -> None:
    """Cut one sentence's words; a whole-sentence failure raises, a word's is recorded."""
    tokens = parse_align(grid_dir / "align" / f"{sentence}.align")
    plan = _plan(sentence, tokens, videos_root, words)
    todo = [clip for clip in plan if not clip.target.exists()]
    summary.skipped.extend(clip.target for clip in plan if clip.target.exists())
    if not todo:
        return
    frames = [frame.rgb for frame in read_frames(_sentence_video(grid_dir, sentence))]
    text = " ".join(token.word for token in tokens if not token.is_silence)
    for clip in todo:
        try:
            summary.written.append(_cut(clip, frames, sentence, text, padding, speaker, videos_root))
        except FileExistsError:
            summary.skipped.append(clip.target)
        except (VideoError, ValueError, OSError) as error:
            summary.failed[clip.name] = str(error)


def _import_whole(grid_dir: Path, sentence: str, videos_root: Path, speaker: str,
                  summary: ImportSummary) -> None:
    """Copy one sentence whole, labelled by its transcript."""
    tokens = parse_align(grid_dir / "align" / f"{sentence}.align")
    text = " ".join(token.word for token in tokens if not token.is_silence)
    if not text:
        raise AlignError(f"{grid_dir / 'align' / sentence}.align: no spoken word")
    target = label_dir(videos_root, text) / f"{sentence}{CLIP_SUFFIX}"
    if target.exists():
        summary.skipped.append(target)
        return
    video = _sentence_video(grid_dir, sentence)
    spoken = [token for token in tokens if not token.is_silence]
    sidecar = Sidecar(speaker=speaker, source=sentence, text=text, extra={
        "corpus": "GRID", "start_frame": spoken[0].start_frame, "end_frame": spoken[-1].end_frame,
        "words": [[t.word, t.start_frame, t.end_frame] for t in spoken]})
    try:
        if video.suffix.lower() == CLIP_SUFFIX:     # the same bytes: the feature cache knows them
            written = copy_clip(videos_root, text, video, sidecar, clip_name=sentence)
        else:
            frames = [frame.rgb for frame in read_frames(video)]
            written = save_clip(videos_root, text, frames, GRID_FPS, sidecar, clip_name=sentence)
        summary.written.append(written)
    except FileExistsError:
        summary.skipped.append(target)


def import_grid(grid_dir: str | os.PathLike, videos_root: str | os.PathLike, *,
                words: Iterable[str] | None = None, padding: int = 0, speaker: str = "s1",
                sentences: Iterable[str] | None = None, whole: bool = False,
                on_progress: Callable[[str, str | None], None] | None = None) -> ImportSummary:
    """Cut the words of GRID sentences into ``videos_root/<word>/`` clips, or with
    ``whole`` copy each sentence whole into ``videos_root/<transcript>/``.

    ``words``: keep only these (default: every spoken word, never ``sil``/``sp``);
    ``padding``: extra frames each side, clipped to the video; ``speaker``: the
    GRID speaker id, recorded in each sidecar; ``sentences``: ids to import
    (default: all under ``grid_dir``). Each sentence is decoded once, and not
    at all when all its clips exist. ``on_progress(sentence_id, error)`` is
    called after each sentence (``error`` is ``None`` unless it failed whole).
    """
    grid_dir, videos_root = Path(grid_dir), Path(videos_root)
    if padding < 0:
        raise ValueError(f"padding {padding}: must be 0 or more frames")
    if whole and (words is not None or padding):
        raise ValueError("whole sentences take all their frames: give no words and no padding")
    keep = None if words is None else frozenset(validate_label(w.lower()) for w in words)
    ids = grid_sentences(grid_dir) if sentences is None else list(sentences)
    summary = ImportSummary(sentences=len(ids))
    for sentence in ids:
        error = None
        try:
            if whole:
                _import_whole(grid_dir, sentence, videos_root, speaker, summary)
            else:
                _import_sentence(grid_dir, sentence, videos_root, keep, padding, speaker, summary)
        except (AlignError, VideoError, ValueError, OSError) as failure:
            error = summary.failed[sentence] = str(failure)
        if on_progress:
            on_progress(sentence, error)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m features.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", type=Path, help="GRID folder with video/ and align/")
    parser.add_argument("videos", type=Path, help="clip folder to fill (videos/<word>/...)")
    parser.add_argument("--words", nargs="+", help="only these words (default: all spoken words)")
    parser.add_argument("--padding", type=int, default=0, help="extra frames each side (default 0)")
    parser.add_argument("--sentences", action="store_true",
                        help="copy whole sentences with their transcripts instead of cutting words")
    parser.add_argument("--speaker", default="s1", help="speaker id for the sidecars (default s1)")
    parser.add_argument("--events", metavar="FILE",
                        help="write progress events as JSON lines to FILE ('-': stdout)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar or progress lines on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ids = grid_sentences(args.grid)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with ProgressOutput(args.events, progress=not args.no_progress) as output:
        try:
            summary = import_grid(args.grid, args.videos, words=args.words, padding=args.padding,
                                  speaker=args.speaker, sentences=ids, whole=args.sentences,
                                  on_progress=stage_progress(output, "import", len(ids)))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"{summary.sentences} sentences: {len(summary.written)} clips written, "
          f"{len(summary.skipped)} already there (skipped), {len(summary.failed)} failed; "
          f"clips in {args.videos}")
    for name, reason in sorted(summary.failed.items()):
        print(f"  failed {name}: {reason}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
