"""Frame sources on real files, and the errors bad files give."""
import numpy as np
import pytest

from features.video import VideoError, VideoFileSource, read_frames, write_video


def test_grid_mp4_reads_every_frame_with_timestamps(grid_dir):
    frames = read_frames(grid_dir / "video" / "bbaf2n.mp4")
    assert len(frames) == 75
    assert frames[0].rgb.shape == (288, 360, 3) and frames[0].rgb.dtype == np.uint8
    assert [f.timestamp_ms for f in frames[:3]] == [0, 40, 80]
    assert frames[-1].index == 74


def test_original_grid_mpeg1_reads(grid_dir):
    mpg = sorted((grid_dir / "mpg").glob("*.mpg"))
    assert len(mpg) == 5
    for path in mpg:
        source = VideoFileSource(path)
        assert source.fps == pytest.approx(25, abs=0.1)
        frames = list(source)
        assert len(frames) >= 70 and frames[10].rgb.std() > 5


def test_loop_keeps_timestamps_increasing(grid_dir):
    source = VideoFileSource(grid_dir / "video" / "bbaf2n.mp4", loop=True)
    stamps = []
    for frame in source:
        stamps.append(frame.timestamp_ms)
        if len(stamps) == 160:
            source.close()
    assert len(stamps) == 160 and np.all(np.diff(stamps) > 0)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, grid_dir, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated":
        path.write_bytes((grid_dir / "video" / "bbaf2n.mp4").read_bytes()[:3000])
    with pytest.raises(VideoError, match=str(path.name)):
        read_frames(path)


def test_write_video_round_trip_is_atomic(tmp_path, grid_dir):
    frames = [f.rgb for f in read_frames(grid_dir / "video" / "bbaf2n.mp4")[:10]]
    out = write_video(tmp_path / "clip.mp4", frames, fps=25)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    back = read_frames(out)
    assert len(back) == 10 and back[0].rgb.shape == frames[0].shape
    assert np.abs(back[5].rgb.astype(int) - frames[5]).mean() < 12


def test_write_video_takes_a_generator_and_refuses_no_frames(tmp_path, grid_dir):
    frames = (f.rgb for f in VideoFileSource(grid_dir / "video" / "bbaf2n.mp4"))
    assert len(read_frames(write_video(tmp_path / "streamed.mp4", frames, fps=25))) == 75
    with pytest.raises(VideoError, match="empty.mp4"):
        write_video(tmp_path / "empty.mp4", iter([]), fps=25)
    assert not (tmp_path / "empty.mp4").exists()
