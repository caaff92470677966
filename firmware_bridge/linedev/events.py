"""What a line device reports: typed readings, no-reads, framing errors and state changes.

Each event carries the wall-clock time (for records) and the monotonic time (for latency and
for matching a reading to a parcel) of the moment its last byte arrived.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

NoReadCause = Literal["token", "empty", "timeout", "disconnected"]
LinkState = Literal["connected", "disconnected", "stopped"]


@dataclass(frozen=True, slots=True)
class Read:
    """A reading: the decoded text and the exact bytes it came from (without delimiters)."""

    device: str
    text: str
    raw: bytes
    wall_time: float
    mono_time: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, "read")


@dataclass(frozen=True, slots=True)
class NoRead:
    """The device could not read: it said so ('token', 'empty') or did not answer a trigger in
    time ('timeout'), or the line was down when a read was asked for ('disconnected')."""

    device: str
    cause: NoReadCause
    raw: bytes
    wall_time: float
    mono_time: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, "no-read")


@dataclass(frozen=True, slots=True)
class LineError:
    """Bytes that made no valid reading: a framing error or text the encoding cannot decode."""

    device: str
    kind: str  # oversize, outside-frame, cut, incomplete, undecodable
    detail: str
    raw: bytes
    wall_time: float
    mono_time: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, "error")


@dataclass(frozen=True, slots=True)
class StateChange:
    """The line came up, went down (with the reason), or the driver was stopped."""

    device: str
    state: LinkState
    reason: str
    wall_time: float
    mono_time: float

    def to_dict(self) -> dict[str, Any]:
        return _plain(self, "state")


LineEvent = Read | NoRead | LineError | StateChange


def _plain(event: Read | NoRead | LineError | StateChange, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"event": kind, **asdict(event)}
    if "raw" in out:
        out["raw"] = out["raw"].decode("latin-1")  # one char per byte: lossless in JSON
    return out
