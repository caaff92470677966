"""The downward floor-code reader: one line per decoded floor code, over TCP.

Warehouse AMRs read 2D codes glued to the floor at nodes with a downward camera module of
their own (the position-guided-vision class of readers: it decodes the code and reports its
offset and rotation under the camera, stamped with the trigger the drive MCU gave the frame).
The node reads such a module's result lines; ``amr.floor_codes.camera`` names it as
``tcp://HOST:PORT``. The simulator serves the same lines for each simulated vehicle.

The line (ASCII, one per reading, fields separated by single spaces)::

    FC <code> <code_x> <code_y> <code_theta> <dx> <dy> <dtheta> <clock>

``code``: the code's content, 1-64 of ``A-Z a-z 0-9 _ . : -``; ``code_x code_y code_theta``:
the code's pose on the map (m, m, rad), printed in the code itself (self-describing codes,
so the vehicle needs no code table); ``dx dy dtheta``: the code's pose in the vehicle frame
(forward, left, rad); ``clock``: the drive MCU clock of the frame's trigger. Anything else is
refused by :func:`parse_line` with the reason and counted; nothing a reader sends can stop
the node.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from edge.amr.localisation import FloorCodeReading
from edge.amr.odometry import Pose

log = logging.getLogger("wolfpack.amr.floorcode")

MAX_LINE = 256
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_OFFSET_M = 1.0  # a code this far from the camera cannot be under it
MAX_COORD_M = 100_000.0


class FloorCodeLineError(ValueError):
    """A line that is not a floor-code reading; the message says why."""


@dataclass(frozen=True)
class FloorCodeLine:
    reading: FloorCodeReading
    code_pose: Pose

    def encode(self) -> bytes:
        r, p = self.reading, self.code_pose
        fields = (r.code, p.x, p.y, p.theta, r.dx, r.dy, r.dtheta)
        return (
            "FC "
            + " ".join(f"{v!r}" if isinstance(v, float) else str(v) for v in fields)
            + f" {r.clock}\n"
        ).encode("ascii")


def parse_line(line: bytes) -> FloorCodeLine:
    """One reader line (with or without its line end) -> the reading; FloorCodeLineError."""
    if len(line) > MAX_LINE:
        raise FloorCodeLineError(f"line of {len(line)} bytes (more than {MAX_LINE})")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FloorCodeLineError("not ASCII") from None
    parts = text.split(" ")
    if len(parts) != 9 or parts[0] != "FC":
        raise FloorCodeLineError("expected 'FC code x y theta dx dy dtheta clock'")
    code = parts[1]
    if not _CODE.match(code):
        raise FloorCodeLineError(f"code {code[:20]!r}: 1-64 of A-Z a-z 0-9 _ . : -")
    try:
        x, y, th, dx, dy, dth = (float(v) for v in parts[2:8])
        clock = int(parts[8])
    except ValueError:
        raise FloorCodeLineError("a field is not a number") from None
    if not all(math.isfinite(v) for v in (x, y, th, dx, dy, dth)):
        raise FloorCodeLineError("a field is not finite")
    if abs(x) > MAX_COORD_M or abs(y) > MAX_COORD_M:
        raise FloorCodeLineError("code position out of range")
    if math.hypot(dx, dy) > MAX_OFFSET_M:
        raise FloorCodeLineError(f"offset {math.hypot(dx, dy):.2f} m: not under the camera")
    if abs(th) > 2 * math.pi or abs(dth) > 2 * math.pi:
        raise FloorCodeLineError("angle out of range")
    if not 0 <= clock < 2**64:
        raise FloorCodeLineError("clock out of range")
    return FloorCodeLine(FloorCodeReading(code, dx, dy, dth, clock), Pose(x, y, th))


class FloorCodeReader:
    """Connects to the reader (and again after it goes away) and hands readings over."""

    def __init__(self, uri: str, on_reading: Callable[[FloorCodeLine], None]) -> None:
        url = urlparse(uri)
        if url.scheme != "tcp" or not url.hostname or not url.port:
            raise ValueError(f"floor code reader {uri!r}: expected tcp://HOST:PORT")
        self.host, self.port = url.hostname, url.port
        self.on_reading = on_reading
        self.refused: dict[str, int] = {}
        self.readings = 0
        self.connected = False

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=4096)
            except OSError as exc:
                log.debug("floor code reader %s:%s: %s", self.host, self.port, exc)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            backoff = 0.2
            self.connected = True
            try:
                await self._read(reader)
            finally:
                self.connected = False
                writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (asyncio.LimitOverrunError, ValueError):
                self._refuse("line too long")
                continue
            except OSError:
                return
            if not line:
                return
            try:
                parsed = parse_line(line)
            except FloorCodeLineError as exc:
                self._refuse(str(exc))
                continue
            self.readings += 1
            self.on_reading(parsed)

    def _refuse(self, why: str) -> None:
        key = why.split(":")[0]
        self.refused[key] = self.refused.get(key, 0) + 1
        if self.refused[key] == 1:
            log.warning("floor code reader %s:%s: line refused: %s", self.host, self.port, why)
