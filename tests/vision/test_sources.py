"""Frame sources: image folders, video files through OpenCV, iterables; every frame is stamped."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.frames import Frame
from vision.sources import (
    FrameSource,
    ImageFiles,
    IterableSource,
    LatestFrames,
    OpenCVCapture,
    SourceError,
    open_source,
)


def _images(folder: Path, n: int) -> list[np.ndarray]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        img = np.full((48, 64, 3), i * 40, np.uint8)
        cv2.imwrite(str(folder / f"f{i:02d}.png"), img)
        out.append(img)
    return out


def test_image_folder_yields_sorted_frames_with_time_and_encoder(tmp_path: Path):
    imgs = _images(tmp_path / "frames", 4)
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    counter = itertools.count(100, 7)
    frames = list(ImageFiles([tmp_path / "frames"], encoder=lambda: next(counter)))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.encoder_count for f in frames] == [100, 107, 114, 121]
    assert all(a.captured_at <= b.captured_at for a, b in itertools.pairwise(frames))
    for f, img in zip(frames, imgs, strict=True):
        assert np.array_equal(f.image, img)
        assert f.size == (64, 48)


def test_video_file_through_opencv(tmp_path: Path):
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    with open_source(str(path), encoder=lambda: 5) as src:
        assert isinstance(src, OpenCVCapture)
        frames = list(src)
    assert len(frames) == 10
    assert [f.index for f in frames] == list(range(10))
    assert all(f.encoder_count == 5 for f in frames)
    assert all(a.captured_at <= b.captured_at for a, b in itertools.pairwise(frames))
    assert abs(int(frames[5].image.mean()) - 100) <= 3


def test_iterable_source_takes_images_or_image_and_count_pairs():
    img = np.zeros((4, 4, 3), np.uint8)
    frames = list(IterableSource([img, (img, 42)], "sim:0"))
    assert [f.encoder_count for f in frames] == [None, 42]
    assert frames[1].source == "sim:0"


def test_missing_paths_and_unopenable_sources_say_which(tmp_path: Path):
    with pytest.raises(SourceError, match="no such file"):
        ImageFiles([tmp_path / "nope"])
    with pytest.raises(SourceError, match="no images found"):
        ImageFiles([tmp_path])
    with pytest.raises(SourceError, match="cannot open video source"):
        open_source(str(tmp_path / "missing.mp4"))


def test_a_corrupt_image_is_an_error_naming_the_file(tmp_path: Path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(SourceError, match=r"bad\.png"):
        list(ImageFiles([bad]))


class _Camera(FrameSource):
    """A live camera: ``n`` frames at ``fps`` whether anyone keeps up or not."""

    name = "test camera"

    def __init__(self, n: int, fps: float, fail: bool = False) -> None:
        self.n, self.period, self.fail = n, 1.0 / fps, fail
        self.sent = 0

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            time.sleep(self.period)
            self.sent += 1
            yield Frame(np.zeros((4, 4, 3), np.uint8), time.monotonic(), i, i * 10)
        if self.fail:
            raise ConnectionError("the camera went away")


def test_a_slow_consumer_of_a_live_camera_gets_its_newest_frame():
    """A queue of frames is a queue of delay: a consumer at a third of the camera's rate is
    handed the newest frame each time (the frames between are dropped and counted), so a
    frame is never older than one camera period plus the consumer's own time."""
    latest = LatestFrames(_Camera(60, fps=200.0))
    taken, ages = [], []
    for frame in latest:
        ages.append(time.monotonic() - frame.captured_at)
        taken.append(frame.index)
        time.sleep(0.015)  # three camera periods of work per frame
    assert taken == sorted(taken) and taken[-1] == 59  # in order, and the last one too
    assert len(taken) + latest.dropped == 60 and latest.dropped >= 20
    # queued, the last frame would wait ~0.6 s (60 frames at 15 ms each, sent in 0.3 s)
    assert max(ages) < 0.1


def test_a_live_camera_that_fails_ends_the_frames_with_its_error():
    latest = LatestFrames(_Camera(3, fps=500.0, fail=True))
    got = []
    with pytest.raises(ConnectionError, match="went away"):
        for frame in latest:
            got.append(frame.index)
    assert got and got[-1] == 2


def test_a_consumer_as_fast_as_the_camera_loses_no_frame():
    latest = LatestFrames(_Camera(20, fps=50.0))
    got = [f.index for f in latest]
    # every frame, but for one a busy machine kept the consumer from for a whole period
    assert got[-1] == 19 and len(got) + latest.dropped == 20 and latest.dropped <= 2
