"""The fleet as operators see it: one row per node, built from what the brain SDK receives.

What a row says, and where it comes from:
- **link**: ``online``; ``DEAD`` at once when the node's last will arrives (the broker
  publishes it when the connection dies; "since" is its arrival: the will's own ``ts`` is
  the connect's); ``offline`` after a clean shutdown; ``STALE`` when nothing newer than
  ``stale_after_s`` (by the messages' own ``ts``) was heard from a node that is not dead.
- **safety**: the cell's state (``ESTOP``, ``FAULT``, ``BOOT``, ``READY``, ``RUNNING``,
  ``STOPPING``) from the retained state's ``cell`` and the ``events/safety`` transitions,
  ``DEGRADED`` beside it while devices with the 'degrade' policy are missing
  (``events/degraded``); faults from the state's list and ``events/fault``; devices missing.
- **sorted / rejected / lost / mis-sorted per minute**: parcel records (``events/parcel``)
  whose own ``ts`` lies in the last ``window_s`` (or since the monitor started, if later),
  so a backlog a node sends after a reconnect does not inflate the rate; all zero at once when
  the node dies.
- **brain share**: of the window's parcels decided by the brain or by the local routing table
  (``decision_source``), the brain's part.
- **age**: seconds since the ``ts`` of the newest message of the node (its clock, not our
  arrival time).

The brain SDK has already refused what is not a conforming message (its ``rejected``); the view
checks the event data it reads (faults, safety) against their schema, reads everything else
defensively (a wrong type is ignored, never raised), and writes only printable text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet_link import inbound, safe_json
from fleet_link.brain import Message, NodeState
from fleet_link.envelope import parse_stamp

log = logging.getLogger("fleet_link.monitor")

PARCEL_WINDOW_S = 60.0
STALE_AFTER_S = 30.0  # 3 state periods of the default mqtt.state_interval_s
WILL_REASON = "connection lost"  # fleet_link.link.WILL_REASON (the will's reason)
RETAINED_S = 1.0  # a will arriving this soon after subscribing is the broker's stored copy
MAX_NODES = 2000  # rows kept; a flood of node ids cannot grow the view without bound
MAX_PARCELS = 100_000  # per node, in the window (36,000/h is 600 a minute)
_OUTCOMES = ("sorted", "rejected", "lost", "mis_sorted")
ALARM_STATES = frozenset(("estop", "fault"))


@dataclass(frozen=True)
class NodeRow:
    node: str
    online: bool | None  # None: messages seen but no state yet
    session: int | None
    last_seen_s: float  # seconds since the ts of its newest message (its own clock)
    parcels_per_min: float  # every finished parcel (all outcomes)
    faults: list[str]
    outbox_depth: int | None
    dropped: int
    link: str = "unknown"  # online | DEAD | offline | STALE | unknown
    dead_since: float | None = None  # wall time the will arrived
    dead_before: bool = False  # it arrived as the broker's retained copy: died before that
    offline_reason: str = ""
    safety: str | None = None  # the cell's state as the node names it (estop, running, ...)
    degraded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    per_min: dict[str, float] = field(default_factory=dict)  # outcome -> parcels a minute
    brain_share: float | None = None  # 0..1 of brain + routing_table decisions in the window
    config_version: str = ""


@dataclass
class _Node:
    state: NodeState | None = None
    last_ts: float | None = None  # newest message ts (epoch) of the node
    dead_since: float | None = None
    dead_before: bool = False  # the will was retained: it died before dead_since
    safety: str | None = None
    degraded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    faults: set[str] = field(default_factory=set)
    config_version: str = ""
    parcels: deque[tuple[float, str, str]] = field(default_factory=deque)  # ts, outcome, source


def _text(value: object, limit: int = 64) -> str:
    return printable(value, limit) if isinstance(value, str) else ""


def _texts(value: object, most: int = 32, raw: bool = False) -> list[str] | None:
    """A list of strings from the wire, made printable (``raw``: as sent, only clipped);
    None when it is not such a list."""
    if not isinstance(value, list):
        return None
    clip = (lambda v: v[:256]) if raw else printable
    return sorted(clip(v) for v in value[:most] if isinstance(v, str))


def _epoch(ts: object) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return parse_stamp(ts)
    except (ValueError, OverflowError, OSError):
        return None


class FleetView:
    """Feed it with ``on_message`` / ``on_state`` of a Brain; read ``rows()``. ``clock`` is
    wall time (messages carry wall-clock ``ts``)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        window_s: float = PARCEL_WINDOW_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self._clock = clock
        self.window_s = window_s
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self.started = clock()
        self.subscribed: float | None = None  # when the broker's retained messages came
        self.rejected = safe_json.Rejections(log, "monitor: event")

    def mark_subscribed(self) -> None:
        """Call when the subscription is in place. A will delivered with MQTT's retain flag is
        the broker's stored copy of an older death, shown as "DEAD before <then>"; for a state
        whose flag is unknown (``retained`` None), one arriving within a second of this is."""
        self.subscribed = self._clock()

    def _node(self, name: str) -> _Node | None:
        node = self._nodes.get(name)
        if node is None:
            if len(self._nodes) >= MAX_NODES:
                self.rejected.count("too_many_nodes", name, f"more than {MAX_NODES} nodes")
                return None
            node = self._nodes[name] = _Node()
        return node

    def on_state(self, state: NodeState) -> None:
        now = self._clock()
        with self._lock:
            node = self._node(state.node)
            if node is None:
                return
            node.state = state
            body = state.body
            if state.status == "offline" and body.get("reason") == WILL_REASON:
                # the will: only "dead" is true. Its ts is the connect's, so it says nothing
                # of age; what was known before (safety, faults) stays as the last known.
                if node.dead_since is None:
                    node.dead_since = now
                    # the broker's stored copy (MQTT's retain flag on delivery) is an older
                    # death; where the flag is unknown, a will this soon after subscribing
                    node.dead_before = bool(state.retained) or (
                        state.retained is None
                        and self.subscribed is not None
                        and now - self.subscribed <= RETAINED_S
                    )
                node.parcels.clear()
                return
            node.dead_since = None
            node.dead_before = False
            self._seen(node, state.ts)
            faults = _texts(body.get("faults"), raw=True)  # printable when drawn
            if faults is not None:
                node.faults = set(faults)
            node.config_version = _text(body.get("config_version")) or node.config_version
            cell = body.get("cell")
            if isinstance(cell, dict):
                node.safety = _text(cell.get("state")) or node.safety
                node.config_version = _text(cell.get("config_version")) or node.config_version
                for key, attr in (("devices_missing", "missing"), ("degraded", "degraded")):
                    found = _texts(cell.get(key))
                    if found is not None:
                        setattr(node, attr, found)

    def on_message(self, m: Message) -> None:
        with self._lock:
            node = self._node(m.node)
            if node is None:
                return
            self._seen(node, m.ts)
            if m.kind != "events":
                return
            data = m.data
            if m.channel == "events/parcel":
                self._parcel(node, m.ts, data)
            elif m.channel in ("events/fault", "events/safety"):
                found = inbound.event_data_problems(m.name, data)
                if found:
                    self.rejected.count(safe_json.INVALID_SCHEMA, m.channel, "; ".join(found[:3]))
                    return
                if m.name == "safety":
                    node.safety = _text(data["to"]) or node.safety
                elif data.get("active"):
                    node.faults.add(data["code"][:256])  # printable when drawn
                else:
                    node.faults.discard(data["code"][:256])
            elif m.channel == "events/degraded" and isinstance(data, dict):
                found_devices = _texts(data.get("devices"))
                if found_devices is not None:
                    node.degraded = found_devices

    def _seen(self, node: _Node, ts: str) -> None:
        when = _epoch(ts)
        if when is not None and (node.last_ts is None or when > node.last_ts):
            node.last_ts = when

    def _parcel(self, node: _Node, ts: str, data: Any) -> None:
        if node.dead_since is not None or not isinstance(data, dict):
            return  # a dead node's backlog comes again when it is back
        when = _epoch(ts)
        outcome = data.get("outcome")
        if when is None or not isinstance(outcome, str):
            return
        source = data.get("decision_source")
        node.parcels.append((when, outcome, source if isinstance(source, str) else ""))
        if len(node.parcels) > MAX_PARCELS:
            node.parcels.popleft()

    def rows(self) -> list[NodeRow]:
        now = self._clock()
        with self._lock:
            return [self._row(name, node, now) for name, node in sorted(self._nodes.items())]

    def _row(self, name: str, node: _Node, now: float) -> NodeRow:
        state = node.state
        since = max(now - self.window_s, self.started)
        span = max(1.0, now - since)
        counts = dict.fromkeys(_OUTCOMES, 0)
        brain = local = total = 0
        for ts, outcome, source in node.parcels:
            if since <= min(ts, now):  # a ts ahead of our clock counts as now
                total += 1
                if outcome in counts:
                    counts[outcome] += 1
                brain += source == "brain"
                local += source == "routing_table"
        while node.parcels and node.parcels[0][0] < now - self.window_s:
            node.parcels.popleft()
        age = None if node.last_ts is None else max(0.0, now - node.last_ts)
        if node.dead_since is not None:
            link = "DEAD"
        elif state is None:
            link = "unknown"
        elif not state.online:
            link = "offline"
        elif age is not None and age > self.stale_after_s:
            link = "STALE"
        else:
            link = "online"
        outbox = state.body.get("outbox") if state else None
        outbox = outbox if isinstance(outbox, dict) else {}
        depth = outbox.get("depth")
        return NodeRow(
            node=name,
            online=None if state is None else state.online and node.dead_since is None,
            session=state.session if state else None,
            last_seen_s=-1.0 if age is None else age,
            parcels_per_min=total * 60.0 / span,
            faults=sorted(node.faults),
            outbox_depth=depth if type(depth) is int else None,
            dropped=sum(
                outbox[k]
                for k in ("dropped_telemetry", "dropped_events")
                if type(outbox.get(k)) is int
            ),
            link=link,
            dead_since=node.dead_since,
            dead_before=node.dead_before,
            offline_reason=_text(state.body.get("reason")) if state else "",
            safety=node.safety,
            degraded=list(node.degraded),
            missing=list(node.missing),
            per_min={k: v * 60.0 / span for k, v in counts.items()},
            brain_share=brain / (brain + local) if brain + local else None,
            config_version=node.config_version,
        )


HEADER = (
    "NODE", "LINK", "SAFETY", "FAULTS", "MISSING", "SORTED/MIN", "REJECTED/MIN", "LOST/MIN",
    "BRAIN", "CONFIG", "AGE", "OUTBOX",
)  # fmt: skip


def printable(text: object, limit: int = 64) -> str:
    """Text from the wire made safe for a terminal: no control or escape sequences, no line
    separators, no lone surrogates (print would raise), no rich markup (rendered as text), at
    most ``limit`` characters."""
    text = text if isinstance(text, str) else str(text)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in text)


def safety_text(row: NodeRow) -> str:
    """ESTOP, FAULT, RUNNING ... upper-case; DEGRADED beside it while devices are degraded."""
    state = (row.safety or "-").upper()
    return f"{state} DEGRADED" if row.degraded else state


def link_text(row: NodeRow) -> str:
    if row.link == "DEAD" and row.dead_since is not None:
        when = time.strftime("%H:%M:%S", time.localtime(row.dead_since))
        return f"DEAD before {when}" if row.dead_before else f"DEAD since {when}"
    if row.link == "offline" and row.offline_reason:
        return f"offline ({row.offline_reason})"
    return row.link


def _cells(r: NodeRow) -> tuple[str, ...]:
    def rate(outcome: str) -> str:
        return f"{r.per_min.get(outcome, 0.0):.0f}"

    return (
        r.node,
        link_text(r),
        safety_text(r),
        printable(",".join(r.faults), 200) or "-",
        printable(",".join(r.missing), 120) or "-",
        rate("sorted"),
        rate("rejected"),
        rate("lost"),
        "-" if r.brain_share is None else f"{r.brain_share * 100:.0f}%",
        printable(r.config_version, 24) or "-",
        "-" if r.last_seen_s < 0 else f"{r.last_seen_s:.1f}s",
        "-" if r.outbox_depth is None else str(r.outbox_depth),
    )


def _style(r: NodeRow) -> str:
    if r.link in ("DEAD", "STALE") or (r.safety or "") in ALARM_STATES:
        return "bold red"
    if r.link != "online" or r.degraded or r.faults or r.missing:
        return "yellow"
    return ""


def headline(rows: list[NodeRow], site: str) -> str:
    online = sum(1 for r in rows if r.link == "online")
    dead = sum(1 for r in rows if r.link == "DEAD")
    tail = f", {dead} DEAD" if dead else ""
    return f"site {printable(site)}: {online}/{len(rows)} nodes online{tail}"


def table(
    rows: list[NodeRow],
    site: str,
    rejected: Mapping[str, int] | None = None,
    window_s: float = PARCEL_WINDOW_S,
) -> Any:
    """The rich renderable of the view: a headline, one row per node, a footnote."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(headline(rows, site) if rows else _empty(site))]
    if rows:
        grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for name in HEADER:
            numeric = name.endswith("/MIN") or name in ("BRAIN", "AGE", "OUTBOX")
            grid.add_column(name, justify="right" if numeric else "left", no_wrap=True)
        for r in rows:
            grid.add_row(*(Text(c) for c in _cells(r)), style=_style(r))
        parts.append(grid)
        parts.append(
            Text(
                f"per minute: parcels finished in the last {window_s:g} s by their own ts; "
                "BRAIN: the brain's share of brain + routing-table decisions; AGE: since the "
                "newest message's ts",
                style="dim",
            )
        )
    if rejected and sum(rejected.values()):
        parts.append(Text(f"rejected messages: {safe_json.describe(rejected)}"))
    return Group(*parts)


def _empty(site: str) -> str:
    return f"site {printable(site)}: no nodes seen yet (right broker and site? nodes publish state)"


def render(
    rows: list[NodeRow],
    site: str,
    rejected: Mapping[str, int] | None = None,
    width: int = 200,
) -> str:
    """The view as plain text (no colour codes: for pipes, logs and --once)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=_Null(), color_system=None)
    console.print(table(rows, site, rejected))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()).rstrip()


def rows_json(rows: list[NodeRow]) -> list[dict[str, Any]]:
    """The rows for ``--json``: what the table shows, as values."""
    out = []
    for r in rows:
        out.append(
            {
                "node": r.node,
                "link": r.link,
                "dead_since": r.dead_since,
                "dead_before": r.dead_before,
                "offline_reason": r.offline_reason or None,
                "safety": r.safety,
                "degraded": r.degraded,
                "faults": r.faults,
                "devices_missing": r.missing,
                "per_min": {k: round(v, 2) for k, v in r.per_min.items()},
                "brain_share": None if r.brain_share is None else round(r.brain_share, 3),
                "config_version": r.config_version or None,
                "age_s": None if r.last_seen_s < 0 else round(r.last_seen_s, 2),
                "session": r.session,
                "outbox_depth": r.outbox_depth,
                "dropped": r.dropped,
            }
        )
    return out


class _Null:
    """A file that discards: the recording console keeps what it printed."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass
