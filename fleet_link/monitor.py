"""The fleet as operators see it: one row per node, built from what the brain SDK receives.

The brain SDK has already refused what is not a conforming message (its ``rejected``); the
view checks the event data it reads (faults) against their schema and counts what it
refuses, and writes only printable text to the terminal (a fault code is the node's text).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleet_link import inbound, safe_json
from fleet_link.brain import Message, NodeState

log = logging.getLogger("fleet_link.monitor")

PARCEL_WINDOW_S = 60.0


@dataclass(frozen=True)
class NodeRow:
    node: str
    online: bool | None  # None: messages seen but no state yet
    session: int | None
    last_seen_s: float  # seconds since anything was heard from it
    parcels_per_min: float
    faults: list[str]
    outbox_depth: int | None
    dropped: int


class FleetView:
    """Feed it with ``on_message`` / ``on_state`` of a Brain; read ``rows()``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, NodeState] = {}
        self._seen: dict[str, float] = {}
        self._parcels: dict[str, deque[float]] = {}
        self._faults: dict[str, set[str]] = {}
        self._first_seen = clock()
        self.rejected = safe_json.Rejections(log, "monitor: event")

    def on_state(self, state: NodeState) -> None:
        with self._lock:
            self._states[state.node] = state
            self._seen[state.node] = self._clock()
            self._faults[state.node] = set(state.faults)

    def on_message(self, m: Message) -> None:
        now = self._clock()
        with self._lock:
            self._seen[m.node] = now
            if m.channel == "events/parcel":
                self._parcels.setdefault(m.node, deque()).append(now)
            elif m.channel == "events/fault":
                found = inbound.event_data_problems("fault", m.data)
                if found:
                    self.rejected.count(safe_json.INVALID_SCHEMA, m.channel, "; ".join(found[:3]))
                    return
                code = m.data["code"]
                faults = self._faults.setdefault(m.node, set())
                if m.data.get("active"):
                    faults.add(code)
                else:
                    faults.discard(code)

    def rows(self) -> list[NodeRow]:
        now = self._clock()
        with self._lock:
            rows = []
            for node in sorted(set(self._seen) | set(self._states)):
                state = self._states.get(node)
                stamps = self._parcels.get(node, deque())
                while stamps and now - stamps[0] > PARCEL_WINDOW_S:
                    stamps.popleft()
                window = min(PARCEL_WINDOW_S, max(1.0, now - self._first_seen))
                outbox = state.body.get("outbox", {}) if state else {}
                rows.append(
                    NodeRow(
                        node=node,
                        online=state.online if state else None,
                        session=state.session if state else None,
                        last_seen_s=now - self._seen.get(node, now),
                        parcels_per_min=len(stamps) * 60.0 / window,
                        faults=sorted(self._faults.get(node, set())),
                        outbox_depth=outbox.get("depth") if state else None,
                        dropped=int(outbox.get("dropped_telemetry", 0))
                        + int(outbox.get("dropped_events", 0)),
                    )
                )
            return rows


HEADER = ("NODE", "STATUS", "SESSION", "LAST SEEN", "PARCELS/MIN", "OUTBOX", "DROPPED", "FAULTS")


def printable(text: str, limit: int = 64) -> str:
    """Text from the wire made safe for a terminal: no control or escape sequences, no line
    separators, no lone surrogates (print would raise), at most ``limit`` characters."""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(c if c.isprintable() else "?" for c in text)


def render(rows: list[NodeRow], site: str, rejected: Mapping[str, int] | None = None) -> str:
    """A plain-text table (no colour codes: it also goes to logs and pipes); with a line of
    refused messages by reason when there were any."""
    tail = ""
    if rejected and sum(rejected.values()):
        tail = f"\nrejected messages: {safe_json.describe(rejected)}"
    if not rows:
        return f"site {site}: no nodes seen yet (right broker and site? nodes publish state)" + tail
    cells = [HEADER]
    for r in rows:
        status = "unknown" if r.online is None else ("online" if r.online else "OFFLINE")
        cells.append(
            (
                r.node,
                status,
                "-" if r.session is None else str(r.session),
                f"{r.last_seen_s:.1f}s ago",
                f"{r.parcels_per_min:.0f}",
                "-" if r.outbox_depth is None else str(r.outbox_depth),
                str(r.dropped),
                printable(",".join(r.faults), 200) or "-",
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    online = sum(1 for r in rows if r.online)
    return f"site {site}: {online}/{len(rows)} nodes online\n" + "\n".join(lines) + tail
