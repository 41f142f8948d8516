"""Enrolling a patient in the window: a kept sample or a confirmed reading teaches the few-shot
recogniser at once, undo takes it back, nothing is saved unconfirmed, a patient's data is
deleted in one confirmed action. Real GRID clips as the camera and as the samples."""
import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from features.dataset import build_manifest
from recognizer.gui.app import source_spec
from recognizer.patients import few_shot_name
from tests.test_patients import copy_as, mode
from training.registry import list_entries, read_card

SENTENCE = "bbaf2n.mp4"          # "bin blue at f two now", played again and again


@pytest.fixture
def ward(colour_clips, new_window, tmp_path, grid_dir):
    """A window playing a GRID sentence, over clips of two patients: bed 4 has two samples
    each of blue and green, bed 5 two of red and white."""
    _, clips = colour_clips
    videos = tmp_path / "videos"
    for patient, words in (("bed 4", ("blue", "green")), ("bed 5", ("red", "white"))):
        for word in words:
            copy_as(patient, clips[word][:2], videos, word)
    registry = tmp_path / "models"
    source = source_spec(source=str(grid_dir / "video" / SENTENCE), loop=True)
    return new_window(source, registry, videos), videos, registry


def use_few_shot(window, qtbot, patient: str) -> None:
    window.state.patient = patient
    bar = window.bar
    bar.kind.setCurrentIndex(bar.kind.findData("few_shot"))
    qtbot.waitUntil(lambda: window.state.entry == few_shot_name(patient), timeout=30000)


def samples_of(registry, patient: str) -> int | None:
    """Samples in ``patient``'s entry; None while it is being written over (for a moment the
    old one is moved aside before the new one is moved in)."""
    try:
        return read_card(registry / few_shot_name(patient)).metrics["samples"]
    except ValueError:
        return None


def record_and_keep(window, qtbot, phrase: str):
    """Record ``phrase`` in the Record tab with no countdown and click Keep; the panel."""
    panel = window.recorder
    panel.phrase.setEditText(phrase)
    panel.countdown.setValue(0)
    panel.record_button.click()
    qtbot.waitUntil(panel.keep_button.isEnabled, timeout=20000)
    panel.keep_button.click()
    return panel


def test_a_kept_sample_and_a_confirmed_reading_teach_the_patients_recogniser(ward, qtbot):
    window, videos, registry = ward
    use_few_shot(window, qtbot, "bed 4")
    assert window.state.kind == "few_shot" and window.state.classes == ("blue", "green")
    assert window.state.per_phrase["blue"] == {"samples": 2, "expected_accuracy": 1.0}

    panel = record_and_keep(window, qtbot, "bin")
    qtbot.waitUntil(lambda: "bin" in window.state.classes, timeout=20000)   # no Train click
    assert len(window.enrol_latencies_ms) == 1
    lines = [panel.counts.item(i).text() for i in range(panel.counts.count())]
    assert "bin: 1  \u2014 usable; a 2nd sample measures it" in lines and "blue: 2  \u2014 expect 100%" in lines
    kept = build_manifest(videos).query("label == 'bin'").iloc[0]
    assert kept["speaker"] == "bed 4" and mode(Path(kept["path"])) == 0o600

    before = set(videos.rglob("*.mp4"))
    qtbot.waitUntil(lambda: window.state.confirmable, timeout=30000)
    qtbot.wait(1500)                        # more readings come and go, none confirmed
    assert set(videos.rglob("*.mp4")) == before, "saved without a confirmation"
    read = window.state.reading
    window.phrase.right_button.click()
    qtbot.waitUntil(lambda: any(i.saved for i in window.state.history), timeout=20000)
    item = next(i for i in window.state.history if i.saved)
    saved = Path(item.saved)
    sidecar = json.loads(saved.with_suffix(".json").read_text())
    assert saved.parent.name == read.phrase and sidecar["origin"] == "confirmed"
    assert (sidecar["how"], sidecar["model"], sidecar["speaker"]) == ("confirmed", few_shot_name("bed 4"), "bed 4")
    assert not window.phrase.right_button.isEnabled() or window.state.reading is not read  # once only
    qtbot.waitUntil(lambda: window.state.per_phrase[read.phrase]["samples"] == 3
                    if read.phrase != "bin" else window.state.per_phrase["bin"]["samples"] == 2,
                    timeout=20000)

    history = window.history
    history.setCurrentRow(next(r for r in range(history.count()) if history.item_at(r).saved))
    assert window.history_tab.undo_button.isEnabled()
    window.history_tab.undo_button.click()
    qtbot.waitUntil(lambda: not saved.exists() and not any(i.saved for i in window.state.history),
                    timeout=20000)
    assert not saved.with_suffix(".json").exists()


def test_a_wrong_reading_corrected_is_kept_as_the_right_phrase(ward, qtbot):
    window, videos, _ = ward
    use_few_shot(window, qtbot, "bed 4")
    qtbot.waitUntil(lambda: window.state.confirmable, timeout=30000)
    wrong = next(p for p in window.state.classes if p != window.state.phrase)
    window.confirm_wrong(window.state.reading, wrong)
    qtbot.waitUntil(lambda: any(i.saved for i in window.state.history), timeout=20000)
    item = window.state.history[-1]
    assert item.phrase == wrong and item.chosen and Path(item.saved).parent.name == wrong
    sidecar = json.loads(Path(item.saved).with_suffix(".json").read_text())
    assert sidecar["how"] == "corrected" and sidecar["recognised_as"] != wrong


def test_switching_patient_switches_their_samples_and_recogniser(ward, qtbot):
    window, _, _ = ward
    use_few_shot(window, qtbot, "bed 4")
    window.state.patient = "bed 5"
    qtbot.waitUntil(lambda: window.state.entry == few_shot_name("bed 5"), timeout=30000)
    assert window.state.classes == ("red", "white") and set(window.state.per_phrase) == {"red", "white"}
    assert window.recorder.patient.currentText() == "bed 5"
    assert "leave-one-out accuracy" in window.bar.details.text()
    assert {window.recorder.patient.itemText(i) for i in range(window.recorder.patient.count())} == {
        "bed 4", "bed 5"}


def test_deleting_a_patient_asks_first_then_removes_their_recordings_and_models(ward, qtbot,
                                                                             tmp_path):
    window, videos, registry = ward
    use_few_shot(window, qtbot, "bed 4")
    qtbot.waitUntil(lambda: len(window.state.history) >= 1, timeout=30000)   # what bed 4 said
    panel = window.recorder
    asked = []
    panel.confirm_delete = lambda patient, clips: asked.append((patient, clips)) or False
    panel.delete_button.click()
    assert asked == [("bed 4", 4)] and (videos / "blue").is_dir()      # refused: nothing gone
    panel.confirm_delete = lambda patient, clips: True
    panel.delete_button.click()
    qtbot.waitUntil(lambda: not (videos / "blue").exists(), timeout=20000)
    qtbot.waitUntil(lambda: window.state.patient == "", timeout=10000)
    assert sorted(p.name for p in videos.iterdir()) == ["red", "white"]
    assert few_shot_name("bed 4") not in [e.name for e in list_entries(registry)]
    assert "Deleted 4 recording(s) of bed 4" in " ".join(window.messages)
    qtbot.wait(1500)                           # no other patient's recogniser is loaded instead
    assert window.state.entry is None and window.predictor is None
    with open(tmp_path / "history.csv", newline="") as handle:
        assert not [row for row in csv.DictReader(handle) if row["patient"] == "bed 4"]
    assert not [item for item in window.state.history if item.patient == "bed 4"]


def test_undoing_a_confirmation_after_a_patient_switch_updates_its_patients_entry(ward, qtbot):
    window, _, registry = ward
    use_few_shot(window, qtbot, "bed 4")
    qtbot.waitUntil(lambda: window.state.confirmable, timeout=30000)
    window.phrase.right_button.click()
    qtbot.waitUntil(lambda: any(i.saved for i in window.state.history), timeout=20000)
    item = next(i for i in window.state.history if i.saved)
    qtbot.waitUntil(lambda: samples_of(registry, "bed 4") == 5,
                    timeout=20000)
    window.state.patient = "bed 5"
    qtbot.waitUntil(lambda: window.state.entry == few_shot_name("bed 5"), timeout=30000)
    window.undo_sample(item)
    window.enroller.wait()
    assert samples_of(registry, "bed 4") == samples_of(registry, "bed 5") == 4


def test_a_sample_kept_just_before_a_patient_switch_stays_with_its_patient(ward, qtbot):
    window, _, registry = ward
    use_few_shot(window, qtbot, "bed 4")
    record_and_keep(window, qtbot, "blue")
    window.state.patient = "bed 5"             # while the take is still being saved
    qtbot.waitUntil(lambda: samples_of(registry, "bed 4") == 5,
                    timeout=20000)
    window.enroller.wait()
    assert read_card(registry / few_shot_name("bed 5")).classes == ("red", "white")


def test_a_patient_without_samples_never_reads_with_another_patients_recogniser(ward, qtbot,
                                                                                new_window):
    window, videos, registry = ward
    use_few_shot(window, qtbot, "bed 4")
    window.state.patient = "new patient"
    qtbot.waitUntil(lambda: window.state.entry is None, timeout=20000)
    listed = [window.bar.model.itemText(i) for i in range(window.bar.model.count())]
    assert listed == [] and "No samples of new patient yet" in window.messages[-1]
    window.close()
    again = new_window(window.source, registry, videos)       # a restart, same settings
    qtbot.wait(1500)
    assert again.state.patient == "new patient" and again.state.kind == "few_shot"
    assert again.state.entry is None and again.predictor is None
