"""Client of the WPCF v1 camera frame stream (the simulator's camera, docs/sim-world.md):
a TCP stream of frames, each a 48-byte little-endian header, the BGR pixels, then a truth
JSON that a node ignores.

Written from the documented format (vision must not import the simulator):

    offset  type  field
    0       4s    magic b"WPCF"
    4       u16   version = 1
    6       u16   header size = 48
    8       u16   width
    10      u16   height
    12      u16   channels (3: B, G, R)
    14      u16   flags (0)
    16      f64   capture time, seconds of time.monotonic()
    24      i64   encoder count at the capture time
    32      u64   frame number (1, 2, ...)
    40      u32   image bytes = width x height x channels
    44      u32   truth bytes
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from vision.frames import Frame
from vision.sources import FrameSource

log = logging.getLogger("wolfpack.vision.wpcf")

MAGIC = b"WPCF"
VERSION = 1
HEADER = struct.Struct("<4sHHHHHHdqQII")
HEADER_SIZE = HEADER.size  # 48
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # 4K x 3 is 25 MB: anything larger is a broken stream
MAX_TRUTH_BYTES = 16 * 1024 * 1024

StateCallback = Callable[[bool, str], None]


class WpcfError(ValueError):
    """A frame header that is not a WPCF v1 header; the message says what is wrong."""


@dataclass(frozen=True)
class WpcfHeader:
    width: int
    height: int
    channels: int
    capture_s: float
    encoder_count: int
    frame_number: int
    image_bytes: int
    truth_bytes: int
    flags: int = 0

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC, VERSION, HEADER_SIZE, self.width, self.height, self.channels, self.flags,
            self.capture_s, self.encoder_count, self.frame_number, self.image_bytes,
            self.truth_bytes,
        )  # fmt: skip


def parse_header(data: bytes) -> WpcfHeader:
    """Parse and check one header; refuses anything but a sane WPCF v1 header (WpcfError)."""
    if len(data) != HEADER_SIZE:
        raise WpcfError(f"a WPCF header is {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, size, w, h, ch, flags, t, count, n, img, truth = HEADER.unpack(data)
    if magic != MAGIC:
        raise WpcfError(f"bad frame magic {magic!r} (expected {MAGIC!r}): not a WPCF stream")
    if version != VERSION:
        raise WpcfError(f"WPCF version {version} not supported (this client reads {VERSION})")
    if size != HEADER_SIZE:
        raise WpcfError(f"WPCF header size {size} B not supported (expected {HEADER_SIZE})")
    if w == 0 or h == 0:
        raise WpcfError(f"frame size {w} x {h} px: width and height must be > 0")
    if ch != 3:
        raise WpcfError(f"{ch} channels not supported (expected 3: B, G, R)")
    if img != w * h * ch:
        raise WpcfError(f"image bytes {img} != width {w} x height {h} x channels {ch}")
    if img > MAX_IMAGE_BYTES:
        raise WpcfError(f"image bytes {img} above the limit {MAX_IMAGE_BYTES}")
    if truth > MAX_TRUTH_BYTES:
        raise WpcfError(f"truth bytes {truth} above the limit {MAX_TRUTH_BYTES}")
    if t != t or t in (float("inf"), float("-inf")):
        raise WpcfError(f"capture time {t} is not a finite number")
    return WpcfHeader(w, h, ch, t, count, n, img, truth, flags)


def parse_uri(uri: str) -> tuple[str, int]:
    """``wpcf://HOST:PORT`` -> (host, port)."""
    parts = urlsplit(uri)
    if parts.scheme != "wpcf" or not parts.hostname or parts.port is None:
        raise ValueError(f"{uri!r}: expected wpcf://HOST:PORT")
    return parts.hostname, parts.port


class StreamClosed(ConnectionError):
    """The camera closed the connection."""


def _read_exact(sock: socket.socket, n: int) -> bytearray:
    out = bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise StreamClosed("the camera closed the connection")
        got += k
    return out


def _skip(sock: socket.socket, n: int) -> None:
    while n > 0:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise StreamClosed("the camera closed the connection")
        n -= len(chunk)


class WpcfSource(FrameSource):
    """Frames from a WPCF v1 stream; reconnects (with backoff) when the stream drops or a
    frame is malformed. ``on_state(up, why)`` is told when frames start and stop flowing.
    Iteration ends only after ``close()``.

    Each ``Frame`` carries the header's capture time (the camera's ``time.monotonic()``) and
    encoder count, not the arrival time: frames arrive a render (~100-400 ms) late.
    """

    def __init__(
        self,
        uri: str,
        *,
        on_state: StateCallback | None = None,
        timeout_s: float = 2.0,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 2.0,
    ) -> None:
        self.host, self.port = parse_uri(uri)
        self.name = uri
        self.on_state = on_state
        self.timeout_s = timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.frames = 0
        self.missed = 0  # gaps in frame numbers: frames the camera sent others or skipped
        self.connections = 0
        self._closed = False
        self._sock: socket.socket | None = None
        self._up = False

    def _state(self, up: bool, why: str) -> None:
        if up == self._up:
            return
        self._up = up
        if self.on_state is not None:
            self.on_state(up, why)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.settimeout(self.timeout_s)
        self.connections += 1
        return sock

    def __iter__(self) -> Iterator[Frame]:
        backoff = self.reconnect_min_s
        index = 0
        while not self._closed:
            try:
                sock = self._connect()
            except OSError as exc:
                self._state(False, f"{self.name}: cannot connect: {exc}")
                self._sleep(backoff)
                backoff = min(self.reconnect_max_s, backoff * 2)
                continue
            self._sock = sock
            last_number: int | None = None
            try:
                while not self._closed:
                    head = parse_header(bytes(_read_exact(sock, HEADER_SIZE)))
                    buf = _read_exact(sock, head.image_bytes)
                    if head.truth_bytes:
                        _skip(sock, head.truth_bytes)
                    if last_number is not None and head.frame_number > last_number + 1:
                        self.missed += head.frame_number - last_number - 1
                    last_number = head.frame_number
                    image = np.frombuffer(buf, np.uint8).reshape(
                        head.height, head.width, head.channels
                    )
                    self.frames += 1
                    backoff = self.reconnect_min_s
                    self._state(True, f"{self.name}: frames flowing")
                    yield Frame(image, head.capture_s, index, head.encoder_count, self.name)
                    index += 1
            except (OSError, WpcfError) as exc:
                if self._closed:
                    break
                why = (
                    f"no frame for {self.timeout_s:.1f} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc)
                )
                log.warning("%s: %s; reconnecting", self.name, why)
                self._state(False, f"{self.name}: {why}")
            finally:
                self._sock = None
                sock.close()
            self._sleep(backoff)
            backoff = min(self.reconnect_max_s, backoff * 2)

    def _sleep(self, s: float) -> None:
        end = time.monotonic() + s
        while not self._closed and time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))

    def close(self) -> None:
        self._closed = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
