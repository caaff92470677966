"""A simulated camera as a node meets one: a loopback TCP stream of raw BGR frames.

Rendering a frame costs ~5 ms of CPU at 1024 x 768 (each parcel is rendered once, between
frames before it comes into view, then moved: ``camera``),
which must not run in the simulated cell's process (it would hold the interpreter lock the
simulated MCU's timers need). So the cell only hands
out cheap snapshots (``SimCell.camera_snapshot``) over a pipe, and ``SimCameraProcess``
renders them in its own process and serves them:

    with SimCellProcess(config, mcu_link) as cell, \\
            SimCameraProcess(cell.camera_channel(), fps=10) as camera:
        ...  # frames on 127.0.0.1:camera.port

The stream (docs/sim-world.md, "Camera frame stream"): for each frame a 48-byte little-endian
header (``HEADER``), then ``image_bytes`` of BGR pixels (row-major, ``height x width x 3``),
then ``truth_bytes`` of UTF-8 JSON (the ground truth of the visible parcels; 0 bytes when
disabled). A client that reads slower than the camera renders misses frames (each client
starts every frame at its header; frames are never cut), it never slows the camera.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import selectors
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_hardware.pipe_rpc import PipeClient, resolve_path

MAGIC = b"WPCF"
VERSION = 1
# magic, version, header size, width, height, channels, flags (0), capture time (s, the
# system-wide time.monotonic()), encoder count, frame number, image bytes, truth bytes
HEADER = struct.Struct("<4sHHHHHHdqQII")
assert HEADER.size == 48


@dataclass(frozen=True)
class FrameHeader:
    width: int
    height: int
    channels: int
    capture_s: float
    encoder_count: int
    frame_number: int
    image_bytes: int
    truth_bytes: int

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC, VERSION, HEADER.size, self.width, self.height, self.channels, 0,
            self.capture_s, self.encoder_count, self.frame_number, self.image_bytes,
            self.truth_bytes,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> FrameHeader:
        """Refuses a header that is not this stream's, naming what is wrong."""
        if len(data) != HEADER.size:
            raise ValueError(f"a frame header is {HEADER.size} bytes, got {len(data)}")
        magic, version, size, w, h, ch, _flags, t, count, n, img, truth = HEADER.unpack(data)
        if magic != MAGIC:
            raise ValueError(f"bad frame magic {magic!r} (expected {MAGIC!r})")
        if version != VERSION or size != HEADER.size:
            raise ValueError(f"frame stream version {version} / header {size} B not supported")
        if img != w * h * ch:
            raise ValueError(f"image_bytes {img} != {w} x {h} x {ch}")
        return cls(w, h, ch, t, count, n, img, truth)


def encode_frame(image: np.ndarray, capture_s: float, count: int, number: int,
                 truth: bytes = b"") -> bytes:  # fmt: skip
    """One frame on the wire: header, pixels, truth."""
    h, w, ch = image.shape
    pixels = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return FrameHeader(w, h, ch, capture_s, count, number, len(pixels), len(truth)).pack() + (
        pixels + truth
    )


def truth_json(parcels: tuple[Any, ...]) -> bytes:
    """The frame's truth: a JSON list of ``ParcelTruth`` objects (``parcel_id`` is the world's)."""
    return json.dumps([dataclasses.asdict(p) for p in parcels]).encode()


@dataclass
class FeedStats:
    frames: int = 0  # frames rendered
    sent: int = 0  # frames queued to clients (one per client per frame)
    skipped: int = 0  # frames a slow client missed
    clients: int = 0  # connected now
    connections: int = 0  # ever
    snapshot_ms: float = 0.0  # last snapshot round trip to the cell
    render_ms: float = 0.0  # last render
    render_ms_mean: float = 0.0
    prepare_ms_mean: float = 0.0  # rendering parcels still upstream, between frames
    cpu_s: float = 0.0  # this process's CPU time
    wall_s: float = 0.0  # since the feed started
    streaming_s: float = 0.0  # with a client connected (frames are rendered only then)


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = memoryview(b"")


class CameraFeed:
    """The camera process's loop: render at ``fps`` while a client is connected (a camera
    nobody watches costs nothing), and write frames to every client without blocking."""

    def __init__(
        self,
        snapshots: Any,
        control: Any,
        *,
        fps: float,
        host: str,
        port: int,
        centre_mm: float,
        fov_mm: float,
        seed: int,
        truth: bool,
        size: tuple[int, int] | None = None,
    ) -> None:
        from sim_hardware.world.camera import CameraRenderer  # cv2 and numpy: in the child only

        self.snapshots = snapshots
        self.control = control
        self.period_s = 1.0 / fps
        extra = {} if size is None else {"size": size}
        self.renderer = CameraRenderer(centre_mm, fov_mm, seed, **extra)  # type: ignore[arg-type]
        self.truth = truth
        self.stats = FeedStats()
        # world ids of the parcels whose label was legible in at least one frame (the frame's
        # truth): what a camera-only cell can read at all (a label too small for the view's
        # resolution is not drawn)
        self.legible: set[int] = set()
        self.seen: set[int] = set()
        self.listener = socket.create_server((host, port))
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(control, selectors.EVENT_READ, "control")
        self.clients: dict[socket.socket, _Client] = {}
        self._stop = False
        self._started = time.monotonic()
        self._streamed = 0.0  # seconds with a client, up to ``_since``
        self._since: float | None = None  # a client has been connected since
        self._cpu0 = time.process_time()

    def run(self) -> None:
        due = time.monotonic()
        while not self._stop:
            timeout = max(0.0, due - time.monotonic()) if self.clients else None
            for key, events in self.sel.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "control":
                    self._answer()
                else:
                    self._service(key.data, events)
            if self.clients and (now := time.monotonic()) >= due:
                # on the fps grid: a frame a little late does not delay the next ones (the
                # rate stays fps); more than a frame behind, the grid restarts (no burst)
                due = due + self.period_s if now - due < self.period_s else now + self.period_s
                self._frame()
        for client in list(self.clients.values()):
            self._drop(client)
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            sock, _ = self.listener.accept()
            sock.setblocking(False)
            client = self.clients[sock] = _Client(sock)
            self.sel.register(sock, selectors.EVENT_READ, client)
            if self._since is None:
                self._since = time.monotonic()
            self.stats.connections += 1
            self.stats.clients = len(self.clients)

    def _answer(self) -> None:
        try:
            kind, path, args = self.control.recv()
        except EOFError:
            self._stop = True
            return
        if kind == "stop":
            self._stop = True
            self.control.send(("ok", None))
            return
        try:
            self._refresh()
            target = resolve_path(self, path)
            self.control.send(("ok", target(*args) if kind == "call" else target))
        except Exception as exc:  # sent back to the caller, raised there
            self.control.send(("error", f"{type(exc).__name__}: {exc}"))

    def _refresh(self) -> None:
        now = time.monotonic()
        self.stats.cpu_s = time.process_time() - self._cpu0
        self.stats.wall_s = now - self._started
        # a camera renders only while watched: its rate is over that time, not since start
        self.stats.streaming_s = self._streamed + (now - self._since if self._since else 0.0)

    def _frame(self) -> None:
        r = self.renderer
        t0 = time.perf_counter()
        try:
            self.snapshots.send((r.centre_mm, r.fov_mm))
            snapshot = self.snapshots.recv()
        except (EOFError, OSError):  # the cell is gone: so is its camera
            self._stop = True
            return
        t1 = time.perf_counter()
        frame = r.render(snapshot)
        t2 = time.perf_counter()
        for truth in frame.parcels:
            self.seen.add(truth.parcel_id)
            if truth.label_legible:
                self.legible.add(truth.parcel_id)
        s = self.stats
        s.frames += 1
        s.snapshot_ms, s.render_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        s.render_ms_mean += (s.render_ms - s.render_ms_mean) / s.frames
        data = memoryview(
            encode_frame(
                frame.image, frame.time_s, frame.encoder_count, s.frames,
                truth_json(frame.parcels) if self.truth else b"",
            )
        )  # fmt: skip
        for client in list(self.clients.values()):
            if client.pending:
                s.skipped += 1  # still writing the last frame: this one is not for it
                continue
            client.pending = data
            s.sent += 1
            self._write(client)
        # the parcels about to come into view are rendered now, between frames: a frame
        # then only moves patches made earlier (its time stays flat as parcels arrive)
        t3 = time.perf_counter()
        r.prepare(snapshot)
        s.prepare_ms_mean += ((time.perf_counter() - t3) * 1e3 - s.prepare_ms_mean) / s.frames

    def _service(self, client: _Client, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                if not client.sock.recv(4096):  # the client hung up (what it sends is ignored)
                    self._drop(client)
                    return
            except BlockingIOError:
                pass
            except OSError:
                self._drop(client)
                return
        if events & selectors.EVENT_WRITE:
            self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            n = client.sock.send(client.pending)
        except BlockingIOError:
            n = 0
        except OSError:
            self._drop(client)
            return
        client.pending = client.pending[n:]
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.pending else 0)
        self.sel.modify(client.sock, mask, client)

    def _drop(self, client: _Client) -> None:
        self.sel.unregister(client.sock)
        client.sock.close()
        self.clients.pop(client.sock, None)
        self.stats.clients = len(self.clients)
        if not self.clients and self._since is not None:
            self._streamed += time.monotonic() - self._since
            self._since = None


def _camera_main(snapshots: Any, control: Any, kwargs: dict[str, Any], nice: int) -> None:
    """Child process: serve frames until 'stop' or until the cell's snapshot pipe closes."""
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    try:
        feed = CameraFeed(snapshots, control, **kwargs)
    except Exception as exc:
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    control.send(("ok", feed.port))
    feed.run()


class SimCameraProcess(PipeClient):
    """An overhead camera over a simulated cell, in its own process, serving the frame stream
    on ``host:port`` (0: any free port; read ``port`` after ``start()``). ``source`` is a
    cell's ``camera_channel()`` (a ``SimCellProcess``'s or an in-process ``SimCell``'s), or
    the cell itself. ``size`` is the frame's (width, height) in px (default 640 x 480; the
    field of view stays ``fov_mm`` of belt across). ``fps`` is a target: a frame takes ~5 ms
    of CPU at 1024 x 768, and each new parcel ~7 ms once, between frames; far more wall time
    on a starved core.
    ``nice`` lowers the renderer's priority so that, on a small machine, the cell and the
    node come first. Stats: ``get("stats")`` (a ``FeedStats``); ``get("legible")``: world
    ids of the parcels whose label was legible in at least one frame."""

    rpc_name = "simulated camera"

    def __init__(
        self,
        source: Any,
        *,
        fps: float = 10.0,
        port: int = 0,
        host: str = "127.0.0.1",
        centre_mm: float = 1_000.0,
        fov_mm: float = 800.0,
        seed: int = 0,
        truth: bool = True,
        nice: int = 5,
        size: tuple[int, int] | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps {fps} must be > 0")
        channel = source.camera_channel() if hasattr(source, "camera_channel") else source
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        kwargs = dict(fps=fps, host=host, port=port, centre_mm=centre_mm, fov_mm=fov_mm,
                      seed=seed, truth=truth, size=size)  # fmt: skip
        self._proc = ctx.Process(
            target=_camera_main, args=(channel, child, kwargs, nice), daemon=True
        )
        self.host = host
        self.port = 0

    def start(self, timeout: float = 30.0) -> SimCameraProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated camera process did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated camera process failed to start: {value}")
        self.port = int(value)
        return self

    @property
    def stats(self) -> FeedStats:
        stats: FeedStats = self.get("stats")
        return stats

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self._ask("stop", "", ())
            except (OSError, EOFError, TimeoutError, RuntimeError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)

    def __enter__(self) -> SimCameraProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
