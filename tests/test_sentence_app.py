"""A sentence reader in the app: the predictor's two read modes, headless mode and the window."""
import io
import json
import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from recognizer.gui.phrase import FittedLabel
from recognizer.gui.train_panel import TrainPanel, describe
from recognizer.gui.window import MainWindow
from recognizer.gui.worker import LiveRecognition
from recognizer.headless import run_headless
from recognizer.live import Recognition
from recognizer.predictor import Prediction, Predictor
from recognizer.reading import ReadMode
from recognizer.segmenter import Utterance
from recognizer.settings import Settings, load_settings, save_settings
from training.decoding import BeamDecoder, word_error_rate
from training.kinds import get_kind

PHRASES = ("bin blue at f two now", "lay white with e one soon", "help", "bed 3")


def held_out_clip(grid_cache, index=1):
    """A whole GRID sentence the tiny reader never saw (``[1::3]``), from the cache."""
    cache, paths = grid_cache
    return cache.load(paths[1::3][index])


def emissions(predictor: Predictor, clip) -> torch.Tensor:
    with torch.inference_mode():
        return get_kind("landmark_ctc").emissions(predictor.entry.model, predictor.model_batch(clip))


def test_transcript_mode_answers_the_language_model_search_and_its_alternatives(sentence_entry,
                                                                               grid_cache):
    entry = sentence_entry[0]
    predictor = Predictor.from_entry(entry, "cpu", phrases=PHRASES, mode="transcript")
    assert predictor.mode is ReadMode.TRANSCRIPT and predictor.unspellable == ("bed 3",)
    card = predictor.entry.card
    for index in range(3):
        clip = held_out_clip(grid_cache, index)
        prediction = predictor.predict(clip)
        # The same search, built apart from the predictor, over the training words and the
        # phrases', weighed by the transcripts' language model that counts the phrases too.
        search = BeamDecoder(card.classes, card.input.lexicon + PHRASES[:3], beam_size=20,
                             language_model=card.input.word_model.extended(PHRASES[:3]))
        best = next(t for t, _ in search.nbest(emissions(predictor, clip), 20) if t)
        assert prediction.phrase == prediction.text == best
        assert set(prediction.text.split()) <= set(card.input.lexicon) | {"help"}
        texts = [t for t, _ in prediction.top3]
        probabilities = [p for _, p in prediction.top3]
        assert len(set(texts)) == len(texts) and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6 and prediction.probabilities == ()


def test_phrase_mode_scores_only_the_phrases_it_can_spell_and_still_reads_the_words(
        sentence_entry, grid_cache):
    entry = sentence_entry[0]
    transcript = Predictor.from_entry(entry, "cpu", phrases=PHRASES, mode="transcript")
    predictor = transcript.with_mode(ReadMode.PHRASES)
    assert predictor.classes == PHRASES[:3] and predictor.unspellable == ("bed 3",)
    clip = held_out_clip(grid_cache)
    prediction = predictor.predict(clip)
    expected = predictor.probabilities(clip)
    assert prediction.phrase == PHRASES[int(np.argmax(expected))]
    # The list's share, the rest going to the best reading that is none of its phrases.
    listed = np.array(prediction.probabilities)
    assert 0 <= listed.sum() <= 1 + 1e-6
    if listed.sum() > 1e-6:
        assert listed / listed.sum() == pytest.approx(expected, abs=1e-4)
    assert prediction.text == transcript.predict(clip).text     # the words, whatever the mode
    with pytest.raises(ValueError, match="cannot spell 'bed 3'"):
        Predictor.from_entry(entry, "cpu", phrases=("bed 3",))


def test_a_classifier_names_its_own_classes_in_any_mode(word_models):
    predictor = Predictor.from_entry(word_models[2] / "t", "cpu", phrases=PHRASES, mode="transcript")
    assert predictor.mode is ReadMode.PHRASES and not predictor.reads_sentences
    assert predictor.classes == ("bin", "lay", "place", "set")


def test_headless_transcript_mode_prints_the_words_read(sentence_entry, grid_dir, grid_cache):
    entry = sentence_entry[0]
    source = grid_cache[1][1::3][0]
    lines = {}
    for mode in ReadMode:
        out, err = io.StringIO(), io.StringIO()
        assert run_headless(source, entry.parent, "landmark_ctc", out=out, err=err, phrases=PHRASES,
                            mode=mode) == 0, err.getvalue()
        lines[mode] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert lines[mode], err.getvalue()
        assert "cannot spell the phrases 'bed 3'" in err.getvalue()
    for transcript, phrase in zip(lines[ReadMode.TRANSCRIPT], lines[ReadMode.PHRASES], strict=True):
        assert transcript["phrase"] == transcript["text"] == transcript["top3"][0][0]
        assert phrase["text"] == transcript["text"]         # one utterance, read the same way
        assert {p for p, _ in phrase["top3"]} <= set(PHRASES[:3])


def test_the_benchmark_wer_helper_agrees_with_the_card(sentence_entry):
    """The card's test WER is what the bar shows for a sentence reader: the one of the
    decoding the app reads sentences with, the language model's."""
    from recognizer.gui.controls import entry_label
    from training.registry import read_card

    entry = sentence_entry[0]
    card = read_card(entry)
    assert card.wer == pytest.approx(card.metrics["wer_grammar"])
    assert entry_label(entry.name, card) == f"{entry.name}  (WER {card.metrics['wer_grammar']:.0%})"
    examples = json.loads((entry / "transcripts.json").read_text())
    for decoding in ("lexicon", "grammar"):
        assert card.metrics[f"wer_{decoding}"] == pytest.approx(word_error_rate(
            [e["reference"] for e in examples], [e[decoding] for e in examples]))


# -- the window -------------------------------------------------------------------------------

@pytest.fixture
def make_window(new_window, tmp_path):
    """A window without a camera, with these settings saved beforehand."""
    def make(registry=None, **settings) -> MainWindow:
        if settings:
            save_settings(tmp_path / "settings.json", Settings(**settings))
        return new_window(registry=registry)
    return make


@pytest.fixture
def reader_registry(sentence_entry, tmp_path):
    import shutil

    registry = tmp_path / "models"
    shutil.copytree(sentence_entry[0], registry / "reader")
    return registry


def recognised(phrase, top3, predictor, final=True, utterance=Utterance(10, 30, 400, 1200)):
    prediction = Prediction(phrase, top3[0][1], top3, "landmark_ctc", "reader", 1.0, text=phrase)
    return LiveRecognition(Recognition(utterance, prediction, True, 170.0, final), time.monotonic(),
                           predictor)


def test_a_sentence_reader_in_the_window_shows_its_wer_and_switches_read_mode(
        make_window, reader_registry, qtbot, sentence_entry, grid_cache):
    window = make_window(reader_registry, kind="landmark_ctc")
    qtbot.waitUntil(lambda: window.predictor is not None, timeout=20000)
    wer = window.predictor.entry.card.wer
    assert window.bar.model.currentText() == f"reader  (WER {wer:.0%})"
    assert window.bar.details.text().startswith(f"test WER {wer:.1%} · 7 phrases: help, doctor")
    assert window.bar.read_mode.isVisible() and window.predictor.mode is ReadMode.PHRASES
    phrases_reader = window.predictor
    window.bar.read_mode.setCurrentIndex(window.bar.read_mode.findData("transcript"))
    assert window.predictor.mode is ReadMode.TRANSCRIPT and window.predictor is not phrases_reader
    assert window.predictor.entry is phrases_reader.entry                  # not loaded again
    assert window.bar.details.text().startswith(f"test WER {wer:.1%} · reads sentences of ")
    clip = held_out_clip(grid_cache)
    reading = window.predictor.predict(clip)
    window.on_recognised(recognised(reading.phrase, reading.top3, window.predictor))
    assert reading.confidence < 0.5                  # the tiny reader is never sure...
    assert window.phrase.phrase.text() == reading.text      # ... and its words still show
    assert window.phrase.headline.text().startswith("Read, not sure")
    window.state.confidence_threshold = 0.0
    window.on_recognised(recognised(reading.phrase, reading.top3, window.predictor))
    assert window.phrase.phrase.text() == reading.text and window.phrase.headline.text() == "Read"
    # A reading by the reader just replaced never shows under the new mode's name.
    window.on_recognised(recognised("help", (("help", 1.0),), phrases_reader))
    assert [item.phrase for item in window.state.history] == [reading.phrase] * 2
    assert load_settings(window.settings_path)[0].read_mode == "transcript"


def test_a_tentative_reading_shows_at_once_and_the_final_one_logs_and_speaks_it(make_window, tmp_path):
    window = make_window()
    window.state.use_entry("landmark_ctc", "reader", ("help",), None, 0.2, True)
    reader = object()
    window.predictor = reader
    top3 = (("bin blue at f two now", 0.8), ("bin blue at f two", 0.2))
    window.on_recognised(recognised(top3[0][0], top3, reader, final=False))
    assert window.phrase.phrase.text() == top3[0][0] and window.state.history == ()
    assert window.speaker.said == [] and len(window.phrase_latencies_ms) == 1
    window.on_recognised(recognised(top3[0][0], top3, reader))
    assert [item.phrase for item in window.state.history] == [top3[0][0]]
    assert window.speaker.said == [top3[0][0]] and len(window.phrase_latencies_ms) == 1
    # Lips that moved on after a tentative reading: the final reading is of other frames.
    window.on_recognised(recognised("bin", (("bin", 0.9),), reader, final=False))
    longer = Utterance(10, 50, 400, 2000)
    window.on_recognised(recognised("bin blue", (("bin blue", 0.9),), reader, utterance=longer))
    assert window.state.history[-1].phrase == "bin blue" and len(window.phrase_latencies_ms) == 3
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].endswith(",recognised,")  # no patient chosen


def test_a_phrase_chosen_from_the_top_3_is_logged_as_chosen(make_window, tmp_path):
    window = make_window()
    window.state.use_entry("landmark_cnn", "t", ("bin", "help", "lay"), 0.9)
    unsure = (("lay", 0.4), ("bin", 0.35), ("help", 0.25))
    window.on_recognised(recognised("lay", unsure, None))
    [bin_button] = [b for b, _ in window.phrase.choices if b.property("phrase") == "bin"]
    bin_button.click()
    first, second = window.state.history
    assert not first.sure and not first.chosen and second.phrase == "bin" and second.chosen
    assert window.history.item(0).text().endswith("bin   chosen")
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[1].endswith(",not sure,") and rows[2].endswith(",chosen,")


def test_settings_are_kept_across_restarts_and_a_bad_file_is_named(make_window, tmp_path):
    window = make_window()
    window.bar.threshold.setValue(0.7)
    window.bar.speak.setChecked(False)
    window.close()
    again = make_window()
    assert again.state.confidence_threshold == pytest.approx(0.7) and not again.state.speak_aloud
    assert again.bar.threshold.value() == pytest.approx(0.7) and not again.bar.speak.isChecked()
    again.close()
    (tmp_path / "settings.json").write_text('{"confidence_threshold": 7, "speak_aloud": false}')
    third = make_window()
    assert third.state.confidence_threshold == 0.5 and not third.state.speak_aloud
    assert any("settings.json" in m and "confidence_threshold" in m and "0 to 1" in m
               for m in third.messages)


def test_closing_during_training_asks_first(make_window, monkeypatch):
    window = make_window()
    monkeypatch.setattr(TrainPanel, "running", property(lambda self: True))
    cancelled = []
    monkeypatch.setattr(window.trainer, "cancel", lambda: cancelled.append(1))
    answers = iter([False, True])
    monkeypatch.setattr(window, "confirm_close_during_training", lambda: next(answers))
    assert not window.close() and window.isVisible() and cancelled == []
    assert window.close() and cancelled == [1]


def test_a_model_trained_with_none_in_use_is_used_at_once_if_better_than_chance(
        make_window, sentence_entry, qtbot, tmp_path):
    import shutil

    from tests.conftest import SHIPPED_READER

    window = make_window(tmp_path / "registry", kind="landmark_ctc")
    assert window.state.entry is None
    shutil.copytree(sentence_entry[0], tmp_path / "registry" / "reader")    # as training writes it
    window._on_trained(str(tmp_path / "registry" / "reader"))               # test WER 1.0
    assert window.state.entry is None and "Reads next to nothing" in window.trainer.status.text()
    assert not window.trainer.activate_button.isEnabled()
    reader = shutil.copytree(SHIPPED_READER, tmp_path / "registry" / SHIPPED_READER.name)
    window._on_trained(str(reader))
    qtbot.waitUntil(lambda: window.state.entry == reader.name, timeout=20000)
    assert window.state.reads_sentences and any(f"recognising with {reader.name}" in m
                                                for m in window.messages)


def test_epoch_progress_keeps_the_last_validation_result_in_view():
    from recognizer.gui.train_panel import epoch_result

    end = {"event": "epoch_end", "epoch": 3, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.8}
    assert describe(end) == "Epoch 3: validation accuracy 80.0%, loss 0.500"
    text = describe({"event": "epoch_start", "epoch": 4, "epochs": 30}, epoch_result(end))
    assert text == "Epoch 4/30 · epoch 3: validation accuracy 80.0%, loss 0.500"
    assert describe({"event": "epoch_start", "epoch": 1, "epochs": 30}) == "Epoch 1/30"


@pytest.mark.parametrize("text", ["help", "my mouth is dry", "bin blue at f two now please soon again"])
def test_large_text_wraps_then_shrinks_to_fit(qtbot, text):
    label = FittedLabel(largest_pt=64, smallest_pt=10)
    qtbot.addWidget(label)
    label.resize(300, 160)
    label.show()
    label.setText(text)
    assert label.fits(label.font().pointSize())
    if label.font().pointSize() < 64:
        assert not label.fits(label.font().pointSize() + 2)     # the largest size that fits
    assert label.minimumSizeHint().height() == 0               # never grows the window


def test_an_entry_trained_on_other_lip_features_is_refused_by_name(sentence_entry, tmp_path):
    import shutil

    from features.cache import extractor_key
    from features.frame_features import FeatureConfig

    entry = tmp_path / "old"
    shutil.copytree(sentence_entry[0], entry)
    card = json.loads((entry / "card.json").read_text())
    assert card["data"]["extractor"] == extractor_key(FeatureConfig())
    card["data"]["extractor"] = "0e30be73510a9253"          # before the colour fix
    (entry / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"old .*another extractor version \(0e30be73510a9253;"):
        Predictor.from_entry(entry, "cpu", phrases=PHRASES)


def test_headless_without_a_model_of_its_kind_names_the_kind_the_registry_has(reader_registry, grid_dir):
    out, err = io.StringIO(), io.StringIO()
    assert run_headless(grid_dir / "video" / "bbaf2n.mp4", reader_registry, "landmark_cnn",
                        out=out, err=err) == 2
    assert "no usable trained landmark_cnn model" in err.getvalue()
    assert err.getvalue().strip().endswith("add --kind landmark_ctc")


def test_the_bar_fits_a_small_screen_and_elides_its_details(make_window, reader_registry, qtbot):
    window = make_window(reader_registry, kind="landmark_ctc")
    qtbot.waitUntil(lambda: window.predictor is not None, timeout=20000)
    assert window.bar.minimumSizeHint().width() <= 1000
    window.resize(1024, 700)
    qtbot.wait(50)
    details = window.bar.details
    assert details.text().startswith("test WER")
    shown = details.shown_text()
    assert shown.endswith("\u2026") and details.fontMetrics().horizontalAdvance(shown) <= details.width()


def test_training_with_no_sample_says_to_record_first(make_window):
    window = make_window()
    window.trainer.start()
    assert not window.trainer.running and "record some in the Record tab" in window.trainer.status.text()
