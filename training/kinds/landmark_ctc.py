"""``landmark_ctc``: a sentence reader, CTC over characters on the lip features (LipNet-style).

A clip is read at its own length, frame by frame: the per-frame features plus
velocities, standardised with the training clips' statistics (optionally
relative to the clip's own rest first), go through a temporal convolution
front-end and a bidirectional GRU or LSTM to one distribution over the
characters plus the CTC blank per frame. With ``inputs: crops`` or ``both``,
the grayscale mouth crops go through a small spatio-temporal front-end (3-D
convolutions, stride 1 in time, as LipNet's) and are joined per frame.
With ``word_frames`` > 0, training also asks a second head to name the word
each frame belongs to, where the clips' word timings are known (GRID's
alignments): the encoder learns where words lie, which CTC alone has to find,
and the beam search's readings are weighed by how well their words align with
the head's frames.

The card's ``classes`` are the characters (the alphabet, from the training
transcripts); :mod:`training.decoding` turns the per-frame log-probabilities
into text, or scores a list of candidate phrases.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.utils.data import Dataset, Sampler

from features.cache import ClipFeatures
from training.decoding import SPACE, alphabet_of, encode, normalise_text
from training.kinds.base import ModelKind
from training.language_model import ClassBigram, fit_class_bigram
from training.reader_calibration import Calibration
from training.transforms import (MIN_STD, Standardises, check_groups, check_live_channels,
                                 frame_channels, item_rng, mirror, mirror_plan, mouth_crops,
                                 resample_linear, resample_nearest, resize_crops,
                                 rest_statistics)

INPUTS = ("landmarks", "crops", "both")
RELATIVE = ("none", "clip")


@dataclass(frozen=True)
class LandmarkCTCConfig:
    """The sentence reader's architecture.

    ``in_channels``: landmark channels per frame (0 with ``inputs: crops``);
    ``num_symbols``: characters plus the blank; ``conv_width`` / ``conv_layers``
    / ``kernel_size``: the temporal front-end (stride 1, so one output per
    frame); ``rnn``: ``gru`` or ``lstm``, ``rnn_layers`` deep, ``rnn_width``
    per direction; ``crop_size``: side of the crops the 3-D front-end takes,
    ``crop_width``: its channels. ``word_frames``: weight of an auxiliary loss in
    training, the cross-entropy of a second head naming each frame's word (one of
    ``words``, or none between words) where the clip's word timings are known; reading
    weighs each beam-search reading by its alignment to the head's frames
    (:func:`training.decoding.word_alignment_scores`).
    """

    in_channels: int
    num_symbols: int
    inputs: str = "landmarks"
    conv_width: int = 128
    conv_layers: int = 1
    kernel_size: int = 5
    rnn: str = "gru"
    rnn_layers: int = 2
    rnn_width: int = 128
    dropout: float = 0.1
    crop_size: int = 48
    crop_width: int = 32
    word_frames: float = 0.0
    words: int = 0

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs {self.inputs!r}: choose one of {INPUTS}")
        if self.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn {self.rnn!r}: choose gru or lstm")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.word_frames < 0:
            raise ValueError(f"word_frames is a loss weight, >= 0; got {self.word_frames}")


class SequenceBatch(NamedTuple):
    """A padded batch: ``features`` (N, C, T) float32 (C may be 0), ``lengths`` (N,) int64
    frames per clip, ``crops`` (N, T, S, S) float32 in [0, 1] or an empty tensor."""

    features: torch.Tensor
    lengths: torch.Tensor
    crops: torch.Tensor


class CropFrontEnd(nn.Module):
    """(N, T, S, S) mouth crops -> (N, width * 3, T): three 3-D conv blocks, stride 1 in
    time and 2 in space, then the spatial mean."""

    def __init__(self, width: int):
        super().__init__()
        channels = (1, width, 2 * width, 3 * width)
        blocks = []
        for a, b in zip(channels, channels[1:]):
            blocks += [nn.Conv3d(a, b, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False),
                       nn.BatchNorm3d(b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*blocks)
        self.out_channels = channels[-1]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.body(crops[:, None]).mean(dim=(3, 4))


def bidirectional_padded(encoder: nn.RNNBase, directions: tuple[nn.RNNBase, ...],
                         x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, T, 2 * hidden) outputs of the bidirectional ``encoder`` over the right-padded
    ``x`` (N, T, C) of ``lengths``, zero past each length: what it gives the packed
    sequence, computed without packing (a quarter faster to train on a CPU: 152 against
    203 ms for the shipped reader's encoder, 16 clips of 20 to 82 frames, forward and back).

    Each layer runs its two directions one at a time through a weightless one-layer,
    one-direction copy (``directions``: one for the first layer's input width, one for
    the later layers'), the backward one on each clip reversed within its own length,
    so padding never comes before a clip's frames in either direction. A batch without
    padding (one clip, as the app reads) goes through the encoder whole.
    """
    if bool((lengths == x.shape[1]).all()):
        return encoder(x)[0]
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    within = lengths.to(x.device)[:, None]
    backward = torch.where(steps < within, within - 1 - steps, steps)[:, :, None]
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if encoder.bias else 2]

    def run(layer: int, suffix: str, inputs: torch.Tensor) -> torch.Tensor:
        weights = {f"{n}_l0": getattr(encoder, f"{n}_l{layer}{suffix}") for n in names}
        return functional_call(directions[min(layer, 1)], weights, (inputs,))[0]

    def reverse(frames: torch.Tensor) -> torch.Tensor:   # within each clip's length
        return frames.gather(1, backward.expand(-1, -1, frames.shape[2]))

    out = x
    for layer in range(encoder.num_layers):
        if layer:
            out = F.dropout(out, encoder.dropout, encoder.training)
        out = torch.cat([run(layer, "", out), reverse(run(layer, "_reverse", reverse(out)))], dim=2)
    return out * (steps < within)[:, :, None]


class LandmarkCTC(nn.Module):
    """:class:`SequenceBatch` -> (N, T, num_symbols) log-probabilities (and lengths)."""

    def __init__(self, config: LandmarkCTCConfig):
        super().__init__()
        self.config = config
        width = 0
        if config.inputs != "crops":
            layers, channels = [], config.in_channels
            for _ in range(config.conv_layers):
                layers += [nn.Conv1d(channels, config.conv_width, config.kernel_size,
                                     padding=config.kernel_size // 2, bias=False),
                           nn.BatchNorm1d(config.conv_width), nn.ReLU(inplace=True),
                           nn.Dropout(config.dropout)]
                channels = config.conv_width
            self.landmarks = nn.Sequential(*layers)
            width += channels
        if config.inputs != "landmarks":
            self.crops = CropFrontEnd(config.crop_width)
            width += self.crops.out_channels
        recurrent = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.encoder = recurrent(width, config.rnn_width, num_layers=config.rnn_layers,
                                 batch_first=True, bidirectional=True,
                                 dropout=config.dropout if config.rnn_layers > 1 else 0.0)
        # One direction of one layer, weightless: the encoder's weights run through it.
        self._directions = tuple(recurrent(size, config.rnn_width, batch_first=True, device="meta")
                                 for size in (width, 2 * config.rnn_width)[:config.rnn_layers])
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(2 * config.rnn_width, config.num_symbols)
        self.word_head = (nn.Linear(2 * config.rnn_width, config.words + 1)
                          if config.word_frames > 0 and config.words else None)

    def embed(self, batch: SequenceBatch) -> torch.Tensor:
        """(N, T, 2 * rnn_width) per-frame encoder outputs (zero past each clip's length)."""
        parts = []
        if self.config.inputs != "crops":
            parts.append(self.landmarks(batch.features))
        if self.config.inputs != "landmarks":
            parts.append(self.crops(batch.crops))
        x = torch.cat(parts, dim=1).transpose(1, 2)
        return bidirectional_padded(self.encoder, self._directions, x, batch.lengths)

    def forward(self, batch: SequenceBatch, words: bool = False):
        """(N, T, num_symbols) log-probabilities; with ``words`` also the word head's
        (N, T, words + 1) log-probabilities (None when the model has no word head)."""
        hidden = self.dropout(self.embed(batch))
        log_probs = F.log_softmax(self.fc(hidden).float(), dim=-1)
        if not words:
            return log_probs
        return log_probs, (None if self.word_head is None
                           else F.log_softmax(self.word_head(hidden).float(), dim=-1))


@dataclass(frozen=True)
class CTCInput(Standardises):
    """What the sentence reader is fed (the card's ``input``).

    ``inputs``: landmarks, crops or both; ``velocities`` / ``max_gap`` as for
    the landmark classifier; ``relative``: ``none``, or ``clip`` (each channel
    minus the clip's rest level, divided by its rest spread, before
    standardising); ``appearance``: k > 0 adds the mouth's appearance to the landmark
    channels, k x k DCT coefficients of its crop a frame
    (:func:`training.transforms.frame_channels`); ``feature_names``, ``mean``, ``std``: the
    landmark channels and their training statistics; ``crop_size``: side the crops are
    resized to; ``lexicon``: the words of the training transcripts, for decoding;
    ``language_model``: their word-class bigram (:meth:`ClassBigram.to_json`), empty in
    entries trained before it; ``leave_out``: the feature groups left out
    (:data:`features.frame_features.FEATURE_GROUPS`); ``head_words``: the word head's
    classes after "none" (:func:`timed_vocabulary`), empty in entries trained before it;
    ``calibration``: its posteriors' calibration on the validation clips
    (:meth:`training.reader_calibration.Calibration.to_json`), empty (the defaults) in
    entries trained before it.
    """

    inputs: str
    velocities: bool
    max_gap: int
    relative: str
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_size: int
    lexicon: tuple[str, ...]
    appearance: int = 0
    leave_out: tuple[str, ...] = ()
    language_model: dict = field(default_factory=dict)
    head_words: tuple[str, ...] = ()
    calibration: dict = field(default_factory=dict)

    @cached_property
    def word_model(self) -> ClassBigram | None:
        """The training transcripts' :class:`ClassBigram`, None when the card has none."""
        return ClassBigram.from_json(self.language_model) if self.language_model else None

    @cached_property
    def posteriors(self) -> Calibration:
        """The card's :class:`Calibration` (the defaults when it has none)."""
        return Calibration.from_json(self.calibration)


def clip_frames(clip: ClipFeatures, spec: CTCInput) -> tuple[np.ndarray, np.ndarray | None, tuple]:
    """One clip at its own length: (T, C) float32 features (gaps filled, velocities,
    relative to rest if asked), (T, S, S) uint8 crops or None, and the C channel names.

    Every frame is kept (frames without a face read as zeros), so frame ``i`` of
    the example is frame ``i`` of the video and word timings stay valid.
    """
    if not clip.valid.any():
        raise ValueError("no frame with a face")
    span = slice(0, len(clip.valid))
    features, names = np.zeros((span.stop - span.start, 0), np.float32), ()
    if spec.inputs != "crops":
        matrix, mask, names = frame_channels(clip, max_gap=spec.max_gap,
                                             velocities=spec.velocities,
                                             appearance=spec.appearance,
                                             leave_out=spec.leave_out)
        features = matrix[span]
        if spec.relative == "clip":
            level, spread = rest_statistics(features, tuple(names))
            features = (features - level) / spread
    crops = None
    if spec.inputs != "landmarks":
        crops = resize_crops(mouth_crops(clip)[span], spec.crop_size)
    return features.astype(np.float32), crops, tuple(names)


class SentenceTarget(NamedTuple):
    """What a sentence clip says: its ``symbols``, and when its words' frames are known
    (GRID's alignments), per word (symbols, first frame, frame after the last, its
    number in the word vocabulary from 1)."""

    symbols: list[int]
    words: tuple[tuple[list[int], int, int, int], ...] = ()
    space: int = 0

    def frame_words(self, length: int) -> np.ndarray | None:
        """(length,) int64 the word each frame belongs to (0 between words), None
        without timings."""
        if not self.words:
            return None
        labels = np.zeros(length, np.int64)
        for _, start, stop, word in self.words:
            labels[max(0, start):max(0, min(length, stop))] = word
        return labels


def _timings(words) -> list:
    """A sidecar's ``words`` as [(word, start, stop), ...], [] when absent or malformed."""
    if isinstance(words, (list, tuple)) and words and all(len(w) == 3 for w in words):
        return [(normalise_text(str(w)), int(a), int(b)) for w, a, b in words]
    return []


def timed_vocabulary(all_words) -> tuple[str, ...]:
    """The distinct words of the sidecars' ``words`` timings (one entry per clip): the
    word head's classes."""
    return tuple(sorted({w for words in all_words for w, _, _ in _timings(words)}))


def sentence_target(text: str, words, classes, vocabulary: tuple[str, ...] = ()) -> SentenceTarget:
    """The :class:`SentenceTarget` of a transcript and its sidecar's ``words`` timings
    (``[[word, start, end], ...]``, or anything else for none); ``vocabulary`` numbers the
    words (:func:`timed_vocabulary`; a word not in it counts as none)."""
    number = {w: i + 1 for i, w in enumerate(vocabulary)}
    timed = tuple((encode(w, classes), a, b, number.get(w, 0)) for w, a, b in _timings(words))
    return SentenceTarget(encode(text, classes), timed, classes.index(SPACE) + 1)


def draw_run(target: SentenceTarget, word_crop: float, rng) -> tuple[int, int] | None:
    """With probability ``word_crop``, where ``target``'s word timings are known, a run of
    its words to read alone: (first, last), the first uniform, the last uniform from the
    first on; else None, the whole clip."""
    if not (target.words and rng.random() < word_crop):
        return None
    first = int(rng.integers(0, len(target.words)))
    return first, int(rng.integers(first, len(target.words)))


def run_span(target: SentenceTarget, run: tuple[int, int], length: int, before: int,
             after: int) -> slice:
    """The frames of the run of words ``run`` (first, last) with ``before`` and ``after``
    frames around it, within the clip's ``length``."""
    return slice(max(0, target.words[run[0]][1] - before),
                 min(length, target.words[run[1]][2] + after))


class LengthBatches(Sampler):
    """A sentence reader's training batches, each of clips of like length.

    Every epoch each clip is drawn whole or as a run of its words (:func:`draw_run`, the
    draw the dataset would make with its ``augment.word_crop``); the clips are shuffled, dealt into groups of ``group`` batches, sorted
    by length within each group and cut into batches, and the batches shuffled. A
    recurrent encoder steps through a batch's longest clip, so a batch of word runs padded
    to a whole sentence costs a sentence: in groups of 8 the shipped reader's 130 epochs
    took 445 s against 765 s (tests/benchmarks/train_grid_sentences.py, each beside
    another run on 2 cores; validation WER greedy 0.131 and 0.115 against 0.117 and 0.115
    over two training seeds), which buys the epochs that read better.

    Yields lists of (index, run or None) keys of :class:`SentenceDataset`; drops the
    last, short batch as the plain loader does, and under torchrun gives process
    ``rank`` every ``world``-th batch. Draws from torch's generator, which the training
    loop seeds every epoch, so each epoch's batches are the same in every process and
    in a resumed run.
    """

    def __init__(self, dataset: "SentenceDataset", batch_size: int, group: int,
                 rank: int = 0, world: int = 1):
        if group < 1 or batch_size < 1:
            raise ValueError(f"length batches need group >= 1 and batch_size >= 1, "
                             f"got {group} and {batch_size}")
        self.dataset, self.batch_size, self.group = dataset, batch_size, group
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return max(1, len(self.dataset) // self.batch_size // self.world)

    def __iter__(self):
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
        augment = self.dataset.augment
        keys, lengths = [], []
        for index in rng.permutation(len(self.dataset)):
            target = self.dataset.targets[index]
            length = len(self.dataset.examples[index][0])
            run = draw_run(target, augment.word_crop if augment else 0.0, rng)
            if run:                  # 2 frames each side: the mean of the dataset's 0 to 4
                span = run_span(target, run, length, 2, 2)
                length = span.stop - span.start
            keys.append((int(index), run))
            lengths.append(length)
        size = self.group * self.batch_size
        batches = []
        for start in range(0, len(keys), size):
            order = start + np.argsort(lengths[start:start + size], kind="stable")
            batches += [[keys[i] for i in order[b:b + self.batch_size]]
                        for b in range(0, len(order), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size] or batches[:1]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        need = len(self) * self.world          # as many for every process
        batches = (batches * need)[:need]
        return iter(batches[self.rank::self.world])


class SentenceDataset(Dataset):
    """(features (T, C), crops (T, S, S) or None) raw examples with their symbol targets.

    ``augment`` (training.config.AugmentConfig) uses ``word_crop`` (probability of
    reading only a run of whole words, cut with up to 4 frames around them, where
    word timings are known: the model learns to read a phrase without the
    sentence around it), ``speed`` (a uniform factor in 1 +- speed),
    ``time_mask`` (one span of up to that fraction of the frames set to the mean),
    ``noise`` (in standard deviations), ``mirror`` (probability; left and right
    lip points swap, crops flip) and ``appearance_drop`` (probability that the mouth's
    appearance channels, and their velocities, read as their training mean).
    """

    def __init__(self, examples, targets, spec: CTCInput, augment=None):
        self.examples, self.spec, self.augment = examples, spec, augment
        self.targets = [t if isinstance(t, SentenceTarget) else SentenceTarget(list(t))
                        for t in targets]
        self.plan = mirror_plan(tuple(spec.feature_names))
        self.appearance = np.array([i for i, name in enumerate(spec.feature_names)
                                    if name.removeprefix("d_").startswith("dct")], np.int64)
        self.std = np.asarray(spec.std, np.float32)
        self.mean = np.asarray(spec.mean, np.float32)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key):
        """Item ``key``: an index, or (index, run) as :class:`LengthBatches` deals them, run
        being the (first, last) word to read or None for the whole clip."""
        dealt = isinstance(key, tuple)
        index, run = key if dealt else (key, None)
        features, crops = self.examples[index]
        target = self.targets[index]
        symbols, words = target.symbols, target.frame_words(len(features))
        if self.augment is not None:
            rng = item_rng()
            if not dealt:
                run = draw_run(target, self.augment.word_crop, rng)
            if run:
                span, symbols = self._word_crop(len(features), target, run, rng)
                features, words = features[span], words[span]
                crops = None if crops is None else crops[span]
            features, crops = self._augment(features, crops, rng)
            if words is not None:   # follow a speed change
                words = resample_nearest(words, len(features))
        return (features, crops), (symbols, words)

    def _word_crop(self, length: int, target: SentenceTarget, run: tuple[int, int],
                   rng) -> tuple[slice, list[int]]:
        """The run of whole words ``run`` (first, last) with up to 4 frames around them:
        its frames and symbols."""
        span = run_span(target, run, length, int(rng.integers(0, 5)), int(rng.integers(0, 5)))
        symbols = []
        for word, *_ in target.words[run[0]:run[1] + 1]:
            symbols += ([target.space] if symbols else []) + word
        return span, symbols

    def _augment(self, features, crops, rng):
        config = self.augment
        if rng.random() < config.mirror:
            if features.shape[1]:
                features = mirror(features.T, self.plan).T
            if crops is not None:
                crops = crops[:, :, ::-1]
        if config.speed > 0:
            length = max(2, round(len(features) / (1.0 + rng.uniform(-config.speed, config.speed))))
            features = resample_linear(features, length)
            crops = None if crops is None else resample_nearest(crops, length)
        if config.time_mask > 0 and len(features) > 4:
            width = int(rng.integers(0, int(config.time_mask * len(features)) + 1))
            start = int(rng.integers(0, len(features) - width + 1))
            features = features.copy()
            if features.shape[1]:
                features[start:start + width] = self.mean
            if crops is not None and width:
                crops = crops.copy()
                crops[start:start + width] = crops.mean().astype(np.uint8)
        if config.noise > 0 and features.shape[1]:
            features = features + rng.normal(0, config.noise, features.shape) * self.std
        if len(self.appearance) and rng.random() < config.appearance_drop:
            features = features.copy()
            features[:, self.appearance] = self.mean[self.appearance]
        return np.ascontiguousarray(features, np.float32), crops


def collate(items) -> tuple[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Pad a list of ((features, crops), target) items, a target being symbols or
    (symbols, per-frame words or None): inputs (features (N, T, C), lengths (N,), crops
    (N, T, S, S) uint8 or empty), targets (flat symbols, lengths, (N, T) frame words,
    -1 where unknown)."""
    inputs, targets = zip(*items)
    targets = [t if isinstance(t, tuple) else (t, None) for t in targets]
    lengths = torch.tensor([len(f) for f, _ in inputs], dtype=torch.long)
    longest, channels = int(lengths.max()), inputs[0][0].shape[1]
    features = torch.zeros(len(inputs), longest, channels)
    words = torch.full((len(inputs), longest), -1, dtype=torch.long)
    crops = torch.zeros(0, dtype=torch.uint8)
    if inputs[0][1] is not None:
        size = inputs[0][1].shape[1]
        crops = torch.zeros(len(inputs), longest, size, size, dtype=torch.uint8)
    for i, ((f, c), (_, w)) in enumerate(zip(inputs, targets)):
        features[i, :len(f)] = torch.from_numpy(np.ascontiguousarray(f))
        if c is not None:
            crops[i, :len(c)] = torch.from_numpy(np.ascontiguousarray(c))
        if w is not None:
            words[i, :len(w)] = torch.from_numpy(w)
    flat = torch.tensor([s for t, _ in targets for s in t], dtype=torch.long)
    return (features, lengths, crops), (flat, torch.tensor([len(t) for t, _ in targets]), words)


class LandmarkCTCKind(ModelKind):
    name = "landmark_ctc"
    label = "Sentence reader (CTC)"
    arch_config = LandmarkCTCConfig
    input_spec = CTCInput
    default_split = "sentence"
    reads_sentences = True

    collate = staticmethod(collate)

    def build_model(self, config: LandmarkCTCConfig) -> nn.Module:
        return LandmarkCTC(config)

    def train_arch_args(self, config, clips) -> dict:
        inputs = config.arch.get("inputs", config.data.inputs)
        words = len(timed_vocabulary(self._timings(clips))) if config.arch.get("word_frames") else 0
        return {"in_channels": len(clips.names), "num_symbols": len(self.output_classes(clips)) + 1,
                "inputs": inputs, "crop_size": config.data.crop_size, "words": words,
                **config.arch}

    def spec_from(self, data) -> CTCInput:
        if data.appearance and data.inputs == "crops":
            raise ValueError("appearance adds to the landmark channels, which inputs: crops has "
                             "none of; use inputs: landmarks or both, or appearance: 0")
        return CTCInput(data.inputs, data.velocities, max_gap=3, relative=data.relative,
                        feature_names=(), mean=(), std=(), crop_size=data.crop_size, lexicon=(),
                        appearance=data.appearance, leave_out=check_groups(data.leave_out))

    def uses_crops(self, spec: CTCInput) -> bool:
        return spec.inputs != "landmarks" or spec.appearance > 0

    def example(self, clip: ClipFeatures, spec: CTCInput):
        features, crops, names = clip_frames(clip, spec)
        return (features, crops), names

    def output_classes(self, clips) -> tuple[str, ...]:
        """The alphabet of the clips' transcripts: the model's output symbols."""
        return alphabet_of(clips.rows["text"])

    def fit_spec(self, spec: CTCInput, clips, index) -> CTCInput:
        texts = [normalise_text(text) for text in clips.rows["text"].iloc[index]]
        words = sorted({w for text in texts for w in text.split()})
        spec = replace(spec, lexicon=tuple(words), language_model=fit_class_bigram(texts).to_json(),
                       head_words=timed_vocabulary(self._timings(clips)))
        if not clips.names:
            return spec
        frames = np.concatenate([features for features, _ in clips.examples[index]])
        if not np.isfinite(frames).all():
            raise ValueError("training features hold NaN or inf; check the feature cache")
        return replace(spec, feature_names=tuple(clips.names), mean=tuple(frames.mean(0).tolist()),
                       std=tuple(np.maximum(frames.std(0), MIN_STD).tolist()))

    def check_spec(self, spec: CTCInput, where: str) -> None:
        if spec.inputs != "crops":
            check_live_channels(spec.feature_names,
                                lambda clip: clip_frames(clip, replace(spec, inputs="landmarks"))[2],
                                where, self.name)

    @staticmethod
    def _timings(clips) -> list:
        return list(clips.rows["words"]) if "words" in clips.rows else [None] * len(clips.rows)

    def targets(self, clips, classes) -> list[SentenceTarget]:
        timings = self._timings(clips)
        vocabulary = timed_vocabulary(timings)
        return [sentence_target(text, words, classes, vocabulary)
                for text, words in zip(clips.rows["text"], timings)]

    def emissions(self, model, batch) -> torch.Tensor:
        return model(batch)[0, :int(batch.lengths[0])].float()

    def read_emissions(self, model, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`emissions`, and the word head's (T, words + 1) log-probabilities (None
        for a model without one)."""
        log_probs, words = model(batch, words=True)
        frames = int(batch.lengths[0])
        return log_probs[0, :frames], None if words is None else words[0, :frames]

    def phrase_log_likelihoods(self, log_probs, card, phrases) -> np.ndarray:
        """(len(phrases),) exact CTC log-likelihood of each phrase given :meth:`emissions`."""
        from training.decoding import phrase_log_likelihoods

        return phrase_log_likelihoods(log_probs, phrases, card.classes)

    def phrase_scores(self, log_probs, card, phrases) -> np.ndarray:
        """The phrases' posterior among themselves (no "something else"), at the card's
        phrase temperature."""
        from training.decoding import phrase_posterior

        temperature = card.input.posteriors.phrase_temperature
        return phrase_posterior(self.phrase_log_likelihoods(log_probs, card, phrases) / temperature)

    def score_clip(self, model, batch, card, phrases=None):
        if not phrases:
            raise ValueError(f"{card.name} reads sentences: give it the phrases to choose from")
        return tuple(phrases), self.phrase_scores(self.emissions(model, batch), card, tuple(phrases))

    def dataset(self, examples, targets, spec, augment=None) -> Dataset:
        return SentenceDataset(examples, targets, spec, augment)

    def model_input(self, batch, spec: CTCInput, device) -> SequenceBatch:
        features, lengths, crops = batch
        features = features.to(device, non_blocking=True).transpose(1, 2)
        if features.shape[1]:
            features = spec.standardise(features)
            features = features * (torch.arange(features.shape[2], device=device)
                                   < lengths.to(device)[:, None])[:, None]
        crops = crops.to(device, non_blocking=True).float() / 255.0
        return SequenceBatch(features, lengths, crops)

    def clip_input(self, clip: ClipFeatures, spec: CTCInput, device) -> SequenceBatch:
        example, _ = self.example(clip, spec)
        return self.example_input(example, spec, device)

    def example_input(self, example, spec: CTCInput, device) -> SequenceBatch:
        """One (features, crops) example as a model-input batch of one."""
        batch, _ = collate([(example, [])])
        return self.model_input(batch, spec, device)

    def train_batches(self, dataset: SentenceDataset, config, dist) -> LengthBatches | None:
        """Batches of clips of like length (:class:`LengthBatches`) with
        ``optim.length_groups`` > 0."""
        if config.optim.length_groups <= 0:
            return None
        return LengthBatches(dataset, config.optim.batch_size, config.optim.length_groups,
                             dist.rank, dist.world_size)

    def loss_function(self, config) -> nn.Module:
        return nn.CTCLoss(blank=0, zero_infinity=True)

    def batch_loss(self, model, inputs: SequenceBatch, targets, loss_fn):
        log_probs, word_log_probs = model(inputs, words=True)
        flat, target_lengths, words = targets
        loss = loss_fn(log_probs.transpose(0, 1), flat, inputs.lengths, target_lengths)
        if word_log_probs is not None:
            if bool((words >= 0).any()):
                weight = getattr(model, "module", model).config.word_frames
                loss = loss + weight * F.nll_loss(word_log_probs.flatten(0, 1), words.flatten(),
                                                  ignore_index=-1)
            else:   # no timings in this batch: the head still takes part (torchrun's sync)
                loss = loss + 0.0 * word_log_probs.sum()
        return loss, None, len(target_lengths)

    @torch.no_grad()
    def log_probabilities(self, model, loader, step) -> tuple[list, list[str], float, list]:
        """Per clip (T, V) log-probabilities on the CPU, the reference transcripts, the
        mean CTC loss, and per clip the word head's (T, words + 1) log-probabilities (None
        for a model without one), over a loader of (inputs, targets)."""
        from training.decoding import decode_indices

        model.eval()
        outputs, references, words, total, seen = [], [], [], 0.0, 0
        for inputs, (flat, lengths, _) in loader:
            batch = step.to_input(inputs)
            with step.autocast():
                log_probs, word_log_probs = model(batch, words=True)
            loss = step.loss_fn(log_probs.transpose(0, 1), flat.to(step.device), batch.lengths,
                                lengths.to(step.device))
            total, seen = total + float(loss) * len(lengths), seen + len(lengths)
            frames = batch.lengths.tolist()
            outputs += [lp[:n] for lp, n in zip(log_probs.cpu(), frames)]
            words += ([None] * len(frames) if word_log_probs is None else
                      [w[:n] for w, n in zip(word_log_probs.cpu(), frames)])
            offsets = np.concatenate([[0], np.cumsum(lengths.numpy())])
            references += [decode_indices(flat[a:b].tolist(), step.classes)
                           for a, b in zip(offsets, offsets[1:])]
        return outputs, references, total / max(seen, 1), words

    def validate(self, model, loader, step) -> dict:
        from training.decoding import char_error_rate, greedy_decode, word_error_rate

        outputs, references, loss, _ = self.log_probabilities(model, loader, step)
        if not references:
            return {"loss": float("nan"), "wer": float("nan"), "cer": float("nan")}
        hypotheses = [greedy_decode(lp, step.classes) for lp in outputs]
        return {"loss": loss, "wer": word_error_rate(references, hypotheses),
                "cer": char_error_rate(references, hypotheses)}

    def score(self, val: dict) -> float:
        return -(val["wer"] + 1e-3 * val["cer"])

    def calibrate(self, card, model, val_set, device):
        """The card with its posteriors' :class:`Calibration` fitted on the validation clips
        (:func:`training.reader_calibration.fit_calibration`)."""
        from training import reader_calibration as rc

        phrases, readings = self.held_out_problems(card, model, val_set, device)
        fitted = rc.fit_calibration(phrases, readings, "the validation split")
        return replace(card, input=replace(card.input, calibration=fitted.to_json()))

    def held_out_problems(self, card, model, dataset, device, read=None) -> tuple[list, list]:
        """Phrase-mode and transcript-mode problems of ``dataset``'s clips, read as the app
        reads them (:mod:`training.reader_calibration`); ``read``: the clips'
        :func:`training.sentence_reports.read_split`, when the caller has it already."""
        from recognizer.predictor import BEAM_SIZE, transcript_decoder
        from training import reader_calibration as rc
        from training.sentence_reports import read_split

        if dataset is None or len(dataset) == 0 or not card.input.lexicon:
            return [], []
        if read is None:
            read = read_split(self, model, card, dataset, device)
        decoder = transcript_decoder(card)
        return (rc.phrase_problems(self, model, card, dataset, device, decoder, beam=BEAM_SIZE),
                rc.reading_problems(decoder, *read, beam=BEAM_SIZE))

    def report(self, folder, card, clips, test_index, model, test_set, device, history, targets):
        from training.sentence_reports import write_sentence_reports

        return write_sentence_reports(self, folder, card, clips, test_index, model, test_set,
                                      device, history, targets)


KIND = LandmarkCTCKind()
