"""Recognise one utterance with a registry entry, exactly as the entry was trained.

:class:`Predictor` wraps a :class:`training.registry.LoadedEntry`. Its input is
a :class:`features.cache.ClipFeatures` -- the very type the training data is
made of -- and it prepares it with the entry's kind and input spec exactly as
training and evaluation do (:meth:`training.kinds.base.ModelKind.clip_input`),
so a live utterance and an offline clip of the same frames get the same
probabilities.

:func:`utterance_clip` turns the buffered live frames of an utterance into that
``ClipFeatures``, assembled as :func:`features.extract.extract_clip` assembles
a file's frames.
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from features.cache import ClipFeatures
from features.extract import clip_from_rows
from features.frame_features import FrameFeatures
from features.text import spoken_text
from recognizer.reading import ReadMode
from recognizer.segmenter import Utterance
from training.decoding import BeamDecoder, encode, normalise_text
from training.reader_calibration import (Calibration, phrase_list_posterior, reading_posterior,
                                         something_else)
from training.card import check_extractor
from training.kinds import DEFAULT_KIND, get_kind
from training.registry import (LoadedEntry, active_entry, active_names, entry_path, list_entries,
                               load_entry)

TOP_K = 3
BEAM_SIZE = 20     # the beam of transcript decoding, and the hypotheses weighed against each other


def find_entry(registry_root: str | os.PathLike, kind: str) -> Path | None:
    """The registry entry the app uses for ``kind``: the active one, else the newest, else None.

    An active entry that can no longer be read is still returned, so that
    loading it says which entry it is and what is wrong with it instead of the
    app quietly using another model.
    """
    active = active_entry(registry_root, kind)
    if active is not None:
        return active
    named = active_names(registry_root).get(kind)
    if isinstance(named, str):
        try:
            return entry_path(registry_root, named)
        except (FileNotFoundError, ValueError):
            pass
    entries = [e for e in list_entries(registry_root) if e.card.kind == kind]
    return entries[-1].path if entries else None


def kind_in_use(registry_root: str | os.PathLike, preferred: str | None) -> str:
    """``preferred`` when given; else the default kind if the registry has a model of it,
    else the first trained kind it has one of (on a fresh clone the sentence reader that
    ships with the app), else the default kind. A patient's few-shot kind is chosen, not
    fallen back on."""
    if preferred:
        return preferred
    if find_entry(registry_root, DEFAULT_KIND) is not None:
        return DEFAULT_KIND
    kinds = sorted({e.card.kind for e in list_entries(registry_root)})
    return next((k for k in kinds if get_kind(k).trains_by_epochs), DEFAULT_KIND)


@dataclass(frozen=True)
class Prediction:
    """What the model says about one utterance.

    ``phrase``: what to show and speak -- a phrase of the list (a classifier's
    class, or a phrase a sentence reader chose), or in transcript mode the
    words read; ``confidence``: its probability in [0, 1]; ``top3``: up to
    three (phrase or transcript, probability) pairs, most likely first;
    ``text``: the words a sentence reader read (lexicon beam search, weighed
    by its language model in transcript mode), in any mode; a classifier's phrase as words; ``probabilities``: one per
    candidate of :attr:`Predictor.classes` (empty in transcript mode, where
    the candidates are the reader's own best hypotheses; a sentence reader's
    phrase list sums to less than 1, the rest going to the best reading that
    is none of the phrases); ``latency_ms``: wall
    time of input preparation, the forward pass and decoding.
    """

    phrase: str
    confidence: float
    top3: tuple[tuple[str, float], ...]
    kind: str
    entry: str
    latency_ms: float
    probabilities: tuple[float, ...] = ()
    text: str = ""


def is_sure(prediction: Prediction, threshold: float) -> bool:
    """Whether to say and speak ``prediction`` as sure: ``threshold`` of the way from chance
    (one over its phrases) to certainty. Of two phrases one is at least 50 % whatever it
    reads, so a plain 0.5 would call a coin toss sure; this asks 0.75 of two, 0.57 of
    seven, and of a reading with no phrase list (words read) the threshold itself.
    A threshold of 0 calls everything sure."""
    return sure_of(prediction.confidence, len(prediction.probabilities), threshold)


def names_nothing(prediction: Prediction) -> bool:
    """Whether ``prediction`` names none of its phrases: a sentence reader's phrase list,
    whose probabilities leave the rest to "something else", gave that rest more than its
    best phrase. Never for a classifier (its classes share all of it) or words read."""
    if not prediction.probabilities:
        return False
    return 1.0 - sum(prediction.probabilities) > prediction.confidence


def sure_of(confidence: float, candidates: int, threshold: float) -> bool:
    """:func:`is_sure`'s rule for a ``confidence`` among ``candidates`` phrases (0: words read)."""
    return confidence >= sure_above(candidates, threshold)


def sure_above(candidates: int, threshold: float) -> float:
    """The confidence :func:`sure_of` asks of a reading among ``candidates`` phrases."""
    chance = 1.0 / candidates if candidates else 0.0
    return chance + threshold * (1.0 - chance)


def utterance_clip(rows: Sequence[FrameFeatures], fps: float | None = None,
                   utterance: Utterance | None = None, margin: int = 0) -> ClipFeatures:
    """The live frames ``rows`` (in frame order) as one clip, (T, F) features and (T, S, S) crops.

    With ``utterance``, only the rows with ``utterance.start - margin <=
    index <= utterance.end + margin`` are kept (GRID word clips were cut with
    4 frames of padding each side, so a margin of 4 feeds the model what it
    saw in training). Frames without a face get zero features and crops, as
    in the feature cache. ``fps`` defaults to the rate measured from the kept
    rows' timestamps (the formula of the extractor); crops are (T, 0, 0) when
    no row carries one (a pipeline run with ``crops=False``).
    """
    if utterance is not None:
        low, high = utterance.start - margin, utterance.end + margin
        rows = [row for row in rows if low <= row.index <= high]
    if not rows:
        raise ValueError("no buffered frame lies inside the utterance; "
                         "the frame buffer is shorter than the utterance")
    return clip_from_rows(rows, fps)


class Predictor:
    """Phrase probabilities of one utterance clip from one loaded registry entry.

    A classifier entry chooses among its own classes. A sentence reader
    (``landmark_ctc``) reads the words with a lexicon beam search over the
    words of its training transcripts and of ``phrases``, weighed by its
    language model where its card has one; in
    :attr:`ReadMode.PHRASES` (the default) it also scores every phrase of
    ``phrases`` by its CTC likelihood and answers the most likely one, in
    :attr:`ReadMode.TRANSCRIPT` it answers the words, with its best
    alternatives as the top 3. Phrases it cannot spell (characters outside its
    alphabet) are left out and named in :attr:`unspellable`. Immutable once
    built, so a worker thread can use it while another thread builds the next one.
    """

    def __init__(self, entry: LoadedEntry, phrases: Sequence[str] | None = None,
                 mode: ReadMode | str = ReadMode.PHRASES):
        self.entry = entry
        self.kind: str = entry.card.kind
        self._model_kind = get_kind(self.kind)
        where = f"registry entry {entry.name} ({entry.path})"
        check_extractor(entry.card, where)
        self._model_kind.check_spec(entry.card.input, where)
        self.reads_sentences = self._model_kind.reads_sentences
        self.mode = ReadMode(mode) if self.reads_sentences else ReadMode.PHRASES
        phrases = tuple(phrases) if phrases is not None else None
        if phrases is not None and len(set(phrases)) != len(phrases):
            raise ValueError(f"the phrase list {list(phrases)} names a phrase twice")
        self.unspellable: tuple[str, ...] = ()
        self._given = phrases
        self._decoder = None
        if self.reads_sentences:
            phrases, self.unspellable = spellable(phrases or (), entry.card.classes)
            if self.mode is ReadMode.PHRASES and not phrases:
                raise ValueError(f"{entry.name} reads sentences: give it the phrases to choose "
                                 f"from{self._unspellable_note()}, or read in transcript mode")
            self._decoder = transcript_decoder(entry.card, phrases)
        self.phrases = phrases
        self.classes: tuple[str, ...] = (self.phrases if self.reads_sentences
                                         else tuple(entry.card.classes))

    @classmethod
    def from_entry(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                   phrases: Sequence[str] | None = None,
                   mode: ReadMode | str = ReadMode.PHRASES) -> "Predictor":
        """Load the registry entry folder ``path`` (on ``device``, default GPU if any);
        ``phrases`` and ``mode`` are used only by a sentence reader."""
        entry = load_entry(path, device)
        return cls(entry, phrases if get_kind(entry.card.kind).reads_sentences else None, mode)

    def with_mode(self, mode: ReadMode | str, phrases: Sequence[str] | None = None) -> "Predictor":
        """The same loaded model reading in ``mode`` (and with ``phrases``, default the same)."""
        return Predictor(self.entry, self._given if phrases is None else phrases, mode)

    def _unspellable_note(self) -> str:
        if not self.unspellable:
            return ""
        return (f" (it cannot spell {', '.join(map(repr, self.unspellable))}: only the "
                f"characters {''.join(self.entry.card.classes)!r})")

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def answers(self) -> tuple[str, ...]:
        """What this predictor can answer: its phrases (or classes), or in transcript mode
        the words its sentences are made of."""
        if self.mode is ReadMode.TRANSCRIPT:
            return self._decoder.words or tuple(self.entry.card.classes)
        return self.classes

    @property
    def needs_crops(self) -> bool:
        """Whether clips must carry mouth crops (run the pipeline with ``crops=True``)."""
        return self._model_kind.uses_crops(self.entry.card.input)

    def model_batch(self, clip: ClipFeatures):
        """The model input of one clip as a batch of one, on the entry's device."""
        try:
            return self._model_kind.clip_input(clip, self.entry.card.input, self.entry.device)
        except ValueError as error:
            raise ValueError(f"entry {self.name} ({self.kind}): {error}") from error

    def _autocast(self):
        device = self.entry.device
        return (torch.autocast(device_type="cuda", dtype=torch.float16)
                if device.type == "cuda" else nullcontext())

    def probabilities(self, clip: ClipFeatures) -> np.ndarray:
        """(K,) float32 probabilities, in ``classes`` order (a phrase list, for a sentence reader)."""
        with torch.inference_mode(), self._autocast():
            _, probs = self._model_kind.score_clip(self.entry.model, self.model_batch(clip),
                                                   self.entry.card, self.phrases)
        return np.asarray(probs, np.float32)

    def predict(self, clip: ClipFeatures) -> Prediction:
        """The most likely phrase (or transcript) of ``clip`` with its top three;
        ``ValueError`` without a face."""
        started = time.perf_counter()
        if self.reads_sentences:
            candidates, probs, text = self._read(clip)
        else:
            candidates, probs = self.classes, self.probabilities(clip)
            text = spoken_text(candidates[int(np.argmax(probs))])
        order = np.argsort(-probs, kind="stable")[:TOP_K]
        top = tuple((candidates[i], float(probs[i])) for i in order)
        if not top:
            raise ValueError(f"{self.name} read nothing in this clip")
        per_class = probs if self.mode is ReadMode.PHRASES else ()
        return Prediction(top[0][0], top[0][1], top, self.kind, self.name,
                          1000.0 * (time.perf_counter() - started),
                          tuple(float(p) for p in per_class), text)

    def _read(self, clip: ClipFeatures) -> tuple[tuple[str, ...], np.ndarray, str]:
        """A sentence reader's candidates and their probabilities, and the words it read."""
        kind, card = self._model_kind, self.entry.card
        with torch.inference_mode(), self._autocast():
            log_probs, words = kind.read_emissions(self.entry.model, self.model_batch(clip))
        log_probs = log_probs.cpu()
        scored, unweighed = self._decoder.readings(log_probs, BEAM_SIZE, words)
        # Reading nothing is no answer, though it keeps its share of the probability.
        text = next((hypothesis for hypothesis, _ in scored if hypothesis), "")
        calibration = getattr(card.input, "posteriors", Calibration())
        if self.mode is ReadMode.PHRASES:
            likelihoods = kind.phrase_log_likelihoods(log_probs, card, self.phrases)
            # "Something else": the best reading that is no phrase of the list. Without it the
            # list's posterior sums to 1 and a sentence from outside the list reads as sure.
            other = something_else(unweighed, self.phrases)
            probabilities = phrase_list_posterior(likelihoods, other, calibration)
            return self.phrases, probabilities.astype(np.float32), text
        hypotheses = reading_posterior(scored, calibration)
        return (tuple(t for t, _ in hypotheses), np.array([p for _, p in hypotheses], np.float32),
                text)


def spellable(phrases: Sequence[str], alphabet: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the phrases written in ``alphabet``, the others), each in the given order."""
    kept, dropped = [], []
    for phrase in phrases:
        try:
            encode(phrase, alphabet)
        except ValueError:
            dropped.append(phrase)
            continue
        kept.append(phrase)
    return tuple(kept), tuple(dropped)


def transcript_decoder(card, phrases: Sequence[str] = ()) -> BeamDecoder:
    """A sentence reader's beam search over the words of its training transcripts and of
    ``phrases`` (phrases it can spell), weighed by the card's word-class language model
    where it has one, which counts the phrases as transcripts too, and by its word head's
    alignment where it has one and every reading's words are the head's; free over its
    alphabet when it has no lexicon."""
    words = tuple(card.input.lexicon) + tuple(phrases)
    model = getattr(card.input, "word_model", None) if words else None
    if model is not None:
        model = model.extended([normalise_text(p) for p in phrases])
    return BeamDecoder(card.classes, words or None, beam_size=BEAM_SIZE, language_model=model,
                       head_words=getattr(card.input, "head_words", ()))
