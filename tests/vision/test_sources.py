"""Frame sources: image folders, video files through OpenCV, iterables; every frame is stamped."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.sources import ImageFiles, IterableSource, OpenCVCapture, SourceError, open_source


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
