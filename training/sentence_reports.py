"""Reports of a sentence reader on its test split: error rates, confusions, examples, curves.

Written into a registry entry's folder by ``landmark_ctc``'s ``report``, and by
``training.evaluate`` for an entry on other clips.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from features.files import private_dirs, write_text_atomic
from training.decoding import (BeamDecoder, align, char_error_rate, greedy_decode,
                               normalise_text, word_error_rate)
from training.reader_calibration import calibration_report


def sentence_metrics(references: list[str], hypotheses: list[str]) -> dict:
    """WER, CER, sentence accuracy, and the most confused words (reference -> hypothesis)."""
    confusions = Counter()
    for reference, hypothesis in zip(references, hypotheses):
        for said, read in align(normalise_text(reference).split(), normalise_text(hypothesis).split()):
            if said != read:
                confusions[(said or "(none)", read or "(none)")] += 1
    exact = [normalise_text(r) == normalise_text(h) for r, h in zip(references, hypotheses)]
    return {"n": len(references), "wer": word_error_rate(references, hypotheses),
            "cer": char_error_rate(references, hypotheses),
            "sentence_accuracy": float(np.mean(exact)) if exact else float("nan"),
            "confused_words": [{"said": a, "read": b, "count": n}
                               for (a, b), n in confusions.most_common(15)]}


#: How a reader's output becomes text, as the reports name them: the best path; the beam
#: search over the training transcripts' words; the same weighed by their word-class
#: language model (:mod:`training.language_model`); both beam searches with the word
#: head's alignment where the reader has one (``arch.word_frames``).
DECODINGS = ("greedy", "lexicon", "grammar")
WITH = {"lexicon": "with the lexicon", "grammar": "with the lexicon and language model"}


def transcript_report(clips, references: list[str], hypotheses: dict[str, list[str]]) -> dict:
    """Metrics of each decoding's hypotheses (:data:`DECODINGS` order), and every clip's
    transcripts as ``examples``."""
    report = {name: sentence_metrics(references, hypotheses[name])
              for name in DECODINGS if name in hypotheses}
    report["examples"] = [{"clip": c, "reference": r,
                           **{name: hypotheses[name][i] for name in DECODINGS if name in hypotheses}}
                          for i, (c, r) in enumerate(zip(clips, references))]
    return report


def read_split(kind, model, card, dataset, device, batch_size: int = 32
               ) -> tuple[list, list[str], list]:
    """Per clip of ``dataset``: its (T, V) log-probabilities, its transcript, and the word
    head's (T, words + 1) log-probabilities (None without a head), on the CPU."""
    from training.engine import Step

    step = Step(kind, card.classes, partial(kind.model_input, spec=card.input, device=device),
                nn.CTCLoss(zero_infinity=True), None, None, None, device, 0.0, False)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=kind.collate)
    outputs, references, _, words = kind.log_probabilities(model, loader, step)
    return outputs, references, words


def transcripts(kind, model, card, dataset, device, batch_size: int = 32
                ) -> tuple[list[str], dict[str, list[str]]]:
    """References, and hypotheses by decoding (:func:`decode_split`)."""
    outputs, references, words = read_split(kind, model, card, dataset, device, batch_size)
    return references, decode_split(card, outputs, words)


def decode_split(card, outputs: list, words: list) -> dict[str, list[str]]:
    """Hypotheses by decoding: greedy always; with the card's lexicon its beam search, and
    with its language model too the search weighed by it."""
    hypotheses = {"greedy": [greedy_decode(lp, card.classes) for lp in outputs]}
    if card.input.lexicon:
        # The lexicon's search, and the same weighed by the language model: each with the
        # word head's alignment, where the reader has one.
        for name, grammar in (("lexicon", None), ("grammar", card.input.word_model)):
            if name == "lexicon" or grammar is not None:
                decoder = BeamDecoder(card.classes, card.input.lexicon, language_model=grammar,
                                      head_words=card.input.head_words)
                hypotheses[name] = [_best_text(decoder.readings(lp, 1, w)[0])
                                    for lp, w in zip(outputs, words)]
    return hypotheses


def _best_text(readings) -> str:
    return readings[0][0] if readings else ""


def write_sentence_reports(kind, folder: Path, card, clips, test_index: np.ndarray, model,
                           test_set, device, history, targets: dict):
    """The test split's transcripts and metrics into ``folder``; returns (metrics, card, line)."""
    from training import reports

    private_dirs(folder)
    read = read_split(kind, model, card, test_set, device)
    outputs, references, words = read
    hypotheses = decode_split(card, outputs, words)
    metrics = transcript_report(clips.rows["clip"].iloc[test_index], references, hypotheses)
    phrases, readings = kind.held_out_problems(card, model, test_set, device, read)
    if phrases or readings:
        metrics["calibration"] = calibration_report(phrases, readings, card.input.posteriors)
    flat = {"wer": metrics["greedy"]["wer"], "cer": metrics["greedy"]["cer"],
            "sentence_accuracy": metrics["greedy"]["sentence_accuracy"]}
    for name in DECODINGS[1:]:
        if name in metrics:
            flat.update({f"wer_{name}": metrics[name]["wer"], f"cer_{name}": metrics[name]["cer"]})
    verdicts = {name: {"target": goal, "value": flat.get(name), "achieved":
                       flat.get(name) is not None and flat[name] <= goal}
                for name, goal in targets.items() if name in flat}
    calibrated = {f"{mode}_calibration_error": figures["calibrated"]["calibration_error"]
                  for mode, figures in metrics.get("calibration", {}).items() if mode != "calibration"}
    card = replace(card, targets=verdicts, metrics={
        **flat, "val_wer": history.best.get("val_wer"), "val_cer": history.best.get("val_cer"),
        "test_clips": len(references), **calibrated})
    if history.epochs:
        reports.plot_learning_curves(history.epochs, folder / "learning_curves.png", metric="wer")
    reports.write_json(folder / "transcripts.json", metrics["examples"])
    write_text_atomic(folder / "TRAINING_SUMMARY.md", summary_markdown(card, metrics, verdicts))
    text = (f"test WER {flat['wer']:.3f} greedy"
            + ("".join(f", {flat[f'wer_{name}']:.3f} {WITH[name]}"
                       for name in DECODINGS[1:] if f"wer_{name}" in flat))
            + f", CER {flat['cer']:.3f}, {len(references)} sentences")
    return metrics, card, text


def summary_markdown(card, metrics: dict, verdicts: dict, examples: int = 10) -> str:
    """The human-readable ``TRAINING_SUMMARY.md`` of a sentence reader."""
    lines = [f"# {card.name}", "", f"- kind: `{card.kind}`; alphabet: `{''.join(card.classes)}`",
             f"- data: {card.data.get('summary', '')}", "", "## Test", "",
             "| decoding | WER | CER | sentences right | n |", "|---|---|---|---|---|"]
    for name in DECODINGS:
        if name in metrics:
            m = metrics[name]
            lines.append(f"| {name} | {m['wer']:.3f} | {m['cer']:.3f} | "
                         f"{m['sentence_accuracy']:.3f} | {m['n']} |")
    if verdicts:
        lines += ["", "## Targets", ""]
        for name, verdict in verdicts.items():
            mark = "achieved" if verdict["achieved"] else "NOT achieved"
            lines.append(f"- {name} <= {verdict['target']}: {verdict['value']:.3f} -- {mark}")
    lines += calibration_markdown(metrics.get("calibration"))
    shown = [name for name in DECODINGS if name in metrics]
    lines += ["", f"## Most confused words ({shown[-1]})", "", "| said | read | times |",
              "|---|---|---|"]
    lines += [f"| {c['said']} | {c['read']} | {c['count']} |"
              for c in metrics[shown[-1]]["confused_words"]]
    lines += ["", "## Examples", "",
              "| clip | said | " + " | ".join(f"read ({name})" for name in shown) + " |",
              "|---|---|" + "---|" * len(shown)]
    lines += [f"| {e['clip']} | {e['reference']} | " + " | ".join(e[name] for name in shown) + " |"
              for e in metrics["examples"][:examples]]
    return "\n".join(lines) + "\n"


def calibration_markdown(report: dict | None) -> list[str]:
    """The reports' lines on the confidences (:func:`calibration_report`), none without."""
    if not report:
        return []
    fitted = report["calibration"]
    lines = ["", "## Confidences on the test split", "",
             (f"Fitted on {fitted['fitted_on'] or 'nothing (the defaults)'}: phrase temperature "
              f"{fitted['phrase_temperature']:.3g}, something-else bias "
              f"{fitted['other_bias']:.3g}, reading temperature "
              f"{fitted['sentence_temperature']:.3g} (training.reader_calibration)."), ""]
    if "phrases" in report:
        lines += [("| phrase lists | right answer | mean confidence | calibration error | NLL | "
                   "sure of a right phrase | sure when the phrase is not listed |"),
                  "|---|---|---|---|---|---|---|"]
        for name, m in report["phrases"].items():
            lines.append(f"| {name} ({m['lists']}) | {m['accuracy']:.3f} | {m['mean_confidence']:.3f} "
                         f"| {m['calibration_error']:.3f} | {m['nll']:.3f} | "
                         f"{m['sure_of_right_phrase']:.3f} | {m['sure_when_unlisted']:.3f} |")
        lines.append("")
    if "transcripts" in report:
        lines += ["| transcripts | read right | mean confidence | calibration error | log loss |",
                  "|---|---|---|---|---|"]
        for name, m in report["transcripts"].items():
            lines.append(f"| {name} ({m['sentences']}) | {m['accuracy']:.3f} | "
                         f"{m['mean_confidence']:.3f} | {m['calibration_error']:.3f} | "
                         f"{m['log_loss']:.3f} |")
    return lines


def read_phrases(value: str) -> tuple[str, ...]:
    """``--phrases``: a file with one phrase a line, else a comma-separated list."""
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else value.split(",")
    phrases = tuple(dict.fromkeys(p.strip() for p in lines if p.strip()))
    if not phrases:
        raise ValueError(f"--phrases {value!r}: no phrase in it; give a,b,c or a file of lines")
    return phrases


def evaluate_sentences(entry_path: Path, videos: Path, cache_dir: Path, out: Path,
                       on_event=None, workers: int = 2) -> dict:
    """WER and CER (each of :data:`DECODINGS` the entry has) of a sentence reader on every clip of ``videos``,
    the transcripts in ``out``; clips with characters the model cannot write are skipped."""
    from features.cache import FeatureCache
    from features.dataset import build_manifest
    from features.progress import stage_progress
    from training.data import load_dataset
    from training.decoding import encode
    from training.kinds import get_kind
    from training.registry import load_entry

    loaded = load_entry(entry_path)
    card, kind = loaded.card, get_kind(loaded.card.kind)
    kind.check_spec(card.input, f"registry entry {loaded.name} ({entry_path})")
    manifest = build_manifest(videos)
    if manifest.empty:
        raise ValueError(f"{videos}: no clips found")
    progress = stage_progress(on_event, "extract", len(manifest)) if on_event else None
    clips = load_dataset(manifest, FeatureCache(cache_dir), card.kind, card.input, workers, progress)
    keep, targets, skipped = [], [], dict(clips.failed)
    for i, (path, text) in enumerate(zip(clips.rows["path"], clips.rows["text"])):
        try:
            targets.append(encode(text, card.classes))
            keep.append(i)
        except ValueError as error:
            skipped[path] = str(error)
    if not keep:
        raise ValueError(f"{videos}: no clip {loaded.name} can be scored; {list(skipped.values())[:3]}")
    dataset = kind.dataset(clips.examples[keep], targets, card.input)
    references, hypotheses = transcripts(kind, loaded.model, card, dataset, loaded.device)
    return {"entry": loaded.name, "videos": str(videos), "skipped": skipped,
            **transcript_report(clips.rows["clip"].iloc[keep], references, hypotheses)}


def score_phrase_list(entry_path: Path, videos: Path, cache_dir: Path, phrases: tuple[str, ...],
                      on_event=None, workers: int = 2) -> dict:
    """Accuracy and top-3 of choosing each labelled clip's phrase among ``phrases`` by CTC
    scoring; clips whose transcript is not in the list are left out and counted."""
    from features.cache import FeatureCache
    from features.dataset import build_manifest
    from features.extract import extract_many
    from features.progress import stage_progress
    from recognizer.predictor import Predictor

    predictor = Predictor.from_entry(entry_path, phrases=phrases)
    wanted = {normalise_text(p): p for p in phrases}
    manifest = build_manifest(videos)
    rows = manifest[[normalise_text(t) in wanted for t in manifest["text"]]]
    if rows.empty:
        raise ValueError(f"{videos}: no clip says one of {list(phrases)}")
    cache = FeatureCache(cache_dir)
    progress = stage_progress(on_event, "extract", len(rows)) if on_event else None
    failed = extract_many([Path(p) for p in rows["path"]], cache, workers=workers,
                          on_progress=progress).failed
    hits, top3, confusions = [], [], Counter()
    for path, text in zip(rows["path"], rows["text"]):
        if Path(path) in failed:
            continue
        prediction = predictor.predict(cache.load(path, crops=predictor.needs_crops))
        said = wanted[normalise_text(text)]
        hits.append(prediction.phrase == said)
        top3.append(said in [p for p, _ in prediction.top3])
        if prediction.phrase != said:
            confusions[(said, prediction.phrase)] += 1
    return {"entry": predictor.name, "phrases": list(phrases), "n": len(hits),
            "accuracy": float(np.mean(hits)) if hits else float("nan"),
            "top3_accuracy": float(np.mean(top3)) if top3 else float("nan"),
            "left_out": int(len(manifest) - len(rows)), "failed": {str(k): v for k, v in failed.items()},
            "confused": [{"said": a, "chosen": b, "count": n} for (a, b), n in confusions.most_common(15)]}
