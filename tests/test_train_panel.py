"""The Train tab's verdict on a finished entry: against chance and the model in use, offered
accordingly, and in words a nurse reads (names, not paths)."""
import json
import shutil
from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from recognizer.gui.train_panel import TrainPanel, describe, progress_fraction

WORDS = ("bin", "lay", "place", "set")


def _entry_measuring(word_models, folder, **metrics):
    """A copy of the tiny word entry ``t`` whose card says it measured ``metrics``."""
    entry = shutil.copytree(word_models[2] / "t", folder)
    card = json.loads((entry / "card.json").read_text())
    card["metrics"].update(metrics)
    card["name"] = entry.name
    (entry / "card.json").write_text(json.dumps(card))
    return entry


@pytest.fixture
def panel(qtbot, tmp_path):
    used = []
    panel = TrainPanel(tmp_path / "videos", tmp_path / "models", used.append)
    qtbot.addWidget(panel)
    panel.used = used
    return panel


def test_an_entry_no_better_than_chance_cannot_be_used(panel, word_models, tmp_path):
    entry = _entry_measuring(word_models, tmp_path / "guess", accuracy=0.375, test_clips=8)
    verdict = panel.weigh(entry, SimpleNamespace(entry="shipped", accuracy=None, wer=0.058,
                                                 classes=("help", "doctor")))
    assert not verdict.better_than_chance and not panel.activate_button.isEnabled()
    assert panel.status.text() == ("guess: Not better than chance (38% right on 8 test clips of "
                                   "4 phrases, chance 25%): keeping shipped.")
    assert panel.report_button.isEnabled()


def test_an_entry_worse_than_the_one_in_use_is_only_used_anyway(panel, word_models, tmp_path):
    entry = _entry_measuring(word_models, tmp_path / "worse", accuracy=0.8, test_clips=20)
    in_use = SimpleNamespace(entry="t2", accuracy=0.9, wer=None, classes=WORDS[::-1])
    verdict = panel.weigh(entry, in_use)
    assert verdict.worse_than == "t2" and "Worse than t2 in use (80% against 90%" in panel.status.text()
    assert panel.activate_button.text() == "Use it anyway" and panel.activate_button.isEnabled()
    panel.activate_button.click()
    assert panel.used == [entry]
    panel.show_in_use(entry)
    assert "Now recognising with worse (Worse than t2" in panel.status.text()


def test_an_entry_better_than_chance_and_the_one_in_use_is_offered(panel, word_models, tmp_path):
    entry = _entry_measuring(word_models, tmp_path / "better", accuracy=0.95, test_clips=20)
    verdict = panel.weigh(entry, SimpleNamespace(entry="t2", accuracy=0.9, wer=None, classes=WORDS))
    assert verdict.usable and panel.activate_button.text() == "Use this model"
    assert panel.activate_button.isEnabled() and "Better than chance (95%" in panel.status.text()


def test_with_none_in_use_only_an_entry_better_than_chance_is_used_at_once(new_window, word_models,
                                                                           tmp_path, qtbot):
    window = new_window(registry=tmp_path / "models")
    assert window.state.entry is None
    guess = _entry_measuring(word_models, tmp_path / "models" / "guess", accuracy=0.25, test_clips=8)
    window._on_trained(str(guess))
    assert window.state.entry is None and not any("Loading guess" in m for m in window.messages)
    assert "Not better than chance" in window.messages[-1] and "guess" in window.messages[-1]
    good = _entry_measuring(word_models, tmp_path / "models" / "good", accuracy=0.9, test_clips=10)
    window._on_trained(str(good))
    qtbot.waitUntil(lambda: window.state.entry == "good", timeout=10000)


def test_messages_name_files_and_folders_not_their_paths(panel, tmp_path):
    text = describe({"event": "message", "text": "skipped /home/ward/videos/i_need_to_move/c1.mp4: "
                     "no frame with a face"})
    assert text == "skipped c1.mp4: no frame with a face"
    panel.start()
    assert str(tmp_path) not in panel.status.text() and "No samples in videos yet" in panel.status.text()


def test_progress_counts_every_fit_of_a_cross_validated_run():
    fold = {"event": "epoch_end", "epoch": 30, "train_loss": 0.5, "val_accuracy": 0.4,
            "part": 2, "parts": 4, "fold": 2, "folds": 3}
    assert progress_fraction(fold, 30) == 0.5
    assert progress_fraction({**fold, "event": "batch", "epoch": 1, "batch": 1, "batches": 2}, 30) == \
        pytest.approx((1 + 0.5 / 30) / 4)
    assert describe({**fold, "event": "epoch_start", "epoch": 5, "epochs": 30}) == \
        "Fold 2 of 3 · epoch 5/30"
    assert describe(fold) == "Fold 2 of 3 · epoch 30: validation accuracy 40.0%, loss 0.500"
    final = {"event": "epoch_start", "epoch": 1, "epochs": 30, "part": 4, "parts": 4}
    assert describe(final) == "Final fit on every clip · epoch 1/30"


def test_the_train_tab_starts_with_each_kinds_measured_settings(panel):
    """The sentence reader trains for its own epochs, not the classifier's, and the command
    leaves the rest to the kind's defaults (no other config file is named)."""
    assert panel.epochs.value() == 30 and panel.kind.currentData() == "landmark_cnn"
    panel.kind.setCurrentIndex(panel.kind.findData("landmark_ctc"))
    assert panel.epochs.value() == 170
    command = panel.command()
    assert command[command.index("--epochs") + 1] == "170" and "--config" not in command
