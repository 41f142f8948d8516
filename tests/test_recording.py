"""The Qt-free parts under the window: newest-frame capture with drop counting, and the recorder."""
import threading
import time

import numpy as np
import pytest

from features.video import Frame, VideoError
from recognizer.capture import LatestFrameCapture, RateMeter
from recognizer.live import FrameResult, LiveState
from recognizer.recording import (COUNTDOWN, IDLE, MAX_LENGTH, RECORDING, UTTERANCE_END, Recorder,
                                  RecordingConfig, sample_hint)
from recognizer.segmenter import Utterance


class ListSource:
    """Frames from a list, every ``period`` seconds; optionally fails at the end."""

    def __init__(self, count: int, period: float = 0.0, fail: bool = False):
        self.count, self.period, self.fail, self.fps = count, period, fail, 25.0

    def __iter__(self):
        for index in range(self.count):
            time.sleep(self.period)
            yield Frame(index, index * 40, np.zeros((4, 4, 3), np.uint8))
        if self.fail:
            raise VideoError("camera 0: stopped delivering frames")

    def close(self):
        pass


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_as_dropped():
    capture = LatestFrameCapture(lambda: ListSource(50), retry=False).start()
    capture.finished.wait(5)
    newest = capture.take(timeout=1)
    assert newest.frame.index == 49 and capture.captured == 50 and capture.dropped == 49
    assert capture.take(timeout=0.01) is None


def test_a_consumer_that_keeps_up_drops_nothing():
    # 50 ms a frame: keeping up holds on a loaded 2-core machine too; a deadline, not a hang.
    capture = LatestFrameCapture(lambda: ListSource(20, period=0.05), retry=False).start()
    seen, deadline = [], time.monotonic() + 20
    while not (capture.finished.is_set() and len(seen) + capture.dropped == capture.captured):
        assert time.monotonic() < deadline, f"took {seen}, {capture.captured} captured"
        item = capture.take(timeout=0.5)
        if item is not None:
            seen.append(item.frame.index)
    assert seen == list(range(20)) and capture.dropped == 0


def test_a_failing_camera_is_reported_and_reopened_as_a_new_generation():
    opened, messages = [], []

    def open_camera():
        opened.append(1)
        return ListSource(3, fail=len(opened) == 1)
    capture = LatestFrameCapture(open_camera, retry=True, retry_s=0.01,
                                 on_status=lambda level, text: messages.append((level, text))).start()
    generations = set()
    while not capture.finished.is_set() or capture._latest is not None:
        item = capture.take(timeout=0.2)
        if item is not None:
            generations.add(item.generation)
            time.sleep(0.005)
    assert len(opened) == 2 and generations >= {2}
    assert messages[0][0] == "error" and "stopped delivering" in messages[0][1]
    assert ("info", "video source is back") in messages


def test_stop_ends_an_endless_source():
    capture = LatestFrameCapture(lambda: ListSource(10**9, period=0.001), retry=False).start()
    time.sleep(0.05)
    capture.stop()
    assert capture.finished.wait(2) and not any(t.name == "frame-capture" for t in threading.enumerate())


def test_rate_meter_counts_over_its_window():
    meter = RateMeter(window_s=1.0)
    rates = [meter.tick(t / 30) for t in range(60)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(30, rel=0.01)


def _result(index: int, utterance: Utterance | None = None) -> FrameResult:
    return FrameResult(index, index * 40, None, None, None, LiveState.RESTING, (), utterance)


def _frame(index: int) -> Frame:
    return Frame(index, index * 40, np.full((2, 2, 3), index, np.uint8))


def test_recorder_counts_down_records_and_cuts_the_utterance_with_its_margin():
    recorder = Recorder(RecordingConfig(countdown_ms=400, max_ms=10_000, margin_frames=2))
    recorder.start(now_ms=0)
    assert recorder.status(0).countdown_left_s == 1 and recorder.state == COUNTDOWN
    take = None
    for index in range(40):
        ended = Utterance(15, 25) if index == 34 else None
        take = recorder.feed(_frame(index), _result(index, ended), fps=25.0) or take
        if index == 12:
            assert recorder.state == RECORDING and recorder.status(index * 40).recorded_ms == 80
    assert take.ended_by == UTTERANCE_END and take.utterance == Utterance(15, 25)
    assert [int(f[0, 0, 0]) for f in take.frames] == list(range(13, 28)) and recorder.state == IDLE


def test_recorder_ignores_an_utterance_that_began_before_recording_and_stops_at_max_length():
    recorder = Recorder(RecordingConfig(countdown_ms=0, max_ms=400))
    recorder.start(now_ms=200)
    takes = [recorder.feed(_frame(i), _result(i, Utterance(1, 6) if i == 8 else None), 25.0)
             for i in range(5, 30)]
    done = [t for t in takes if t is not None]
    assert len(done) == 1 and done[0].ended_by == MAX_LENGTH and len(done[0].frames) == 11


def test_cancel_forgets_the_recording():
    recorder = Recorder(RecordingConfig(countdown_ms=0))
    recorder.start(now_ms=0)
    recorder.feed(_frame(0), _result(0), 25.0)
    recorder.cancel()
    assert recorder.state == IDLE and recorder.feed(_frame(1), _result(1, Utterance(0, 1)), 25.0) is None


def test_bad_recording_settings_and_sample_hints():
    with pytest.raises(ValueError, match="maximum length"):
        RecordingConfig(max_ms=0)
    assert "first sample" in sample_hint({}, "help")
    assert "a second sample shows" in sample_hint({"help": 1}, "help")
    assert "right 90% of the time" in sample_hint({"help": 3}, "help", 0.9)
    assert "7 more" in sample_hint({"help": 3}, "help") and "cross-validated" in sample_hint({"help": 3}, "help")
    assert "held-out split" in sample_hint({"help": 7}, "help")
    assert "enough for the trained" in sample_hint({"help": 12}, "help")
