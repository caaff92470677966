"""Frame sources: OpenCV captures (USB, CSI via GStreamer, RTSP, video files), image folders,
any iterable of images (the simulator's renderer, a test), and the simulator's WPCF camera
stream (``wpcf://HOST:PORT``, vision/wpcf.py).

Every source stamps each frame with its capture time and, when an encoder callback is given,
the encoder count read at that moment.
"""

from __future__ import annotations

import threading
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


class LatestFrames(FrameSource):
    """A live source read by its own thread, of which the consumer gets the newest frame.

    A consumer slower than its camera must not be handed the frames that waited: a live
    camera's frames queue in buffers (a socket's, a driver's ring), and a queue of frames is
    a queue of delay. With the node's pipeline at 11 frames/s of the 15 sent, 2.4 MB frames
    waited in the loopback socket's buffers and the labels reached the cell ~600 ms after
    their capture, past the brain's deadline (``wolfpack sim --camera-only`` beside other
    work, 2 Dec). Here a reader thread drains the source and keeps only the newest frame; a
    frame replaced before it was taken is counted in ``dropped``. Not for files: those
    would be skipped through. The reader thread is started by the consumer's thread, so it
    inherits that thread's priority."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.name = source.name
        self.dropped = 0
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._done = False
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[Frame]:
        reader = threading.Thread(target=self._read, name=f"frames {self.name}", daemon=True)
        reader.start()
        while True:
            with self._cond:
                while self._frame is None and not self._done:
                    self._cond.wait()
                frame, self._frame = self._frame, None
                if frame is None:  # the source ended (or failed) and nothing is left
                    if self._error is not None:
                        raise self._error
                    return
            yield frame

    def _read(self) -> None:
        try:
            for frame in self.source:
                with self._cond:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame = frame
                    self._cond.notify()
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify()

    def close(self) -> None:
        self.source.close()


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
