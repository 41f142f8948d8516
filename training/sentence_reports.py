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

from training.decoding import (BeamDecoder, align, char_error_rate, greedy_decode,
                               normalise_text, word_error_rate)


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


def transcripts(kind, model, card, dataset, device, lexicon=None, batch_size: int = 32):
    """References, greedy and (with ``lexicon``) lexicon beam-search hypotheses of a dataset."""
    from training.engine import Step

    step = Step(kind, card.classes, partial(kind.model_input, spec=card.input, device=device),
                nn.CTCLoss(zero_infinity=True), None, None, None, device, 0.0, False)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=kind.collate)
    outputs, references, _ = kind.log_probabilities(model, loader, step)
    greedy = [greedy_decode(lp, card.classes) for lp in outputs]
    beam = None
    if lexicon:
        decoder = BeamDecoder(card.classes, lexicon)
        beam = [decoder.decode(lp) for lp in outputs]
    return references, greedy, beam


def write_sentence_reports(kind, folder: Path, card, clips, test_index: np.ndarray, model,
                           test_set, device, history, targets: dict):
    """The test split's transcripts and metrics into ``folder``; returns (metrics, card, line)."""
    from training import reports

    folder.mkdir(parents=True, exist_ok=True)
    references, greedy, beam = transcripts(kind, model, card, test_set, device, card.input.lexicon)
    metrics = {"greedy": sentence_metrics(references, greedy)}
    if beam is not None:
        metrics["lexicon"] = sentence_metrics(references, beam)
    clip_names = list(clips.rows["clip"].iloc[test_index])
    metrics["examples"] = [{"clip": c, "reference": r, "greedy": g, **({"lexicon": b} if beam else {})}
                           for c, r, g, b in zip(clip_names, references, greedy,
                                                 beam or [None] * len(greedy))]
    flat = {"wer": metrics["greedy"]["wer"], "cer": metrics["greedy"]["cer"],
            "sentence_accuracy": metrics["greedy"]["sentence_accuracy"]}
    if beam is not None:
        flat.update(wer_lexicon=metrics["lexicon"]["wer"], cer_lexicon=metrics["lexicon"]["cer"])
    verdicts = {name: {"target": goal, "value": flat.get(name), "achieved":
                       flat.get(name) is not None and flat[name] <= goal}
                for name, goal in targets.items() if name in flat}
    card = replace(card, targets=verdicts, metrics={
        **flat, "val_wer": history.best.get("val_wer"), "val_cer": history.best.get("val_cer"),
        "test_clips": len(references)})
    if history.epochs:
        reports.plot_learning_curves(history.epochs, folder / "learning_curves.png", metric="wer")
    reports.write_json(folder / "transcripts.json", metrics["examples"])
    (folder / "TRAINING_SUMMARY.md").write_text(summary_markdown(card, metrics, verdicts),
                                                encoding="utf-8")
    best = flat.get("wer_lexicon", flat["wer"])
    text = (f"test WER {flat['wer']:.3f} greedy" + (f", {best:.3f} with the lexicon" if beam else "")
            + f", CER {flat['cer']:.3f}, {len(references)} sentences")
    return metrics, card, text


def summary_markdown(card, metrics: dict, verdicts: dict, examples: int = 10) -> str:
    """The human-readable ``TRAINING_SUMMARY.md`` of a sentence reader."""
    lines = [f"# {card.name}", "", f"- kind: `{card.kind}`; alphabet: `{''.join(card.classes)}`",
             f"- data: {card.data.get('summary', '')}", "", "## Test", "",
             "| decoding | WER | CER | sentences right | n |", "|---|---|---|---|---|"]
    for name in ("greedy", "lexicon"):
        if name in metrics:
            m = metrics[name]
            lines.append(f"| {name} | {m['wer']:.3f} | {m['cer']:.3f} | "
                         f"{m['sentence_accuracy']:.3f} | {m['n']} |")
    if verdicts:
        lines += ["", "## Targets", ""]
        for name, verdict in verdicts.items():
            mark = "achieved" if verdict["achieved"] else "NOT achieved"
            lines.append(f"- {name} <= {verdict['target']}: {verdict['value']:.3f} -- {mark}")
    best = metrics.get("lexicon", metrics["greedy"])
    lines += ["", "## Most confused words", "", "| said | read | times |", "|---|---|---|"]
    lines += [f"| {c['said']} | {c['read']} | {c['count']} |" for c in best["confused_words"]]
    lines += ["", "## Examples", "", "| clip | said | read (greedy) | read (lexicon) |",
              "|---|---|---|---|"]
    lines += [f"| {e['clip']} | {e['reference']} | {e['greedy']} | {e.get('lexicon', '')} |"
              for e in metrics["examples"][:examples]]
    return "\n".join(lines) + "\n"
