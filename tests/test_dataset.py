"""The clip folder: label checks, atomic saves and the manifest, on real GRID frames."""
from __future__ import annotations

import hashlib
import unicodedata

import pytest

from features.dataset import (Sidecar, SidecarError, build_manifest, label_dir, read_sidecar,
                              save_clip, sidecar_fields, validate_label)
from features.video import read_frames

HEBREW_LABEL = "עזרה"


@pytest.fixture(scope="module")
def grid_frames(grid_dir):
    """Ten real RGB frames (288, 360, 3) uint8 of a GRID sentence."""
    return [frame.rgb for frame in read_frames(grid_dir / "video" / "bbaf2n.mp4")][20:30]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("label, expected", [
    (HEBREW_LABEL, HEBREW_LABEL),
    ("i_need_to_move", "i_need_to_move"),
    ("  i need  to move\t", "i_need_to_move"),
    ("ça\u0301", unicodedata.normalize("NFC", "ça\u0301")),
    ("שָׁלוֹם", unicodedata.normalize("NFC", "שָׁלוֹם")),
])
def test_labels_accepted_and_normalised(label, expected):
    assert validate_label(label) == expected
    assert unicodedata.is_normalized("NFC", validate_label(label))


@pytest.mark.parametrize("label", ["..", "../x", "a/b", "/abs", "", ".hidden", ".", "   ",
                                   "a\\b", "..\\x", "a\x00b", "a\nb", "x\u202ey", "con", "a:b",
                                   "x" * 300])
def test_unsafe_labels_refused(label, tmp_path):
    with pytest.raises(ValueError, match="label"):
        validate_label(label)
    with pytest.raises(ValueError):
        label_dir(tmp_path / "videos", label)


@pytest.mark.parametrize("label, problem", [("../x", "starts with '.'"), (".hidden", "starts with '.'"),
                                            ("a/b", "contains /"), ("", "is empty")])
def test_a_refused_label_says_what_to_type_instead(label, problem):
    with pytest.raises(ValueError) as refused:
        validate_label(label)
    message = str(refused.value)
    assert repr(label) in message and problem in message
    assert "type the phrase in words instead, like i_need_water or 'i need water'" in message
    assert "hidden folder" not in message


def test_label_folder_linking_outside_refused(tmp_path, grid_frames):
    root, outside = tmp_path / "videos", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "help").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        save_clip(root, "help", grid_frames, 25.0)
    assert list(outside.iterdir()) == []
    assert any("outside" in reason for _, reason in build_manifest(root).attrs["problems"])


def test_unicode_label_round_trip(tmp_path, grid_frames):
    sidecar = Sidecar(speaker="p01", gender="f", age_band="60-69", source="bedside_take_1",
                      recorded_at="2025-01-02T03:04:05+02:00", extra={"note": "שלום", "take": 3})
    path = save_clip(tmp_path, HEBREW_LABEL, grid_frames, 25.0, sidecar)

    assert path.parent == tmp_path / HEBREW_LABEL
    assert len(read_frames(path)) == len(grid_frames)
    assert read_sidecar(path.with_suffix(".json")) == sidecar
    manifest = build_manifest(tmp_path)
    assert manifest.attrs["problems"] == []
    assert len(manifest) == 1
    row = manifest.iloc[0]
    assert (row["label"], row["clip"], row["path"]) == (HEBREW_LABEL, path.stem, str(path))
    for name in sidecar_fields():
        if name != "text":
            assert row[name] == getattr(sidecar, name)
    assert row["text"] == HEBREW_LABEL.replace("_", " ")   # no text: the label is the transcript
    assert (row["note"], row["take"]) == ("שלום", 3)


def test_transcript_is_the_sidecar_text_else_the_label(tmp_path, grid_frames):
    save_clip(tmp_path, "i_need_to_move", grid_frames[:3], 25.0)
    save_clip(tmp_path, "grid", grid_frames[:3], 25.0, Sidecar(text="  Bin  blue\tat f "))
    texts = dict(zip(build_manifest(tmp_path)["label"], build_manifest(tmp_path)["text"]))
    assert texts == {"i_need_to_move": "i need to move", "grid": "Bin blue at f"}


def test_save_never_overwrites(tmp_path, grid_frames):
    first = save_clip(tmp_path, "help", grid_frames, 25.0, Sidecar(speaker="a"))
    first_bytes = _digest(first)
    second = save_clip(tmp_path, "help", grid_frames[:5], 25.0, Sidecar(speaker="b"))
    named = save_clip(tmp_path, "help", grid_frames, 25.0, clip_name="take")
    named_bytes = _digest(named)
    with pytest.raises(FileExistsError, match="take"):
        save_clip(tmp_path, "help", grid_frames[:3], 25.0, Sidecar(speaker="c"), clip_name="take")

    assert len({first, second, named}) == 3
    assert (_digest(first), _digest(named)) == (first_bytes, named_bytes)
    assert read_sidecar(first.with_suffix(".json")).speaker == "a"
    assert read_sidecar(named.with_suffix(".json")).speaker is None
    assert sorted(p.suffix for p in (tmp_path / "help").iterdir()) == [".json"] * 3 + [".mp4"] * 3


def test_bad_frames_write_nothing(tmp_path, grid_frames):
    with pytest.raises(ValueError, match="frame 1"):
        save_clip(tmp_path, "help", [grid_frames[0], grid_frames[1][:100]], 25.0)
    with pytest.raises(ValueError, match="no frames"):
        save_clip(tmp_path, "help", [], 25.0)
    assert not (tmp_path / "help").exists()


def test_malformed_sidecar_reported_not_fatal(tmp_path, grid_frames):
    good = save_clip(tmp_path, "help", grid_frames, 25.0, Sidecar(speaker="a"), clip_name="good")
    bad = save_clip(tmp_path, "help", grid_frames, 25.0, Sidecar(speaker="b"), clip_name="bad")
    bad.with_suffix(".json").write_text("{not json", encoding="utf-8")
    (tmp_path / "help" / "orphan.json").write_text("{}", encoding="utf-8")
    (tmp_path / "help" / ".good.123.partial.mp4").write_bytes(good.read_bytes())
    (tmp_path / ".trash").mkdir()
    (tmp_path / "bad label").mkdir()

    with pytest.raises(SidecarError, match="bad.json"):
        read_sidecar(bad.with_suffix(".json"))
    manifest = build_manifest(tmp_path)
    assert list(manifest["clip"]) == ["bad", "good"]
    assert list(manifest["speaker"]) == [None, "a"]
    assert list(manifest["source"]) == ["help/bad", "help/good"]
    reported = {path.name for path, _ in manifest.attrs["problems"]}
    assert reported == {"bad.json", "orphan.json", "bad label"}


def test_sidecar_json_round_trip_and_clashes():
    sidecar = Sidecar(speaker="s1", source="bbaf2n", extra={"start_frame": 24, "sentence": "bin blue"})
    assert Sidecar.from_json(sidecar.to_json()) == sidecar
    assert Sidecar.from_json('{"age_band": 70}').age_band == "70"
    with pytest.raises(ValueError, match="clash"):
        Sidecar(extra={"label": "x"})
    with pytest.raises(SidecarError, match="my.json"):
        Sidecar.from_json('{"speaker": ["a"]}', origin="my.json")
    with pytest.raises(SidecarError, match="object"):
        Sidecar.from_json("[1, 2]")


def test_empty_or_missing_folder_gives_empty_manifest(tmp_path):
    for root in (tmp_path / "missing", tmp_path):
        manifest = build_manifest(root)
        assert len(manifest) == 0
        assert list(manifest.columns) == ["path", "label", "clip", *sidecar_fields()]
        assert manifest.attrs["problems"] == []
