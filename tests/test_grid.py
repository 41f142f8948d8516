"""GRID import on real sentences: counts and frames follow the .align files."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from features.dataset import build_manifest
from features.grid import AlignError, AlignedWord, import_grid, main, parse_align
from features.video import read_frames
from tests.conftest import grid_ids

SENTENCES = grid_ids()[::60]
PADDING = 2
SENTENCE_FRAMES = 75


def _raw_align(path) -> list[tuple[int, int, str]]:
    """``(start, end, word)`` of the spoken words, read here without features.grid."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(s), int(e), w) for s, e, w in rows if w not in ("sil", "sp")]


def _green(path) -> np.ndarray:
    """(T, H, W) float32 green channel of every frame of a video."""
    return np.stack([frame.rgb[..., 1].astype(np.float32) for frame in read_frames(path)])


def _frame(units: int) -> int:
    return int(units / 1000 + 0.5)


@pytest.fixture(scope="module")
def imported(grid_dir, tmp_path_factory):
    """Five sentences imported with padding: (videos root, summary)."""
    root = tmp_path_factory.mktemp("videos")
    calls = []
    summary = import_grid(grid_dir, root, padding=PADDING, sentences=SENTENCES,
                          on_progress=lambda sentence, error: calls.append((sentence, error)))
    assert calls == [(sentence, None) for sentence in SENTENCES]
    return root, summary


def test_parse_align_reads_frames(grid_dir):
    words = parse_align(grid_dir / "align" / "bbaf2n.align")
    assert [w.word for w in words] == ["sil", "bin", "blue", "at", "f", "two", "now", "sil"]
    assert words[1] == AlignedWord("bin", 24, 30)
    assert (words[0].start_frame, words[-1].end_frame) == (0, SENTENCE_FRAMES)
    assert all(a.end_frame == b.start_frame for a, b in zip(words, words[1:]))


@pytest.mark.parametrize("text, match", [("0 23750\n", ":1"), ("0 100 sil\n10 x bin\n", ":2"),
                                         ("500 100 bin\n", "start < end"), ("\n", "empty")])
def test_malformed_align_names_file_and_line(tmp_path, text, match):
    path = tmp_path / "broken.align"
    path.write_text(text)
    with pytest.raises(AlignError, match=match) as error:
        parse_align(path)
    assert "broken.align" in str(error.value)


def test_clip_counts_match_align_files(grid_dir, imported):
    root, summary = imported
    expected = Counter(w for s in SENTENCES for _, _, w in _raw_align(grid_dir / "align" / f"{s}.align"))
    manifest = build_manifest(root)
    assert summary.failed == {} and summary.skipped == []
    assert manifest.attrs["problems"] == []
    assert Counter(manifest["label"]) == expected
    assert len(summary.written) == sum(expected.values())
    assert set(manifest["source"]) == set(SENTENCES)
    assert set(manifest["speaker"]) == {"s1"}


def test_clip_frames_follow_align_with_padding(grid_dir, imported):
    root, _ = imported
    for sentence in SENTENCES:
        source = _green(grid_dir / "video" / f"{sentence}.mp4")
        moving = source.std(0) > np.percentile(source.std(0), 98)
        source = source[:, moving]
        for index, (start, end, word) in enumerate(_raw_align(grid_dir / "align" / f"{sentence}.align")):
            path = root / word / f"{sentence}_{index}_{word}.mp4"
            first = max(0, _frame(start) - PADDING)
            last = min(SENTENCE_FRAMES, _frame(end) + PADDING)
            clip = _green(path)[:, moving]
            assert len(clip) == last - first, path.name
            # The clip's frames match the sentence best at the align's own offset.
            errors = [np.abs(clip - source[o:o + len(clip)]).mean()
                      for o in range(len(source) - len(clip) + 1)]
            assert int(np.argmin(errors)) == first, path.name
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            assert (meta["start_frame"], meta["clip_start_frame"]) == (_frame(start), first)


def test_words_filter_and_reimport_skips(grid_dir, tmp_path):
    first = import_grid(grid_dir, tmp_path, words=["bin", "NOW"], sentences=SENTENCES)
    expected = Counter(w for s in SENTENCES for _, _, w in _raw_align(grid_dir / "align" / f"{s}.align")
                       if w in ("bin", "now"))
    assert Counter(p.parent.name for p in first.written) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    stamps = {p: p.stat().st_mtime_ns for p in first.written}

    again = import_grid(grid_dir, tmp_path, words=["bin", "now"], sentences=SENTENCES)
    assert (again.written, again.failed) == ([], {})
    assert sorted(again.skipped) == sorted(first.written)
    assert {p: p.stat().st_mtime_ns for p in first.written} == stamps
    assert len(build_manifest(tmp_path)) == sum(expected.values())


def test_bad_sentences_reported_and_rest_imported(grid_dir, tmp_path, capsys):
    grid = tmp_path / "grid"
    (grid / "video").mkdir(parents=True)
    (grid / "align").mkdir()
    good, corrupt, no_video, bad_align = SENTENCES[:2], SENTENCES[2], SENTENCES[3], SENTENCES[4]
    for sentence in (*good, corrupt, bad_align):
        shutil.copy(grid_dir / "video" / f"{sentence}.mp4", grid / "video")
    for sentence in (*good, corrupt, no_video):
        shutil.copy(grid_dir / "align" / f"{sentence}.align", grid / "align")
    (grid / "video" / f"{corrupt}.mp4").write_bytes(b"\x00not a video" * 100)
    (grid / "align" / f"{bad_align}.align").write_text("0 23750 sil\n23750 bin\n")

    code = main([str(grid), str(tmp_path / "videos"), "--padding", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "12 clips written" in out
    for sentence in (corrupt, no_video, bad_align):
        assert f"failed {sentence}:" in out
    manifest = build_manifest(tmp_path / "videos")
    assert set(manifest["source"]) == set(good)
    assert len(manifest) == sum(len(_raw_align(grid / "align" / f"{s}.align")) for s in good)


def test_whole_sentences_keep_their_bytes_and_transcripts(grid_dir, tmp_path):
    from features.cache import file_digest

    summary = import_grid(grid_dir, tmp_path, sentences=SENTENCES, whole=True, speaker="s1")
    assert len(summary.written) == len(SENTENCES) and not summary.failed
    manifest = build_manifest(tmp_path)
    for sentence in SENTENCES:
        row = manifest[manifest["clip"] == sentence].iloc[0]
        words = [w for _, _, w in _raw_align(grid_dir / "align" / f"{sentence}.align")]
        assert row["text"] == " ".join(words) and row["label"] == "_".join(words)
        assert (row["speaker"], row["source"]) == ("s1", sentence)
        assert file_digest(row["path"]) == file_digest(grid_dir / "video" / f"{sentence}.mp4")
    again = import_grid(grid_dir, tmp_path, sentences=SENTENCES, whole=True)
    assert not again.written and len(again.skipped) == len(SENTENCES)
    with pytest.raises(ValueError, match="no words and no padding"):
        import_grid(grid_dir, tmp_path, sentences=SENTENCES, whole=True, padding=2)
