"""The frames kept for confirmations: 4 s of a camera in a fraction of their size, and a
confirmed clip saved from them reads as the recording itself."""
import cv2
import numpy as np

from features.extract import extract_clip
from features.frame_features import FeaturePipeline
from features.video import VideoFileSource
from recognizer.confirmations import FrameKeeper, HeardUtterance, save_confirmation
from recognizer.segmenter import Utterance
from tests.conftest import grid_ids


def grid_frames(grid_dir, clip: int = 5):
    return list(VideoFileSource(grid_dir / "video" / f"{grid_ids()[clip]}.mp4"))


def test_four_seconds_of_a_webcam_are_kept_in_an_eighth_of_their_pixels(grid_dir):
    frames = grid_frames(grid_dir)
    webcam = [type(f)(i, 33 * i, cv2.resize(frames[i % len(frames)].rgb, (640, 480)))
              for i, f in enumerate(frames + frames)][:120]
    keeper = FrameKeeper(30.0, 4.0)
    for frame in webcam:
        keeper.add(frame)
    raw = sum(frame.rgb.nbytes for frame in webcam)
    assert keeper.nbytes <= raw / 8, f"{keeper.nbytes / 1e6:.1f} MB kept of {raw / 1e6:.1f} MB"
    cut = keeper.cut(Utterance(10, 100), 4)
    assert len(cut) == 99 and cut[0].shape == (480, 640, 3) and cut[0].dtype == np.uint8
    errors = [np.abs(kept.astype(int) - frame.rgb).mean() for kept, frame in zip(cut, webcam[6:105])]
    assert max(errors) < 1.0


def test_a_confirmed_clip_from_kept_frames_reads_as_the_recording(grid_dir, tmp_path):
    """Saving the kept frames changes the features less than saving a clip changes them
    at all (the mp4 it is written as), so a confirmed sample is the utterance as recorded."""
    frames = grid_frames(grid_dir)
    keeper = FrameKeeper(25.0, 4.0)
    for frame in frames:
        keeper.add(frame)
    kept = keeper.cut(Utterance(4, len(frames) - 5), 4)
    assert keeper.nbytes <= sum(frame.rgb.nbytes for frame in frames) / 8
    heard = HeardUtterance(kept, 25.0, None, "bin", 0.9, "t")
    from_kept = save_confirmation(tmp_path / "kept", "bin", heard, "confirmed", None)
    from_raw = save_confirmation(tmp_path / "raw", "bin", HeardUtterance(
        tuple(f.rgb for f in frames), 25.0, None, "bin", 0.9, "t"), "confirmed", None)
    with FeaturePipeline() as pipeline:
        recorded, raw, kept = (extract_clip(path, pipeline) for path in (
            grid_dir / "video" / f"{grid_ids()[5]}.mp4", from_raw, from_kept))
    assert kept.features.shape == raw.features.shape and kept.valid.all()
    by_keeping = np.abs(kept.features - raw.features).mean(axis=0)
    by_saving = np.abs(raw.features - recorded.features).mean(axis=0)
    assert by_keeping.mean() < by_saving.mean()
    assert np.abs(kept.crops.astype(int) - raw.crops).mean() < np.abs(
        raw.crops.astype(int) - recorded.crops).mean()
