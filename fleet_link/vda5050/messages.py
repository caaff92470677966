"""Header stamping of outbound messages: ``headerId`` per topic, UTC timestamp, version.

The standard defines headerId per topic, incremented with each sent (not necessarily
received) message: one counter per topic, wrapping at 2^32 (uint32). Bodies are built by the
vehicle's core (state, factsheet) or here (connection, visualization); this module only
puts the header in front, so every message of a vehicle carries the same identity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from fleet_link.vda5050.topics import DELIVERY, VERSION

UINT32 = 1 << 32
ConnectionState = Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN"]


def utc_timestamp(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. '2026-12-02T04:40:03.120Z'."""
    dt = datetime.fromtimestamp(epoch_s, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Stamper:
    """Headers of one vehicle; thread-safe (the state and visualization timers and the
    network callbacks stamp from different threads)."""

    def __init__(
        self,
        manufacturer: str,
        serial_number: str,
        version: str = VERSION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manufacturer = manufacturer
        self.serial_number = serial_number
        self.version = version
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, int] = dict.fromkeys(DELIVERY, 0)

    def next_header_id(self, topic: str) -> int:
        with self._lock:
            value = self._next[topic]
            self._next[topic] = (value + 1) % UINT32
            return value

    def stamp(self, topic: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The message of ``topic``: a fresh header followed by ``body``'s fields."""
        if topic not in DELIVERY:
            raise ValueError(f"{topic!r} is not a VDA 5050 topic")
        msg: dict[str, Any] = {
            "headerId": self.next_header_id(topic),
            "timestamp": utc_timestamp(self._clock()),
            "version": self.version,
            "manufacturer": self.manufacturer,
            "serialNumber": self.serial_number,
        }
        for key, value in body.items():
            if key not in msg:
                msg[key] = value
        return msg

    def connection(self, state: ConnectionState) -> dict[str, Any]:
        return self.stamp("connection", {"connectionState": state})

    def visualization(
        self, position: Mapping[str, Any] | None, velocity: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if position is not None:
            body["agvPosition"] = {
                k: position[k]
                for k in (
                    "x", "y", "theta", "mapId", "positionInitialized", "localizationScore",
                    "deviationRange",
                )
                if k in position
            }  # fmt: skip
        if velocity is not None:
            body["velocity"] = dict(velocity)
        return self.stamp("visualization", body)
