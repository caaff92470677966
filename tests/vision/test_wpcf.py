"""The WPCF v1 camera stream client: header parser (property tests), cross-checked against the
simulator's own packer, and the source reading frames and reconnecting over a real socket."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.world.camera_feed import FrameHeader, encode_frame
from vision.sources import open_source
from vision.wpcf import HEADER, HEADER_SIZE, WpcfError, WpcfHeader, WpcfSource, parse_header

u16 = st.integers(1, 2000)
headers = st.builds(
    lambda w, h, t, count, n, truth: WpcfHeader(w, h, 3, t, count, n, w * h * 3, truth),
    u16,
    u16,
    st.floats(-1e9, 1e9, allow_nan=False),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**20),
)


@given(headers)
def test_header_round_trip(head: WpcfHeader):
    assert parse_header(head.pack()) == head


@given(headers)
def test_simulator_packer_agrees(head: WpcfHeader):
    sim = FrameHeader(
        head.width, head.height, head.channels, head.capture_s, head.encoder_count,
        head.frame_number, head.image_bytes, head.truth_bytes,
    )  # fmt: skip
    assert sim.pack() == head.pack()
    assert parse_header(sim.pack()) == head


def _raw(**over: object) -> bytes:
    fields = dict(magic=b"WPCF", version=1, size=48, w=4, h=2, ch=3, flags=0, t=1.0, count=5,
                  n=1, img=24, truth=0)  # fmt: skip
    fields.update(over)
    return HEADER.pack(*fields.values())


@given(st.binary(min_size=4, max_size=4).filter(lambda b: b != b"WPCF"))
def test_bad_magic_refused(magic: bytes):
    with pytest.raises(WpcfError, match="bad frame magic"):
        parse_header(_raw(magic=magic))


@given(st.integers(0, 65535).filter(lambda v: v != 1))
def test_bad_version_refused(version: int):
    with pytest.raises(WpcfError, match=f"version {version} not supported"):
        parse_header(_raw(version=version))


@given(st.integers(0, 65535).filter(lambda v: v != 48))
def test_bad_header_size_refused(size: int):
    with pytest.raises(WpcfError, match="header size"):
        parse_header(_raw(size=size))


@given(st.integers(0, 2**32 - 1).filter(lambda v: v != 24))
def test_image_bytes_must_match_the_size(img: int):
    with pytest.raises(WpcfError, match="image bytes"):
        parse_header(_raw(img=img))


@given(st.integers(0, 200).filter(lambda n: n != HEADER_SIZE))
def test_short_header_refused(n: int):
    with pytest.raises(WpcfError, match="48 bytes"):
        parse_header(b"\0" * n)


def test_other_refusals_say_why():
    with pytest.raises(WpcfError, match="channels"):
        parse_header(_raw(ch=1, img=8))
    with pytest.raises(WpcfError, match="width and height"):
        parse_header(_raw(w=0, img=0))
    with pytest.raises(WpcfError, match="finite"):
        parse_header(_raw(t=float("nan")))
    with pytest.raises(WpcfError, match="truth bytes"):
        parse_header(_raw(truth=2**31))


class _Camera:
    """A tiny WPCF server: sends ``per_conn`` frames on each connection, then drops it."""

    def __init__(self, per_conn: int) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.per_conn = per_conn
        self.number = 0
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                for _ in range(self.per_conn):
                    self.number += 1
                    img = np.full((6, 8, 3), self.number, np.uint8)
                    conn.sendall(encode_frame(img, 100.0 + self.number, 10 * self.number,
                                              self.number, b'[{"cls": "box"}]'))  # fmt: skip

    def close(self) -> None:
        self.stop = True
        self.srv.close()


def test_source_reads_frames_and_reconnects():
    cam = _Camera(per_conn=3)
    states: list[tuple[bool, str]] = []
    src = open_source(f"wpcf://127.0.0.1:{cam.port}")
    assert isinstance(src, WpcfSource)
    src.reconnect_min_s = 0.01
    src.on_state = lambda up, why: states.append((up, why))
    frames = []
    for f in src:
        frames.append(f)
        if len(frames) == 7:
            break
    src.close()
    cam.close()
    assert [f.encoder_count for f in frames] == [10 * i for i in range(1, 8)]
    assert [f.captured_at for f in frames] == [100.0 + i for i in range(1, 8)]
    assert all(int(f.image[0, 0, 0]) == i for i, f in enumerate(frames, 1))
    assert frames[0].size == (8, 6)
    assert src.connections >= 3
    assert [s[0] for s in states][:3] == [True, False, True]


def test_source_survives_garbage_and_a_missing_camera():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"x" * 100)  # not a camera
        conn.close()
        srv.close()  # then nobody listens: connection refused

    threading.Thread(target=serve, daemon=True).start()
    states: list[tuple[bool, str]] = []
    src = WpcfSource(f"wpcf://127.0.0.1:{port}", on_state=lambda u, w: states.append((u, w)),
                     reconnect_min_s=0.01, reconnect_max_s=0.05)  # fmt: skip
    done = threading.Event()

    def consume() -> None:
        for _ in src:
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.5)
    src.close()
    assert done.wait(3), "close() ends the iteration"
    assert src.frames == 0
    assert states == []  # never up, so never reported down


def test_bad_uri():
    with pytest.raises(ValueError, match="wpcf://HOST:PORT"):
        WpcfSource("wpcf://nohost")


@settings(max_examples=20)
@given(st.integers(0, 47))
def test_truncated_header_is_not_a_frame(cut: int):
    data = struct.pack("<4s", b"WPCF")[:cut]
    with pytest.raises(WpcfError):
        parse_header(data)
