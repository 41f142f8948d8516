"""How a sentence reader trained on speaker 1 reads faces it never saw: GRID's other speakers.

    python tests/benchmarks/other_speakers.py [--entry ENTRY] [--padding 4] [--shots 5]
                                              [--proxy 25] [--cache DIR]

``--entry`` is a ``landmark_ctc`` registry entry trained on the 800 speaker-1 sentences
(default: the reader shipped with the app; ``tests/benchmarks/train_grid_sentences.py
--keep DIR`` trains others). Prints JSON:

- ``others`` and ``speaker1``: WER and CER of each decoding (greedy, lexicon, grammar:
  the lexicon with the language model) on the 6 sentences of ``grid_others_dev`` (four
  speakers, never trained on; each clip named with its own speaker from ``speakers.tsv``)
  and on the entry's own test split of speaker 1 (sentences it never trained or tuned on:
  no regression is allowed there), with each of the others' readings;
- ``phrase_list``: zero-shot phrase-list scoring (no sample) of the words cut
  (``--padding`` frames each side) from the others' sentences: top-1 and top-3 among GRID's
  12 command, colour and adverb words (``grid12``: those words' clips) and among all 51
  of its words (``grid51``: every word clip);
- ``few_shot``: the few-shot kind enrolled through the entry from ``--shots`` speaker-1
  clips of each of the 12 words (cut from its test split's sentences, so never trained
  on), scored on the others' clips of those words: top-1 and top-3, and for reference on
  the rest of speaker 1's test-split clips of them;
- ``proxy``: WER of each decoding on the first ``--proxy`` sentences of that test split
  under each of :data:`features.face_proxy.PROXIES` (other face proportions, head pose,
  camera distance, skin tone and light), their mean, and the same sentences as they are
  (``none``): a large stand-in for other faces, never a replacement for them.

The others' clips are too few to tune on with any confidence (6 sentences, 18 clips of the
12 words): every figure says how many clips it stands on.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from features.cache import DEFAULT_CACHE_DIR, FeatureCache, file_digest  # noqa: E402
from features.extract import extract_many, find_videos  # noqa: E402
from features.face_proxy import PROXIES, write_proxy  # noqa: E402
from features.grid import import_grid  # noqa: E402
from training.sentence_reports import DECODINGS, evaluate_sentences, score_phrase_list  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OTHERS = DATA / "grid_others_dev"
SPEAKER1 = ("grid_s1", "grid_s1_train")
SHIPPED = ROOT / "models" / "assets" / "entries" / "grid-sentences-landmarks-dct8-s0-t2"
WORDS12 = ("bin", "lay", "place", "set", "blue", "green", "red", "white",
           "again", "now", "please", "soon")
# GRID's grammar: command, colour, preposition, letter (no w), digit, adverb.
GRID51 = (*WORDS12[:8], "at", "by", "in", "with", *"abcdefghijklmnopqrstuvxyz",
          "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
          *WORDS12[8:])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", type=Path, default=SHIPPED, help="a landmark_ctc entry folder")
    parser.add_argument("--padding", type=int, default=4, help="frames around each word clip")
    parser.add_argument("--shots", type=int, default=5, help="speaker-1 samples per word enrolled")
    parser.add_argument("--proxy", type=int, default=25,
                        help="speaker-1 test sentences read under each proxy (0: none)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    return parser.parse_args()


def speakers() -> dict[str, str]:
    """``{sentence id: speaker}`` of the other speakers' sentences."""
    with open(OTHERS / "speakers.tsv", newline="", encoding="utf-8") as handle:
        return {row["id"]: row["speaker"] for row in csv.DictReader(handle, delimiter="\t")}


def import_others(folder: Path, **cut) -> Path:
    """The others' sentences (whole, or cut with ``words``/``padding``), each its speaker's."""
    for sentence, speaker in speakers().items():
        summary = import_grid(OTHERS, folder, speaker=speaker, sentences=[sentence], **cut)
        if summary.failed:
            raise SystemExit(f"could not import {summary.failed}")
    return folder


def speaker1_test(entry: Path, folder: Path) -> list[tuple[str, str]]:
    """The entry's test-split sentences of speaker 1, copied whole into ``folder``:
    (GRID folder, sentence id) of each."""
    test = set(json.loads((entry / "clips.json").read_text())["test"])
    held = []
    for name in SPEAKER1:
        import_grid(DATA / name, folder, whole=True)
    for path in find_videos(folder):
        if file_digest(path) in test:
            held.append(next((n, path.stem) for n in SPEAKER1
                             if (DATA / n / "align" / f"{path.stem}.align").is_file()))
        else:
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
    if not held:
        raise SystemExit(f"{entry}: none of its test clips is a shared speaker-1 sentence")
    return held


def reading_figures(report: dict) -> dict:
    figures = {"sentences": report[DECODINGS[0]]["n"]}
    for name in DECODINGS:
        if name in report:
            figures[f"wer_{name}"] = round(report[name]["wer"], 4)
            figures[f"cer_{name}"] = round(report[name]["cer"], 4)
    return figures


def phrase_figures(report: dict) -> dict:
    return {"clips": report["n"], "top1": round(report["accuracy"], 4),
            "top3": round(report["top3_accuracy"], 4), "confused": report["confused"][:5]}


def enrol_speaker1(entry: Path, held: list[tuple[str, str]], shots: int, padding: int,
                   tmp: Path, cache: Path) -> tuple[Path, Path]:
    """A few-shot entry enrolled through ``entry`` from ``shots`` speaker-1 clips of each of
    the 12 words (the first sentences of the test split that have it); the rest of the
    test split's clips of them in another folder. Returns (entry folder, rest folder)."""
    from training.run import main as train

    words = tmp / "speaker1_words"
    for name in SPEAKER1:
        import_grid(DATA / name, words, words=WORDS12, padding=padding,
                    sentences=[s for n, s in held if n == name])
    enrol, rest = tmp / "enrol", tmp / "speaker1_rest"
    for word in WORDS12:
        clips = sorted((words / word).glob("*.mp4"))
        for index, clip in enumerate(clips):
            target = (enrol if index < shots else rest) / word
            target.mkdir(parents=True, exist_ok=True)
            for part in (clip, clip.with_suffix(".json")):
                shutil.copy(part, target)
    with contextlib.redirect_stdout(sys.stderr):     # stdout is this benchmark's JSON alone
        enrolled = train(["--model", "few_shot", "--pretrained", str(entry), "--videos",
                          str(enrol), "--cache", str(cache), "--registry", str(tmp / "models"),
                          "--runs", str(tmp / "runs"), "--name", "speaker1", "--no-progress"])
    if enrolled != 0:
        raise SystemExit("enrolment failed")
    return tmp / "models" / "speaker1", rest


def proxy_figures(entry: Path, speaker1: Path, count: int, tmp: Path, cache: Path) -> dict:
    """WER of each decoding on ``count`` of the speaker-1 sentences in ``speaker1`` as they
    are and under each proxy, and the proxies' mean."""
    sentences = sorted(find_videos(speaker1))[:count]
    figures = {}
    for name in ("none", *PROXIES):
        folder = tmp / "proxy" / name
        for clip in sentences:
            target = folder / clip.parent.name / clip.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name == "none":
                shutil.copy(clip, target)
            else:
                write_proxy(clip, name, target)
            shutil.copy(clip.with_suffix(".json"), target.with_suffix(".json"))
        extract_many(find_videos(folder), FeatureCache(cache), workers=2)
        report = reading_figures(evaluate_sentences(entry, folder, cache, tmp / f"out_{name}"))
        figures[name] = {k: v for k, v in report.items() if k.startswith("wer_")}
    figures["mean"] = {key: round(sum(figures[n][key] for n in PROXIES) / len(PROXIES), 4)
                       for key in figures["none"]}
    return {"sentences": len(sentences), **figures}


def main() -> None:
    args = parse_args()
    entry = args.entry.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        others = import_others(tmp / "others", whole=True)
        held = speaker1_test(entry, tmp / "speaker1")
        for folder in (others, tmp / "speaker1"):
            extract_many(find_videos(folder), FeatureCache(args.cache), workers=2)
        read_others = evaluate_sentences(entry, others, args.cache, tmp / "out_others")
        read_speaker1 = evaluate_sentences(entry, tmp / "speaker1", args.cache, tmp / "out_s1")
        words = import_others(tmp / "other_words", padding=args.padding)
        grid12 = score_phrase_list(entry, words, args.cache, WORDS12)
        grid51 = score_phrase_list(entry, words, args.cache, GRID51)
        few_shot, rest = enrol_speaker1(entry, held, args.shots, args.padding, tmp, args.cache)
        enrolled_others = score_phrase_list(few_shot, words, args.cache, WORDS12)
        enrolled_speaker1 = score_phrase_list(few_shot, rest, args.cache, WORDS12)
        proxy = (proxy_figures(entry, tmp / "speaker1", args.proxy, tmp, args.cache)
                 if args.proxy else None)
        print(json.dumps({
            "benchmark": "other_speakers", "entry": entry.name,
            "others": {**reading_figures(read_others),
                       "readings": [{k: e[k] for k in ("clip", "reference", *DECODINGS) if k in e}
                                    for e in read_others["examples"]]},
            "speaker1": reading_figures(read_speaker1),
            "phrase_list": {"padding": args.padding, "grid12": phrase_figures(grid12),
                            "grid51": phrase_figures(grid51)},
            "few_shot": {"shots": args.shots, "others": phrase_figures(enrolled_others),
                         "speaker1": phrase_figures(enrolled_speaker1)},
            "proxy": proxy,
            "goal": {"others_wer_grammar": 0.35, "others_grid12_top1": 0.60,
                     "others_few_shot_top1": 0.60, "speaker1_wer_grammar": 0.065},
        }))


if __name__ == "__main__":
    main()
