"""The safety figures of a `wolfpack sim` run: strokes fired while the node was not running,
and how long the belt took to stop after each e-stop, fault and node death.

Where each figure comes from (docs/sim-cell.md, "The report"):
- strokes: the world, which logs every diverter stroke's start (time, station, driver);
- the node's safety state over time: the node's own account, from two sources merged on one
  time line, (a) its health file, rewritten on every state change with the time of writing
  and its pid (polled by the sim every 10 ms; immune to a broken outbox or broker), (b) its
  ``events/safety`` messages with their timestamps (they fill in changes faster than a poll
  and arrive late when reporting is broken), plus (c) what the sim knows itself: when it
  killed the node (``dead`` until the restarted process reports);
- standstill: the world's belt, whose motion is exact at any instant.

A stroke while the node is ``dead`` within the MCU's watchdog time of the kill is the MCU
executing what the running node had scheduled (its watchdog then makes every output safe):
it is counted apart (``while_node_dead_before_watchdog``), not as a fault of the node.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEAD = "dead"
RUNNING = "running"


@dataclass
class StateTimeline:
    """The node's safety state over monotonic time: points (t, state, source), the state at
    ``t`` being the last point at or before it."""

    points: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, t: float, state: str, source: str) -> None:
        """Thread-safe: the health poller and the MQTT consumer both add."""
        with self._lock:
            bisect.insort(self.points, (t, state, source))

    def state_at(self, t: float) -> tuple[str | None, float | None]:
        """(state, since when) at ``t``; (None, None) before the first point."""
        i = bisect.bisect_right(self.points, (t, "\uffff", "\uffff")) - 1
        if i < 0:
            return None, None
        state = self.points[i][1]
        since = self.points[i][0]
        while i > 0 and self.points[i - 1][1] == state:
            i -= 1
            since = self.points[i][0]
        return state, since

    def entries_into(self, state: str) -> list[float]:
        """Times the state became ``state`` (from another one)."""
        out, prev = [], None
        for t, s, _src in self.points:
            if s == state and prev != state:
                out.append(t)
            prev = s
        return out

    def transitions(self) -> list[tuple[float, str]]:
        """(time, new state), consecutive repeats merged: for the report."""
        out: list[tuple[float, str]] = []
        for t, s, _src in self.points:
            if not out or out[-1][1] != s:
                out.append((t, s))
        return out


def judge_strokes(
    strokes: Iterable[Sequence[Any]],
    timeline: StateTimeline,
    kills: Sequence[float],
    watchdog_s: float,
    slack_s: float = 0.05,
) -> dict[str, Any]:
    """Each stroke start (t, station, driver) against the node's state then."""
    kills = sorted(kills)
    counted: list[dict[str, Any]] = []
    before_watchdog = 0
    total = 0
    by_state: Counter[str] = Counter()
    for stroke in strokes:
        t, station, driver = float(stroke[0]), int(stroke[1]), str(stroke[2])
        total += 1
        state, since = timeline.state_at(t)
        if state == RUNNING:
            continue
        if state == DEAD:
            i = bisect.bisect_right(kills, t) - 1
            if i >= 0 and t - kills[i] <= watchdog_s + slack_s:
                before_watchdog += 1
                continue
        by_state[str(state)] += 1
        counted.append({
            "t": round(t, 3), "station": station, "driver": driver, "state": state,
            "ms_into_state": None if since is None else round(1000 * (t - since), 1),
        })  # fmt: skip
    return {
        "strokes": total,
        "while_not_running": len(counted),
        "while_not_running_by_state": dict(by_state),
        "while_node_dead_before_watchdog": before_watchdog,
        "examples": counted[:10],
    }


def belt_stops(
    causes: Sequence[tuple[str, float]],
    standstills: Sequence[float | None],
    limit_ms: float,
    t0: float,
) -> dict[str, Any]:
    """Each cause (kind, time) with the world's standstill after it: the stop time, the
    max per kind and overall, and those over ``limit_ms`` (None: the belt never stopped,
    over by definition)."""
    rows = []
    worst: dict[str, float] = {}
    over = 0
    for (kind, t), rest in zip(causes, standstills, strict=True):
        ms = None if rest is None else round(1000 * (rest - t), 1)
        rows.append({"cause": kind, "at_s": round(t - t0, 3), "stop_ms": ms})
        if ms is None or ms > limit_ms:
            over += 1
        worst[kind] = max(worst.get(kind, 0.0), float("inf") if ms is None else ms)
    overall = max(worst.values(), default=None)
    return {
        "belt_stop_ms": None if overall is None else _finite(overall),
        "by_cause": {k: _finite(v) for k, v in sorted(worst.items())},
        "limit_ms": limit_ms,
        "over_limit": over,
        "stops": rows,
    }


def _finite(ms: float) -> float | str:
    return ms if ms != float("inf") else "never stopped"


def rss_growth(samples: Sequence[Mapping[str, Any]], warmup_s: float = 30.0) -> dict[str, Any]:
    """Per node process (pid), the median RSS of the last quarter of its samples minus that of
    the first quarter after ``warmup_s``: how much it grew while running. The max over the
    processes with at least 8 such samples (a process killed early says nothing)."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for s in samples:
        by_pid.setdefault(int(s["pid"]), []).append((float(s["t_s"]), float(s["rss_mb"])))
    growth: dict[str, float] = {}
    for pid, rows in by_pid.items():
        start = rows[0][0]
        rows = [r for r in rows if r[0] - start >= warmup_s]
        if len(rows) < 8:
            continue
        q = len(rows) // 4
        first = sorted(r[1] for r in rows[:q])
        last = sorted(r[1] for r in rows[-q:])
        growth[str(pid)] = round(last[len(last) // 2] - first[len(first) // 2], 1)
    return {
        "max_growth_mb": max(growth.values(), default=None),
        "by_pid": growth,
        "peak_mb": max((float(s["rss_mb"]) for s in samples), default=None),
    }
