"""Few-shot learning curve on the 12 GRID words with the shipped sentence reader's encoder.

    python tests/benchmarks/few_shot_grid.py [--entry ENTRY] [--repeats 5] [--cnn-repeats 2]
                                             [--padding 4] [--no-cnn] [--no-dtw]
                                             [--validate] [--weight-priors P ...]

The 12 words (bin lay place set, blue green red white, again now please soon)
are cut (``--padding`` frames each side) from the sentences of the encoder's
*test* split only -- sentences it was never trained or tuned on. Those
sentences are halved at random: k samples per word are drawn from the first
half (the enrol pool), and every word clip of the second half (the test
clips) is classified. For each k in 1, 2, 3, 5, 10 (``--repeats`` draws) it
prints the mean test accuracy of:

- ``few_shot``: the kind itself (:func:`training.kinds.few_shot.enrol` on the
  k samples, calibration by leave-one-out on them, the entry's model on the
  test clips), with its mean confidence, NLL and expected calibration error;
- ``prototype_only``: the same without the CTC term;
- ``nearest``: the most similar single sample, same embedding;
- ``dtw``: the nearest sample by dynamic time warping over the encoder's
  per-frame outputs; ``dtw_features``: the same over the standardised lip
  features, no encoder (the issue's baseline: 0.53 from 1 sample, 0.73 from 5);
- ``landmark_cnn``: ``python -m training.run --model landmark_cnn`` on the k
  samples (cross-validated then fitted on all, as small data is), ``--cnn-repeats``
  draws;

and ``zero_shot``: phrase-list CTC scoring of the 12 words, no sample at all.
``loo_pool``: the temperature and CTC weight leave-one-out picks on the whole
enrol pool (the defaults of :mod:`training.prototypes`, chosen there and not on
the test clips). ``update_ms``: from keeping a sample (the 61st, k = 5) to the
updated entry being live: enrolment, the entry written, a Predictor loaded.

``--validate`` tunes instead: it reads only the enrol half's sentences and
halves them again, so the test half stays unseen. ``--weight-priors`` also
scores the kind with a pull of that strength on its CTC weight
(:func:`training.prototypes.calibrate`'s ``weight_prior``; the kind's is
``prototypes.CTC_WEIGHT_PRIOR``). With the reader that reads the mouth's appearance, 5
draws: a pull of 3 to 30 halves the NLL at k = 2 and 3 (0.20 to 0.09, 0.19 to 0.08)
and gains 0.1 point of accuracy, so the kind pulls with 3 (the landmark-only reader had
lost 0.4 to 0.6 points to it).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from features.cache import DEFAULT_CACHE_DIR, FeatureCache  # noqa: E402
from features.extract import extract_many, find_videos  # noqa: E402
from features.grid import import_grid  # noqa: E402
from live_sentences import split_sentences  # noqa: E402
from train_grid_words import WORDS  # noqa: E402
from training import prototypes  # noqa: E402

SHIPPED = ROOT / "models" / "assets" / "entries" / "grid-sentences-landmarks-dct8-s0-t2"
KS = (1, 2, 3, 5, 10)


def word_clips(sentences: list[Path], folder: Path, padding: int) -> list[tuple[str, str, Path]]:
    """(word, sentence id, clip) of the 12 words cut from ``sentences``."""
    for data in {video.parent.parent for video in sentences}:
        ids = [v.stem for v in sentences if v.parent.parent == data]
        import_grid(data, folder, words=WORDS, padding=padding, sentences=ids)
    clips = []
    for path in find_videos(folder):
        sidecar = json.loads(path.with_suffix(".json").read_text())
        clips.append((path.parent.name, str(sidecar.get("source_id") or sidecar.get("source")), path))
    return clips


def dtw_distance(query: np.ndarray, templates: list[np.ndarray]) -> np.ndarray:
    """(M,) DTW cost of ``query`` (T, D) against each template (T_m, D), cosine distance per
    frame pair, divided by T + T_m; vectorised over the templates."""
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-8)
    lengths = np.array([len(t) for t in templates])
    padded = np.zeros((len(templates), lengths.max(), query.shape[1]), np.float32)
    for m, t in enumerate(templates):
        padded[m, :len(t)] = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-8)
    cost = 1.0 - np.einsum("td,msd->mts", q, padded)          # (M, T, S)
    total = np.full((len(templates), len(q) + 1, padded.shape[1] + 1), np.inf)
    total[:, 0, 0] = 0.0
    for i in range(1, len(q) + 1):
        for j in range(1, padded.shape[1] + 1):
            best = np.minimum(np.minimum(total[:, i - 1, j], total[:, i, j - 1]), total[:, i - 1, j - 1])
            total[:, i, j] = cost[:, i - 1, j - 1] + best
    return total[np.arange(len(templates)), len(q), lengths] / (len(q) + lengths)


def calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top choice over equal-width confidence bins."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges, edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


class Encoded:
    """Every clip through the encoder once: raw examples, pooled embeddings, per-frame
    outputs, standardised features, the CTC term of the 12 words, the zero-shot answer."""

    def __init__(self, reader, clips, cache: FeatureCache):
        from training.kinds.few_shot import FewShot, FewShotConfig
        from training.kinds.landmark_ctc import KIND as READER

        texts = tuple(WORDS)
        probe = FewShot(FewShotConfig(reader=dict(reader.card.arch_args), num_classes=len(WORDS),
                                      samples=1, alphabet=tuple(reader.card.classes), texts=texts))
        probe.reader.load_state_dict(reader.model.state_dict())
        probe.eval()
        self.examples, self.frames, self.features, pooled, terms = [], [], [], [], []
        with torch.inference_mode():
            crops = READER.uses_crops(reader.card.input)
            for _, _, path in clips:
                clip = cache.load(path, crops=crops)
                example, _ = READER.example(clip, reader.card.input)
                batch = READER.clip_input(clip, reader.card.input, "cpu")
                vector, log_probs = probe.encode(batch)
                frames = int(batch.lengths[0])
                self.examples.append(example)
                self.frames.append(probe.reader.embed(batch)[0, :frames].numpy())
                self.features.append(batch.features[0, :, :frames].T.numpy())
                pooled.append(vector[0].numpy())
                terms.append(probe.phrase_terms(log_probs)[0])
        self.pooled, self.log_likelihoods = np.stack(pooled), np.stack(terms)
        self.zero_shot = self.log_likelihoods.argmax(1)

    def restrict(self, keep: np.ndarray) -> None:
        """Only the clips at positions ``keep``."""
        for name in ("examples", "frames", "features"):
            setattr(self, name, [getattr(self, name)[i] for i in keep])
        self.pooled, self.log_likelihoods = self.pooled[keep], self.log_likelihoods[keep]
        self.zero_shot = self.zero_shot[keep]


def few_shot_scores(encoded: Encoded, chosen: np.ndarray, owners: np.ndarray, test: np.ndarray,
                    labels: np.ndarray, weight: float | None,
                    weight_prior: float = prototypes.CTC_WEIGHT_PRIOR) -> dict:
    """The kind's math on the k samples ``chosen`` (``weight`` None: calibrated CTC weight,
    0: prototypes only), its accuracy and calibration on the ``test`` clips."""
    loo = prototypes.leave_one_out_similarities(encoded.pooled[chosen], owners, len(WORDS))
    term = prototypes.ctc_term(encoded.log_likelihoods, np.ones(len(WORDS), bool))
    weights = prototypes.CTC_WEIGHTS if weight is None else (weight,)
    fit = prototypes.calibrate(loo, term[chosen], owners, weights=weights, weight_prior=weight_prior)
    rows = prototypes.prototypes(encoded.pooled[chosen], owners, len(WORDS))
    logits = prototypes.logits(prototypes.similarities(encoded.pooled[test], rows), term[test],
                               fit.temperature, fit.ctc_weight)
    probs = np.exp(prototypes.log_softmax(logits))
    truth = labels[test]
    return {"accuracy": float((probs.argmax(1) == truth).mean()),
            "confidence": float(probs.max(1).mean()),
            "nll": float(-np.log(np.maximum(probs[np.arange(len(test)), truth], 1e-12)).mean()),
            "ece": calibration_error(probs, truth), "temperature": fit.temperature,
            "ctc_weight": fit.ctc_weight}


def check_kind_matches(reader, encoded: Encoded, chosen, owners, test, labels, expected: float) -> None:
    """The kind's real path (enrol, then the model on batches) gives the benchmark's figure."""
    from training.kinds.few_shot import collate_labelled, enrol
    from training.kinds.landmark_ctc import KIND as READER

    result = enrol(reader, [encoded.examples[i] for i in chosen], owners, tuple(WORDS))
    hits = 0
    with torch.inference_mode():
        for start in range(0, len(test), 64):
            part = test[start:start + 64]
            inputs, _ = collate_labelled([(encoded.examples[i], 0) for i in part])
            logits = result.model(READER.model_input(inputs, reader.card.input, reader.device))
            hits += int((logits.argmax(1).numpy() == labels[part]).sum())
    if abs(hits / len(test) - expected) > 0.01:
        raise AssertionError(f"the few_shot kind gives {hits / len(test):.4f}, its math {expected:.4f}")


def cnn_accuracy(picks: dict, clips, test_folder: Path, cache: FeatureCache, tmp: Path, run: int) -> float:
    """``landmark_cnn`` trained by training.run on the picked clips, accuracy on ``test_folder``."""
    from training.evaluate import evaluate_entry
    from training.run import main as train

    videos = tmp / f"cnn{run}"
    for word, chosen in picks.items():
        (videos / word).mkdir(parents=True)
        for i in chosen:
            path = clips[i][2]
            for suffix in (".mp4", ".json"):
                shutil.copy(path.with_suffix(suffix), videos / word)
    code = train(["--model", "landmark_cnn", "--videos", str(videos), "--cache", str(cache.root),
                  "--registry", str(tmp / "models"), "--runs", str(tmp / "runs"),
                  "--name", f"cnn{run}", "--no-progress"])
    if code != 0:
        raise RuntimeError(f"training.run landmark_cnn failed ({code}) on {videos}")
    _, _, predictions, _ = evaluate_entry(tmp / "models" / f"cnn{run}", test_folder, cache.root)
    return float((predictions.probs.argmax(1) == predictions.labels).mean())


def update_ms(reader, encoded: Encoded, chosen: np.ndarray, owners: np.ndarray, tmp: Path) -> float:
    """Median ms from keeping one more sample to a Predictor of the updated entry."""
    from recognizer.predictor import Predictor
    from training.card import Card
    from training.kinds.few_shot import enrol
    from training.registry import write_entry

    times = []
    for attempt in range(5):
        started = time.perf_counter()
        result = enrol(reader, [encoded.examples[i] for i in chosen], owners, tuple(WORDS))
        card = Card("few_shot", result.arch_args, tuple(WORDS), reader.card.input,
                    data={"extractor": reader.card.data.get("extractor")})
        entry = write_entry(tmp / "live", f"update{attempt}", result.model, card)
        Predictor.from_entry(entry, "cpu")
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times), 1)


def main() -> None:
    from training.registry import load_entry

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", type=Path, default=SHIPPED)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-repeats", type=int, default=2)
    parser.add_argument("--padding", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--no-cnn", action="store_true")
    parser.add_argument("--no-dtw", action="store_true")
    parser.add_argument("--validate", action="store_true",
                        help="tune, not report: only the enrol half's sentences, halved again "
                             "(the test half is not read)")
    parser.add_argument("--weight-priors", type=float, nargs="*", default=(),
                        help="also score the few-shot kind with these pulls on its CTC weight")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sentences = [video for video, _ in split_sentences(args.entry, "test")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = word_clips(sentences, tmp / "words", args.padding)
        cache = FeatureCache(args.cache)
        extract_many([p for _, _, p in clips], cache, workers=2)
        reader = load_entry(args.entry, "cpu")
        encoded = Encoded(reader, clips, cache)
        labels = np.array([WORDS.index(w) for w, _, _ in clips])
        groups = np.array([g for _, g, _ in clips])
        rng = np.random.default_rng(0)
        # A random half, not a sorted one: GRID ids begin with the command word's letter.
        ordered = list(rng.permutation(sorted(set(groups))))
        if args.validate:
            ordered = ordered[:len(ordered) // 2]
            keep = np.isin(groups, ordered)
            clips = [c for c, k in zip(clips, keep) if k]
            labels, groups = labels[keep], groups[keep]
            encoded.restrict(np.flatnonzero(keep))
        enrol_pool = np.isin(groups, ordered[:len(ordered) // 2])
        test = np.flatnonzero(~enrol_pool)
        test_folder = tmp / "test"
        for i in test:
            (test_folder / clips[i][0]).mkdir(parents=True, exist_ok=True)
            for suffix in (".mp4", ".json"):
                shutil.copy(clips[i][2].with_suffix(suffix), test_folder / clips[i][0])
        pool = np.flatnonzero(enrol_pool)
        pool_fit = prototypes.calibrate(
            prototypes.leave_one_out_similarities(encoded.pooled[pool], labels[pool], len(WORDS)),
            prototypes.ctc_term(encoded.log_likelihoods[pool], np.ones(len(WORDS), bool)), labels[pool])
        curve = {}
        fewest = min(int((enrol_pool & (labels == c)).sum()) for c in range(len(WORDS)))
        for k in (k for k in KS if k <= fewest):
            rows = {name: [] for name in ("few_shot", "prototype_only", "nearest", "dtw",
                                          "dtw_features", "landmark_cnn",
                                          *(f"few_shot_prior_{p:g}" for p in args.weight_priors))}
            extra_nll = {p: [] for p in args.weight_priors}
            calibration = []
            for repeat in range(args.repeats):
                picks = {w: rng.choice(np.flatnonzero(enrol_pool & (labels == c)), k, replace=False)
                         for c, w in enumerate(WORDS)}
                chosen = np.concatenate([picks[w] for w in WORDS])
                owners = labels[chosen]
                scored = few_shot_scores(encoded, chosen, owners, test, labels, None)
                if repeat == 0:
                    check_kind_matches(reader, encoded, chosen, owners, test, labels, scored["accuracy"])
                rows["few_shot"].append(scored["accuracy"])
                calibration.append(scored)
                rows["prototype_only"].append(
                    few_shot_scores(encoded, chosen, owners, test, labels, 0.0)["accuracy"])
                for prior in args.weight_priors:
                    pulled = few_shot_scores(encoded, chosen, owners, test, labels, None, prior)
                    rows[f"few_shot_prior_{prior:g}"].append(pulled["accuracy"])
                    extra_nll[prior].append(pulled["nll"])
                units = prototypes.unit_rows(encoded.pooled)
                nearest = owners[np.argmax(units[test] @ units[chosen].T, axis=1)]
                rows["nearest"].append(float((nearest == labels[test]).mean()))
                if not args.no_dtw:
                    for name, frames in (("dtw", encoded.frames), ("dtw_features", encoded.features)):
                        hits = sum(owners[int(np.argmin(dtw_distance(frames[i], [frames[j] for j in chosen])))]
                                   == labels[i] for i in test)
                        rows[name].append(hits / len(test))
                if not args.no_cnn and repeat < args.cnn_repeats:
                    rows["landmark_cnn"].append(cnn_accuracy(picks, clips, test_folder, cache, tmp,
                                                             k * 100 + repeat))
            curve[k] = {name: round(float(np.mean(v)), 4) for name, v in rows.items() if v}
            for prior, values in extra_nll.items():
                curve[k][f"few_shot_prior_{prior:g}_nll"] = round(float(np.mean(values)), 4)
            curve[k]["few_shot_calibration"] = {
                name: round(float(np.mean([c[name] for c in calibration])), 4)
                for name in ("confidence", "nll", "ece", "temperature", "ctc_weight")}
        chosen = np.concatenate([np.flatnonzero(enrol_pool & (labels == c))[:5] for c in range(len(WORDS))])
        chosen = np.append(chosen, np.flatnonzero(enrol_pool & (labels == 0))[5])
        live = update_ms(reader, encoded, chosen, labels[chosen], tmp)
    print(json.dumps({
        "benchmark": "few_shot_grid", "entry": args.entry.name, "words": len(WORDS),
        "clips": {"enrol_pool": int(enrol_pool.sum()), "test": int(len(test))},
        "sentences": {"enrol": len(ordered) // 2, "test": len(ordered) - len(ordered) // 2},
        "repeats": args.repeats, "cnn_repeats": 0 if args.no_cnn else args.cnn_repeats,
        "padding": args.padding,
        "zero_shot": round(float((encoded.zero_shot[test] == labels[test]).mean()), 4),
        "loo_pool": {"temperature": round(pool_fit.temperature, 4), "ctc_weight": pool_fit.ctc_weight,
                     "accuracy": round(pool_fit.accuracy, 4)},
        "accuracy": curve, "update_ms": live, "goal": {"1": 0.70, "5": 0.90},
    }))


if __name__ == "__main__":
    main()
