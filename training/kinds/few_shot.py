"""``few_shot``: phrases learnt from a few samples each, on a sentence reader's encoder.

Nothing is trained. Each sample is embedded by a ``landmark_ctc`` entry's
encoder (its per-frame outputs averaged over the clip) and a clip is named by
cosine similarity to each phrase's prototype (:mod:`training.prototypes`);
where the reader knows a phrase's words, its phrase-list CTC score joins in.
The temperature and CTC weight are fitted by leave-one-out on the samples,
so the probabilities mean what they say.

The entry is self-contained: its weights hold the encoder's weights and the
samples' embeddings, its card the encoder's input spec (the same features,
standardised with the encoder's statistics) and the calibration. After a
sample is kept, :func:`enrol` embeds every sample again (a few ms each) and
the entry is written anew: about 0.1 s for 60 samples. :func:`reader_path`
finds the encoder, :func:`few_shot_card` writes the card.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from features.cache import ClipFeatures
from features.text import spoken_text
from training import prototypes, registry
from training.card import Card, check_extractor
from training.decoding import encode, normalise_text, phrase_log_likelihoods
from training.kinds.classifier import ClassifierKind
from training.kinds.landmark_ctc import KIND as READER
from training.kinds.landmark_ctc import CTCInput, LandmarkCTC, LandmarkCTCConfig, collate
from training.metrics import top_k_accuracy
from training.transforms import resample_linear

READER_KIND = "landmark_ctc"
CURVE_CHANNELS = ("inner_mar", "mouth_width", "jawOpen", "inner_area")
CURVE_LENGTH = 32


@dataclass(frozen=True)
class FewShotConfig:
    """``reader``: the encoder's ``landmark_ctc`` arch args; ``samples``: embeddings
    stored; ``alphabet``: the reader's characters; ``texts``: per class, the words the
    reader scores by CTC ("" for a class it cannot, its words unknown to it);
    ``temperature`` and ``ctc_weight``: the calibration (:mod:`training.prototypes`)."""

    reader: dict
    num_classes: int
    samples: int
    alphabet: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    temperature: float = prototypes.DEFAULT_TEMPERATURE
    ctc_weight: float = 0.0

    def __post_init__(self):
        if self.texts and len(self.texts) != self.num_classes:
            raise ValueError(f"{len(self.texts)} texts for {self.num_classes} classes")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class FewShot(nn.Module):
    """:class:`~training.kinds.landmark_ctc.SequenceBatch` -> (N, K) logits: the reader's
    encoder, the samples' embeddings (``embeddings`` (S, D), ``owners`` (S,)) and the
    calibrated prototype-plus-CTC score."""

    def __init__(self, config: FewShotConfig):
        super().__init__()
        self.config = config
        self.reader = LandmarkCTC(LandmarkCTCConfig(**config.reader))
        width = 2 * self.reader.config.rnn_width
        # Random until enrolment fills them, as a fresh model's weights are. Made on the CPU
        # whatever the default device: on ``meta`` (the registry's check of an entry's weights,
        # which the live window runs) these ops load torch._dynamo and sympy, 120 MB.
        self.register_buffer("embeddings", torch.randn(config.samples, width, device="cpu"))
        self.register_buffer("owners", torch.arange(config.samples, device="cpu") % config.num_classes)
        self.scored = tuple(bool(t) for t in config.texts) or (False,) * config.num_classes

    def encode(self, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(N, D) mean encoder output per clip and each clip's (T, V) log-probabilities."""
        frames = self.reader.embed(batch)
        valid = (torch.arange(frames.shape[1], device=frames.device)
                 < batch.lengths.to(frames.device)[:, None])[..., None]
        pooled = (frames * valid).sum(1) / valid.sum(1).clamp_min(1)
        log_probs = F.log_softmax(self.reader.fc(frames).float(), dim=-1)
        return pooled.float(), [lp[:n] for lp, n in zip(log_probs, batch.lengths.tolist())]

    def embed(self, batch) -> torch.Tensor:
        return self.encode(batch)[0]

    def phrase_terms(self, log_probs: list[torch.Tensor]) -> np.ndarray:
        """(N, K) CTC log-likelihood of each class's words (0 for classes not scored)."""
        scores = np.zeros((len(log_probs), self.config.num_classes))
        texts = [t for t in self.config.texts if t]
        if texts:
            columns = [k for k, scored in enumerate(self.scored) if scored]
            for i, lp in enumerate(log_probs):
                scores[i, columns] = phrase_log_likelihoods(lp.cpu(), texts, self.config.alphabet)
        return scores

    def forward(self, batch) -> torch.Tensor:
        return self.scores(*self.encode(batch))

    def scores(self, pooled: torch.Tensor, log_probs: list[torch.Tensor]) -> torch.Tensor:
        """(N, K) logits of :meth:`encode`'s output."""
        rows = prototypes.prototypes(self.embeddings.cpu().numpy(), self.owners.cpu().numpy(),
                                     self.config.num_classes)
        sims = prototypes.similarities(pooled.cpu().numpy(), rows)
        term = prototypes.ctc_term(self.phrase_terms(log_probs), np.array(self.scored))
        out = prototypes.logits(sims, term, self.config.temperature, self.config.ctc_weight)
        return torch.as_tensor(out, dtype=torch.float32, device=pooled.device)


class LabelledSequences(Dataset):
    """(features (T, C), crops or None) raw examples with one class label each."""

    def __init__(self, examples, labels):
        self.examples, self.labels = examples, np.asarray(labels, np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.examples[index], int(self.labels[index])


def collate_labelled(items):
    """Padded inputs as :func:`landmark_ctc.collate` pads them, and a (N,) label tensor."""
    inputs, _ = collate([(example, []) for example, _ in items])
    return inputs, torch.tensor([label for _, label in items], dtype=torch.long)


@dataclass(frozen=True)
class Enrolment:
    """A fitted few-shot model with what leave-one-out said about its samples."""

    model: FewShot
    arch_args: dict
    calibration: prototypes.Calibration
    embeddings: np.ndarray
    texts: tuple[str, ...] = field(default=())


def scorable_text(text: str, reader_card) -> str:
    """The words of ``text`` if the reader can score them (every word in its lexicon and
    every character in its alphabet), else ""."""
    words = normalise_text(spoken_text(text))
    lexicon = set(reader_card.input.lexicon)
    if not words or not lexicon or any(w not in lexicon for w in words.split()):
        return ""
    try:
        encode(words, reader_card.classes)
    except ValueError:
        return ""
    return words


@torch.no_grad()
def enrol(reader, examples, labels: np.ndarray, texts: tuple[str, ...],
          batch_size: int = 32) -> Enrolment:
    """Embed ``examples`` (raw ``landmark_ctc`` examples of the reader's input spec) with
    ``reader`` (a loaded ``landmark_ctc`` entry), owned by ``labels`` (N,) in 0..K-1
    (``texts``: each class's words), and fit the calibration by leave-one-out."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("no sample to enrol: record at least one")
    scored = tuple(scorable_text(t, reader.card) for t in texts)
    args = {"reader": dict(reader.card.arch_args), "num_classes": len(texts),
            "samples": len(labels), "alphabet": tuple(reader.card.classes), "texts": scored}
    model = FewShot(FewShotConfig(**args))
    model.reader.load_state_dict(reader.model.state_dict())
    model.to(reader.device).eval()
    pooled, terms = [], []
    for start in range(0, len(labels), batch_size):
        inputs, _ = collate([(e, []) for e in examples[start:start + batch_size]])
        batch = READER.model_input(inputs, reader.card.input, reader.device)
        vectors, log_probs = model.encode(batch)
        pooled.append(vectors.cpu().numpy())
        terms.append(model.phrase_terms(log_probs))
    pooled, terms = np.concatenate(pooled), np.concatenate(terms)
    loo = prototypes.leave_one_out_similarities(pooled, labels, len(texts))
    calibration = prototypes.calibrate(loo, prototypes.ctc_term(terms, np.array(model.scored)), labels)
    args.update(temperature=calibration.temperature, ctc_weight=calibration.ctc_weight)
    model.config = FewShotConfig(**args)          # the same model, now calibrated
    model.embeddings.copy_(torch.from_numpy(pooled).to(model.embeddings.device))
    model.owners.copy_(torch.from_numpy(labels).to(model.owners.device))
    return Enrolment(model, args, calibration, pooled, scored)


def reader_path(root: str | Path, pretrained: str | None) -> Path:
    """The sentence reader a few-shot entry embeds with: ``pretrained`` (a folder, or an
    entry name of ``root``), else the active ``landmark_ctc`` entry, else the newest one."""
    if pretrained:
        path = Path(pretrained)
        for folder in (root, registry.DEFAULT_ROOT):     # the app's shipped readers too
            if path.is_dir():
                break
            try:
                path = registry.entry_path(folder, pretrained)
            except (FileNotFoundError, ValueError):
                continue
        if not path.is_dir():
            known = sorted({e.name for folder in (root, registry.DEFAULT_ROOT)
                            for e in registry.list_entries(folder) if e.card.kind == READER_KIND})
            raise FileNotFoundError(f"--pretrained {pretrained!r}: no such folder or sentence "
                                    f"reader entry; the sentence readers here: {known or 'none'} "
                                    "(python -m training.registry list)")
    else:
        path = registry.active_entry(root, READER_KIND)
        if path is None:
            # A registry of one's own (--registry) still has the readers that ship with the app.
            readers = [e.path for folder in (root, registry.DEFAULT_ROOT)
                       for e in registry.list_entries(folder) if e.card.kind == READER_KIND]
            if not readers:
                raise FileNotFoundError(f"{root}: no sentence reader (landmark_ctc entry) to embed "
                                        "samples with; train one or give --pretrained ENTRY")
            path = readers[-1]
    card = registry.read_card(path)
    if card.kind != READER_KIND:
        raise ValueError(f"{path}: a {card.kind} entry; few_shot embeds with a {READER_KIND} entry")
    return path


def load_reader(path: Path, device="cpu"):
    """The sentence reader at ``path`` (:func:`reader_path`), refused if it reads other lip
    features than this app extracts."""
    reader = registry.load_entry(path, device)
    check_extractor(reader.card, f"sentence reader {reader.name} ({reader.path})")
    return reader


def few_shot_card(reader, result: Enrolment, classes: tuple[str, ...], labels: np.ndarray,
                  data: dict, started: float, name: str = "") -> Card:
    """The card of an enrolment: its encoder, calibration and leave-one-out figures."""
    calibration = result.calibration
    return Card("few_shot", result.arch_args, tuple(classes), reader.card.input, name=name,
                data={"extractor": reader.card.data.get("extractor"), **data},
                training={"method": "prototype", "encoder": reader.name,
                          "encoder_created_at": reader.card.created_at, "epochs_run": 0,
                          "seconds": round(time.monotonic() - started, 2),
                          "calibration": {
                              "temperature": calibration.temperature,
                              "ctc_weight": calibration.ctc_weight,
                              "by": ("leave-one-out" if calibration.fitted
                                     else "default (no phrase has 2 samples yet)"),
                              "scored_by_ctc": [t for t in result.texts if t]}},
                metrics=loo_metrics(classes, labels, result))


def loo_metrics(classes: tuple[str, ...], labels: np.ndarray, result: Enrolment) -> dict:
    """Leave-one-out accuracy and top-3 over the samples it can test, and per phrase its
    samples and the accuracy to expect (None: it needs a second sample to tell)."""
    calibration = result.calibration
    tested = calibration.evaluated
    counts = np.bincount(labels, minlength=len(classes))
    per_class = {c: {"samples": int(counts[k]),
                     "expected_accuracy": (None if np.isnan(calibration.per_class[k])
                                           else round(float(calibration.per_class[k]), 4))}
                 for k, c in enumerate(classes)}
    metrics = {"evaluation": "leave-one-out", "samples": int(len(labels)), "tested": int(len(tested)),
               "accuracy": calibration.accuracy, "top3_accuracy": None, "per_class": per_class}
    if len(tested):
        metrics["top3_accuracy"] = top_k_accuracy(calibration.probabilities[tested],
                                                  labels[tested], 3)
    return metrics


class FewShotKind(ClassifierKind):
    name = "few_shot"
    label = "Few-shot phrases"
    arch_config = FewShotConfig
    input_spec = CTCInput
    trains_by_epochs = False

    collate = staticmethod(collate_labelled)

    def build_model(self, config: FewShotConfig) -> nn.Module:
        return FewShot(config)

    def spec_from(self, data) -> CTCInput:
        """A reader's spec; an enrolled entry takes its encoder's (:func:`enrol`)."""
        return READER.spec_from(data)

    def fit_spec(self, spec: CTCInput, clips, index) -> CTCInput:
        return READER.fit_spec(spec, clips, index)

    def train_arch_args(self, config, clips) -> dict:
        """A fresh, unenrolled model's arch args (the model kind contract builds one); an
        enrolled entry's come from :func:`enrol`."""
        reader = READER.train_arch_args(config, clips)
        return {"reader": reader, "num_classes": len(clips.classes), "samples": len(clips.labels),
                "alphabet": READER.output_classes(clips)}

    def uses_crops(self, spec: CTCInput) -> bool:
        return READER.uses_crops(spec)

    def example(self, clip: ClipFeatures, spec: CTCInput):
        return READER.example(clip, spec)

    def check_spec(self, spec: CTCInput, where: str) -> None:
        READER.check_spec(spec, where)

    def dataset(self, examples, labels, spec, augment=None) -> Dataset:
        return LabelledSequences(examples, labels)

    def calibrate(self, card, model, val_set, device):
        """Unchanged: enrolment calibrates by leave-one-out (:func:`enrol`), in the model."""
        return card

    def logits_and_embeddings(self, model, inputs):
        pooled, log_probs = model.encode(inputs)
        return model.scores(pooled, log_probs), pooled

    def model_input(self, batch, spec: CTCInput, device):
        return READER.model_input(batch, spec, device)

    def clip_input(self, clip: ClipFeatures, spec: CTCInput, device):
        return READER.clip_input(clip, spec, device)

    def class_curves(self, examples, names):
        shown = [n for n in CURVE_CHANNELS if n in names]
        columns = [names.index(n) for n in shown]
        curves = [resample_linear(features, CURVE_LENGTH)[:, columns].T for features, _ in examples]
        return np.stack(curves) if curves else np.zeros((0, len(shown), CURVE_LENGTH)), shown

    def preview_frames(self, example, names):
        from training.kinds.landmark_cnn import KIND as landmark_cnn

        return landmark_cnn.preview_frames(example[0].T, names)


KIND = FewShotKind()
