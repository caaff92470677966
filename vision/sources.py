"""Frame sources: OpenCV captures (USB, CSI via GStreamer, RTSP, video files), image folders,
any iterable of images (the simulator's renderer, a test), and the simulator's WPCF camera
stream (``wpcf://HOST:PORT``, vision/wpcf.py).

Every source stamps each frame with its capture time and, when an encoder callback is given,
the encoder count read at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from vision.frames import Frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

EncoderReader = Callable[[], int | None]


class SourceError(RuntimeError):
    """A source could not be opened or stopped delivering frames; the message says which."""


class FrameSource:
    """Base: iterate to get frames; close() releases the device."""

    name = "source"

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (nothing by default)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable image (expected one of {IMAGE_SUFFIXES})")
    return image


class ImageFiles(FrameSource):
    """Image files, or every image in a folder (sorted by name)."""

    def __init__(self, paths: Iterable[str | Path], encoder: EncoderReader | None = None) -> None:
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
            elif p.is_file():
                files.append(p)
            else:
                raise SourceError(f"{p}: no such file or folder")
        if not files:
            raise SourceError(f"no images found in {[str(p) for p in paths]}")
        self.files = files
        self.encoder = encoder
        self.name = str(files[0].parent)

    def __iter__(self) -> Iterator[Frame]:
        for i, f in enumerate(self.files):
            image = _read_image(f)
            yield Frame(
                image, time.monotonic(), i, self.encoder() if self.encoder else None, str(f)
            )


class OpenCVCapture(FrameSource):
    """A camera index, video file, RTSP/HTTP URL or GStreamer pipeline, through cv2.VideoCapture."""

    def __init__(
        self,
        uri: str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        encoder: EncoderReader | None = None,
    ) -> None:
        self.name = uri
        self.encoder = encoder
        if uri.isdigit():
            cap = cv2.VideoCapture(int(uri), cv2.CAP_V4L2)
        elif "appsink" in uri:  # a GStreamer pipeline string (CSI cameras on Pi / Jetson)
            cap = cv2.VideoCapture(uri, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            hint = ""
            if "appsink" in uri:
                hint = " (GStreamer pipelines need an OpenCV built with GStreamer)"
            elif uri.isdigit():
                hint = f" (is /dev/video{uri} present and are you in the 'video' group?)"
            raise SourceError(f"cannot open video source {uri!r}{hint}")
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        self.cap = cap

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            if not self.cap.grab():  # grab first, stamp, then decode: the stamp is the capture
                return
            t = time.monotonic()
            count = self.encoder() if self.encoder else None
            ok, image = self.cap.retrieve()
            if not ok or image is None:
                raise SourceError(f"{self.name}: frame {i} could not be decoded")
            yield Frame(image, t, i, count, self.name)
            i += 1

    def close(self) -> None:
        self.cap.release()


class IterableSource(FrameSource):
    """Frames from any iterable of images or (image, encoder_count) pairs, e.g. the simulator."""

    def __init__(
        self, items: Iterable[np.ndarray | tuple[np.ndarray, int | None]], name: str
    ) -> None:
        self.items = items
        self.name = name

    def __iter__(self) -> Iterator[Frame]:
        for i, item in enumerate(self.items):
            image, count = item if isinstance(item, tuple) else (item, None)
            yield Frame(image, time.monotonic(), i, count, self.name)


def open_source(
    uri: str,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    encoder: EncoderReader | None = None,
) -> FrameSource:
    """Pick the source for ``uri``: ``wpcf://HOST:PORT`` (the simulator's camera stream, its
    own capture times and encoder counts), a folder or image file, else an OpenCV capture."""
    if uri.startswith("wpcf://"):
        from vision.wpcf import WpcfSource

        return WpcfSource(uri)
    path = Path(uri)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFiles([path], encoder)
    return OpenCVCapture(uri, width, height, fps, encoder)
