"""The floor-code reader line (edge/amr/adapter_floorcode.py): a reading survives encoding,
anything a reader may send is either a reading or one counted refusal, and the reader on a
real TCP socket delivers the good lines among garbage and comes back after the reader
restarts."""

from __future__ import annotations

import asyncio
import math
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.amr.adapter_floorcode import (
    FloorCodeLine,
    FloorCodeLineError,
    FloorCodeReader,
    parse_line,
)
from edge.amr.localisation import FloorCodeReading
from edge.amr.odometry import Pose

codes = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-",
    min_size=1,
    max_size=64,
)
coords = st.floats(-1000, 1000, allow_nan=False)
angles = st.floats(-math.pi, math.pi, allow_nan=False)
offsets = st.floats(-0.5, 0.5, allow_nan=False)


@st.composite
def lines(draw: st.DrawFn) -> FloorCodeLine:
    reading = FloorCodeReading(
        draw(codes), draw(offsets), draw(offsets), draw(angles), draw(st.integers(0, 2**63))
    )
    return FloorCodeLine(reading, Pose(draw(coords), draw(coords), draw(angles)))


@given(lines())
def test_a_reading_survives_its_line(line: FloorCodeLine) -> None:
    assert parse_line(line.encode()) == line


@given(st.binary(max_size=300))
def test_any_bytes_are_a_reading_or_one_refusal(data: bytes) -> None:
    try:
        parse_line(data)
    except FloorCodeLineError as exc:
        assert str(exc)


@given(lines(), st.integers(2, 8), st.sampled_from(["nan", "inf", "x", "", "1e999"]))
def test_a_damaged_field_is_refused(line: FloorCodeLine, field: int, bad: str) -> None:
    parts = line.encode().decode().rstrip("\n").split(" ")
    parts[field] = bad
    with pytest.raises(FloorCodeLineError):
        parse_line(" ".join(parts).encode())


def test_the_reader_delivers_good_lines_among_garbage_and_reconnects() -> None:
    good = FloorCodeLine(FloorCodeReading("FC-A1", 0.01, -0.02, 0.1, 1234), Pose(3.0, 0.0, 0.0))

    async def main() -> tuple[list[FloorCodeLine], dict[str, int]]:
        got: list[FloorCodeLine] = []
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        reader = FloorCodeReader(f"tcp://127.0.0.1:{port}", got.append)
        task = asyncio.get_running_loop().create_task(reader.run())
        loop = asyncio.get_running_loop()
        try:
            for _ in range(2):  # the reader restarts once: the node connects again
                conn, _ = await asyncio.wait_for(loop.sock_accept(server), 5)
                await loop.sock_sendall(conn, b"garbage\n" + b"\x00\xff" * 10 + b"\n")
                await loop.sock_sendall(conn, b"FC " + b"9" * 5000 + b"\n")  # too long
                await loop.sock_sendall(conn, good.encode())
                await asyncio.sleep(0.3)
                conn.close()
            return got, reader.refused
        finally:
            task.cancel()
            server.close()

    got, refused = asyncio.run(main())
    assert got == [good, good]
    assert sum(refused.values()) >= 4


def test_a_reader_uri_that_is_not_tcp_is_refused() -> None:
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        FloorCodeReader("/dev/video0", lambda _: None)
