"""The sentence reader's benchmark: landmark_ctc on 800 GRID sentences, sentence-disjoint split.

    python tests/benchmarks/train_grid_sentences.py [--config FILE] [--epochs N] [--seed S]
                                                    [--train-seed T]
                                                    [--inputs landmarks|crops|both] [--appearance K]
                                                    [--relative none|clip] [--keep DIR]

Copies the 300 shared sentences and the 500 of ``grid_s1_train`` whole into a
temporary videos/ folder, extracts their features (cached under --cache),
trains ``landmark_ctc`` with ``training.run`` and the kind's defaults
(``training/kinds/landmark_ctc.yaml``, the settings measured here; what was tried
is in ``training/results/landmark_ctc.md``) on a sentence-disjoint split (val 10 %,
test 25 %: 200 sentences the model never saw; early stopping and any tuning look at
val only) and prints JSON:

- ``wer_greedy`` / ``cer_greedy``, ``wer_lexicon`` / ``cer_lexicon`` (prefix
  beam search restricted to the training transcripts' words) and ``wer_grammar`` /
  ``cer_grammar`` (the same weighed by their word-class language model, at
  ``training.decoding.LM_WEIGHT``) on the test split, both beam searches weighed by the
  word head's alignment at ``HEAD_WEIGHT`` where the reader has one;
- ``lm_sweep``: validation WER of the language-model decoding at other weights, where
  ``LM_WEIGHT`` was chosen, and ``decode_ms`` (that decoding of one sentence); for a
  reader with a word head, ``head_sweep``: the same at ``LM_WEIGHT`` with the head's
  alignment at other weights, where ``HEAD_WEIGHT`` was chosen;
- ``phrase_list``: the 12 GRID command, colour and adverb words cut from the
  test sentences (``features.grid --words ... --padding P``) scored against
  those 12 words by phrase-list CTC scoring, no word sample used: top-1, top-3 (``clips``
  scored; ``no_face``: those the extractor found no face in, GRID's pbio7a starts so);
- ``calibration``: the confidences fitted on the validation split, measured on the test
  split (:func:`training.reader_calibration.calibration_report`);
- ``train_s`` (the whole ``training.run`` call) and ``inference_ms`` (one
  75-frame sentence: input preparation and forward pass, median of 100 after 10
  warm-up calls).

``--appearance 0`` trains on the lip features alone (the settings read the
mouth's appearance too); ``--relative clip`` expresses them relative to each
clip's rest. The entry is named after both, e.g. ``grid-sentences-landmarks-dct8-s0``.

``--seed`` picks the split and, unless ``--train-seed`` is given, the training's own
randomness (initial weights, batch order, augmentation). Training is deterministic for a
given pair, so ``--train-seed`` is how to see the spread of training runs on one split.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from features.cache import DEFAULT_CACHE_DIR, FeatureCache, file_digest  # noqa: E402
from features.dataset import build_manifest  # noqa: E402
from features.extract import extract_many, find_videos  # noqa: E402
from features.grid import import_grid  # noqa: E402
from training.config import load_config  # noqa: E402
from training.run import main as train  # noqa: E402

WORDS = ["bin", "lay", "place", "set", "blue", "green", "red", "white",
         "again", "now", "please", "soon"]
DATA = ROOT.parent / "shared" / "data"
SETTINGS = ROOT / "training" / "kinds" / "landmark_ctc.yaml"     # the settings measured here


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help=f"settings over the kind's defaults "
                        f"({SETTINGS}); without it, --inputs, --relative and --appearance apply")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (and the training's)")
    parser.add_argument("--train-seed", type=int, help="the training's seed (default: --seed)")
    parser.add_argument("--inputs", choices=("landmarks", "crops", "both"), default="landmarks")
    parser.add_argument("--relative", choices=("none", "clip"), default="none")
    parser.add_argument("--appearance", type=int, help="the mouth's K x K DCT coefficients a "
                                                       "frame (default: the settings'; 0: none)")
    parser.add_argument("--padding", type=int, default=4, help="frames around each word clip")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--keep", type=Path, help="keep the registry entry in this folder")
    parser.add_argument("--events", help="write training.run's progress events to this file")
    return parser.parse_args()


def sentences_into(videos: Path) -> None:
    for folder in ("grid_s1", "grid_s1_train"):
        summary = import_grid(DATA / folder, videos, whole=True)
        if summary.failed:
            raise SystemExit(f"could not import {summary.failed}")


def word_clips_of(test_ids: list[str], videos: Path, padding: int) -> list[tuple[str, Path]]:
    """The 12 words cut from the test sentences: (word, clip path)."""
    for folder in ("grid_s1", "grid_s1_train"):
        ids = [i for i in test_ids if (DATA / folder / "align" / f"{i}.align").is_file()]
        import_grid(DATA / folder, videos, words=WORDS, padding=padding, sentences=ids)
    return [(p.parent.name, p) for p in find_videos(videos)]


def inference_ms(predictor, clip, warmup: int = 10, repeats: int = 100) -> float:
    """Median ms of one clip's input preparation and forward pass, after ``warmup`` calls
    (the first ones pay for the allocator and thread pools, as the app's first reading does)."""
    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            predictor.entry.model(predictor.model_batch(clip))
            if i >= warmup:
                times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def lm_sweep(predictor, clips, references, weights=(0.0, 0.5, 1.0, 1.5, 2.0),
             head_weights=(0.0, 0.5, 1.0, 2.0)) -> dict:
    """Validation WER of the reader's lexicon search weighed by its language model at each
    weight (0: the lexicon alone, no word head), the median ms of one sentence's decoding
    at ``LM_WEIGHT`` (with the word head, where the reader has one), and, for a reader with
    a word head, the same at ``LM_WEIGHT`` with the head's alignment at each weight."""
    import torch

    from training.decoding import HEAD_WEIGHT, LM_WEIGHT, BeamDecoder, word_error_rate

    card, kind = predictor.entry.card, predictor._model_kind
    with torch.inference_mode():
        emissions = [kind.read_emissions(predictor.entry.model, predictor.model_batch(c))
                     for c in clips]
    has_head = emissions[0][1] is not None and bool(card.input.head_words)

    def read(lm_weight: float, head_weight: float, timed: list | None = None) -> float:
        decoder = BeamDecoder(card.classes, card.input.lexicon, lm_weight=lm_weight,
                              language_model=card.input.word_model if lm_weight else None,
                              head_words=card.input.head_words, head_weight=head_weight)
        hypotheses = []
        for log_probs, words in emissions:
            start = time.perf_counter()
            best = decoder.readings(log_probs, 1, words if head_weight else None)[0]
            hypotheses.append(best[0][0] if best else "")
            if timed is not None:
                timed.append(1000 * (time.perf_counter() - start))
        return round(word_error_rate(references, hypotheses), 4)

    times: list[float] = []
    head = HEAD_WEIGHT if has_head else 0.0
    sweep = {str(w): read(w, head if w else 0.0, times if w == LM_WEIGHT else None)
             for w in weights}
    result = {"val_wer": sweep, "weight": LM_WEIGHT, "decode_ms": round(float(np.median(times)), 2)}
    if has_head:
        result["head_sweep"] = {"val_wer": {str(h): read(LM_WEIGHT, h) for h in head_weights},
                                "weight": HEAD_WEIGHT}
    return result


def main() -> None:
    from recognizer.predictor import Predictor

    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos, models = tmp / "videos", args.keep or tmp / "models"
        sentences_into(videos)
        start = time.perf_counter()
        cache = FeatureCache(args.cache)
        extract_many(find_videos(videos), cache, workers=2)
        extract_s = time.perf_counter() - start
        settings = (yaml.safe_load(args.config.read_text()) if args.config else None) or {}
        if args.config is None:
            settings["data"] = {"inputs": args.inputs, "relative": args.relative}
            if args.appearance is not None:
                settings["data"]["appearance"] = args.appearance
        train_seed = args.seed if args.train_seed is None else args.train_seed
        settings["split"] = {**settings.get("split", {}), "seed": args.seed}
        settings["optim"] = {**settings.get("optim", {}), "seed": train_seed}
        config = tmp / "sentences.yaml"
        config.write_text(yaml.safe_dump(settings))
        data = load_config(config, {"model": "landmark_ctc"}).data  # what training reads
        name = (f"grid-sentences-{data.inputs}{f'-dct{data.appearance}' if data.appearance else ''}"
                f"{'-relative' if data.relative == 'clip' else ''}-s{args.seed}"
                f"{'' if train_seed == args.seed else f'-t{train_seed}'}")
        flags = ["--model", "landmark_ctc", "--config", str(config), "--videos", str(videos),
                 "--cache", str(args.cache), "--registry", str(models), "--runs", str(tmp / "runs"),
                 "--name", name, "--no-progress"]
        flags += ["--epochs", str(args.epochs)] if args.epochs else []
        flags += ["--events", args.events] if args.events else []
        start = time.perf_counter()
        if train(flags) != 0:
            raise SystemExit("training failed")
        train_s = time.perf_counter() - start
        entry = models / name
        card = json.loads((entry / "card.json").read_text())
        test = set(json.loads((entry / "clips.json").read_text())["test"])
        test_ids = [p.stem for p in find_videos(videos) if file_digest(p) in test]
        words = word_clips_of(test_ids, tmp / "words", args.padding)
        extract_many([p for _, p in words], cache, workers=2)
        predictor = Predictor.from_entry(entry, device="cpu", phrases=WORDS)
        crops = predictor.needs_crops
        hits, top3, no_face = [], [], []
        for word, path in words:
            clip = cache.load(path, crops=crops)
            if clip is None:      # extraction found no face in it: said, not scored
                no_face.append(path.name)
                continue
            prediction = predictor.predict(clip)
            hits.append(prediction.phrase == word)
            top3.append(word in [p for p, _ in prediction.top3])
        sentence = cache.load(next(p for p in find_videos(videos) if p.stem == test_ids[0]), crops=crops)
        val = set(json.loads((entry / "clips.json").read_text())["val"])
        manifest = build_manifest(videos)
        val_rows = [(Path(p), t) for p, t in zip(manifest["path"], manifest["text"])
                    if file_digest(p) in val]
        sweep = lm_sweep(predictor, [cache.load(p, crops=crops) for p, _ in val_rows],
                         [t for _, t in val_rows])
        metrics = card["metrics"]
        print(json.dumps({
            "benchmark": "train_grid_sentences", "inputs": data.inputs, "relative": data.relative,
            "appearance": data.appearance,
            "seed": args.seed, "train_seed": train_seed, "sentences": card["data"]["clips"],
            "split": card["data"]["split_sizes"],
            "wer_greedy": round(metrics["wer"], 4), "cer_greedy": round(metrics["cer"], 4),
            "wer_lexicon": round(metrics["wer_lexicon"], 4), "cer_lexicon": round(metrics["cer_lexicon"], 4),
            "wer_grammar": round(metrics["wer_grammar"], 4), "cer_grammar": round(metrics["cer_grammar"], 4),
            "lm_sweep": sweep,
            "sentence_accuracy_greedy": round(metrics["sentence_accuracy"], 4),
            "val_wer": round(metrics["val_wer"], 4), "epochs_run": card["training"]["epochs_run"],
            "calibration": json.loads((entry / "final_report.json").read_text())["test"].get(
                "calibration"),
            "phrase_list": {"clips": len(hits), "padding": args.padding,
                            "top1": round(float(np.mean(hits)), 4), "top3": round(float(np.mean(top3)), 4),
                            "no_face": no_face},
            "train_s": round(train_s, 1), "fit_s": card["training"]["seconds"],
            "extract_s": round(extract_s, 1), "inference_ms": round(inference_ms(predictor, sentence), 2),
            "goal": {"wer_greedy": 0.10, "wer_lexicon": 0.07, "phrase_list_top1": 0.90,
                     "train_s": 600, "inference_ms": 10},
        }))


if __name__ == "__main__":
    main()
