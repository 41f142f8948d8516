"""Patients own their samples and few-shot entry; their data is user-only and deleted in one
action; a kept sample updates the entry at once (real GRID word clips, the shipped reader)."""
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from features.dataset import Sidecar, build_manifest, read_sidecar, save_clip
from recognizer.enrolment import PatientEnrolment
from recognizer.patients import delete_patient, few_shot_name, patient_rows, patients
from recognizer.predictor import Predictor
from training.registry import list_entries, read_card


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_recording_is_readable_by_its_user_only_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        frames = [np.full((48, 64, 3), 90, np.uint8)] * 3
        clip = save_clip(tmp_path / "videos", "help", frames, 25.0, Sidecar(speaker="Bed 4"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "videos") == 0o700 and mode(clip.parent) == 0o700
    assert mode(clip) == 0o600 and mode(clip.with_suffix(".json")) == 0o600


def test_patient_names_compare_as_people_type_them(tmp_path):
    frames = [np.full((48, 64, 3), 90, np.uint8)] * 3
    for speaker in ("Bed 4", "bed 4 ", "Zoë", None):
        save_clip(tmp_path, "help", frames, 25.0, Sidecar(speaker=speaker))
    assert patients(tmp_path) == ("Bed 4", "Zoë")
    assert len(patient_rows(build_manifest(tmp_path), "BED 4")) == 2
    assert few_shot_name("Bed 4").startswith("few-shot-bed-4-") and few_shot_name("Zoë").startswith("few-shot-zoe-")
    assert few_shot_name("Bed 4") == few_shot_name(" bed 4") != few_shot_name("Bed 4/ICU")
    assert few_shot_name("Bed 4/ICU") != few_shot_name("bed 4 icu")     # alike in letters only
    assert few_shot_name("王芳").startswith("few-shot-") and few_shot_name("王芳") != few_shot_name("李娜")
    assert few_shot_name("a" * 200) != few_shot_name("a" * 199 + "b")
    with pytest.raises(ValueError, match="patient"):
        few_shot_name("  ")


def copy_as(patient: str, paths, videos: Path, label: str) -> list[Path]:
    """Copies of GRID word clips recorded by ``patient`` (their sidecar says so)."""
    copied = []
    for path in paths:
        sidecar = read_sidecar(Path(path).with_suffix(".json"))
        target = videos / label / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        target.with_suffix(".json").write_text(
            Sidecar(speaker=patient, source=sidecar.source).to_json(), encoding="utf-8")
        copied.append(target)
    return copied


@pytest.fixture
def two_patients(colour_clips, tmp_path):
    """Bed 4 has 2 samples each of blue and green; bed 5 one of red."""
    _, clips = colour_clips
    videos = tmp_path / "videos"
    for word in ("blue", "green"):
        copy_as("Bed 4", clips[word][:2], videos, word)
    copy_as("bed 5", clips["red"][:1], videos, "red")
    return videos, clips


def test_a_kept_sample_updates_the_patients_entry_at_once(two_patients, grid_cache, tmp_path):
    videos, clips = two_patients
    registry = tmp_path / "models"
    enrolment, problems = PatientEnrolment.open(registry, videos, "bed 4", grid_cache[0])
    assert not problems and enrolment.counts() == {"blue": 2, "green": 2}
    first = enrolment.write()
    assert first.entry == registry / few_shot_name("bed 4")      # how fast: enrol_live.py
    assert first.per_phrase == {"blue": {"samples": 2, "expected_accuracy": 1.0},
                                "green": {"samples": 2, "expected_accuracy": 1.0}}
    card = read_card(first.entry)
    assert card.kind == "few_shot" and card.data["patient"] == "bed 4"
    assert mode(first.entry) == 0o700 and mode(first.entry / "weights.safetensors") == 0o600

    kept = copy_as("Bed 4", clips["red"][1:2], videos, "red")[0]
    enrolment.add("red", kept, grid_cache[0].load(clips["red"][1]))
    second = enrolment.write()
    assert second.entry == first.entry and read_card(second.entry).classes == ("blue", "green", "red")
    assert second.per_phrase["red"] == {"samples": 1, "expected_accuracy": None}
    predictor = Predictor.from_entry(second.entry, "cpu")
    held_out = [(w, p) for w in ("blue", "green", "red") for p in clips[w][5:9]]
    right = sum(predictor.predict(grid_cache[0].load(p, crops=predictor.needs_crops)).phrase == w
                for w, p in held_out)
    assert right >= 9, right          # of 12, chance is 4
    assert [e.name for e in list_entries(registry)] == [few_shot_name("bed 4")]   # replaced, not added

    assert enrolment.remove(kept) and not enrolment.remove(kept)
    assert read_card(enrolment.write().entry).classes == ("blue", "green")


def test_a_sample_without_the_crops_the_reader_needs_is_read_from_its_file(two_patients,
                                                                            grid_cache, tmp_path):
    """The shipped reader reads the mouth's appearance: a kept clip whose live features came
    without crops (a landmark-only model was in use) is enrolled from the saved file."""
    from recognizer.gui.samples import Enroller

    videos, clips = two_patients
    registry = tmp_path / "models"
    enroller = Enroller(registry, videos, grid_cache[0].root)
    enroller.set_patient("bed 4")
    enroller.wait()
    kept = copy_as("Bed 4", clips["red"][1:2], videos, "red")[0]
    bare = grid_cache[0].load(kept, crops=False)
    assert enroller._enrolment.needs_crops and not enroller._enrolment.reads(bare)
    problems = []
    enroller.message.connect(problems.append)
    enroller.add_sample("red", str(kept), bare)
    enroller.wait()
    enroller.shutdown()
    assert not problems and enroller._enrolment.counts() == {"blue": 2, "green": 2, "red": 1}
    assert read_card(registry / few_shot_name("bed 4")).classes == ("blue", "green", "red")


def test_deleting_a_patient_removes_their_clips_and_entries_only(two_patients, grid_cache, tmp_path):
    videos, _ = two_patients
    registry = tmp_path / "models"
    for patient in ("Bed 4", "bed 5"):
        PatientEnrolment.open(registry, videos, patient, grid_cache[0])[0].write()
    deleted = delete_patient(videos, registry, " BED 4")
    assert deleted.clips == 4 and deleted.entries == (few_shot_name("bed 4"),) and not deleted.problems
    assert patients(videos) == ("bed 5",) and sorted(p.name for p in videos.iterdir()) == ["red"]
    assert [e.name for e in list_entries(registry)] == [few_shot_name("bed 5")]
    with pytest.raises(ValueError, match="no patient"):
        delete_patient(videos, registry, "")


def test_confirmed_samples_are_a_patients_confirmations_in_time_order(tmp_path):
    from datetime import datetime

    from features.dataset import Sidecar, save_clip
    from recognizer.confirmations import HeardUtterance, save_confirmation
    from recognizer.patients import confirmed_samples

    frames = tuple(np.zeros((32, 32, 3), np.uint8) for _ in range(5))
    heard = HeardUtterance(frames, 25.0, None, "lay", 0.6, "t")
    later = save_confirmation(tmp_path, "bin", heard, "corrected", "Bed 4",
                              when=datetime(2026, 12, 1, 10, 0, 5))
    earlier = save_confirmation(tmp_path, "lay", heard, "confirmed", "bed 4 ",
                                when=datetime(2026, 12, 1, 10, 0, 1))
    save_confirmation(tmp_path, "lay", heard, "confirmed", "bed 5", when=datetime(2026, 12, 1, 10, 0, 2))
    save_clip(tmp_path, "bin", list(frames), 25.0, Sidecar(speaker="bed 4", recorded_at="2026-12-01T10:00:03"))
    found = confirmed_samples(tmp_path, "bed 4")
    assert [(s.path, s.label, s.how) for s in found] == [
        (str(earlier), "lay", "confirmed"), (str(later), "bin", "corrected")]
    assert found[0].recorded_at == datetime(2026, 12, 1, 10, 0, 1) and found[1].confidence == 0.6
    assert confirmed_samples(tmp_path, "nobody") == []


def test_the_app_state_keeps_an_alarm_until_acknowledged_and_every_patient_typed(tmp_path):
    from recognizer.settings import Settings, load_settings, save_settings
    from recognizer.state import AppState

    state = AppState()
    state.record("help", 0.4, (("help", 0.4),), sure=False)
    assert state.alarm is None                             # not sure: no alarm
    item = state.record("help", 0.9, (("help", 0.9),), sure=True)
    state.record("bin", 0.9, (("bin", 0.9),), sure=True)
    assert state.alarm is item and state.acknowledge_alarm() is item and state.alarm is None
    for name in ("bed 9", " Bed  9 ", "bed 10"):
        state.choose_patient(name)
    assert state.patients == ("bed 10", "bed 9") and state.patient == "bed 10"
    state.forget_patient("BED 9")
    assert state.patients == ("bed 10",)
    save_settings(tmp_path / "s.json", Settings(patients=state.patients))
    assert load_settings(tmp_path / "s.json") == (Settings(patients=("bed 10",)), [])
    (tmp_path / "s.json").write_text('{"patients": "bed 10"}')
    settings, problems = load_settings(tmp_path / "s.json")
    assert settings.patients == () and "'patients'" in problems[0]
