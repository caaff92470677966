"""A reference VDA 5050 master control: a test tool that directs simulated vehicles, not the
product's brain.

It speaks VDA 5050 2.1 over MQTT only (orders and instant actions out; state and connection
in), as a fleet manager such as openTCS would, so the vehicle node is exercised exactly as on
a site. Its policy is deliberately simple and safe:

- routes are shortest paths on the map graph (Dijkstra on edge lengths, a surcharge on nodes
  other vehicles hold, so routes spread out);
- every node is reserved by at most one vehicle: a vehicle holds the node it stands on and
  the nodes of its released base; the base is extended in steps of ``release_ahead`` nodes
  only through free nodes (order updates stitched at the last base node), so two vehicles
  never share a node or drive one edge towards each other;
- the rest of the route is sent as the horizon (``released: false``);
- a vehicle that waits at the end of its base longer than ``reroute_after_s`` gets a new
  horizon around the nodes others hold; an idle vehicle in the way is sent to park;
- a vehicle below ``battery_low_percent`` goes to a free charger (``startCharging``) and is
  released (``stopCharging``) at ``battery_full_percent``;
- cancel and pause/resume are instant actions on request.

``MasterCore`` is pure (facts and a time in, messages out), so it is tested without a
broker; ``MasterControl`` runs it on paho-mqtt. sim_hardware never imports ``edge``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("wolfpack.sim.master")

VDA_VERSION = "2.1.0"
MAX_REFUSED = 3  # orders refused in a row before the master gives up on a vehicle
MAX_ASIDES = 3  # steps aside per order before it is left to stall (and be cancelled)
NodeKind = str  # "station", "charger", "park", "aisle"


# ---- the map ----
@dataclass(frozen=True)
class MapNode:
    id: str
    x: float
    y: float
    kind: NodeKind = "aisle"
    theta: float | None = None  # the heading a vehicle must have when it stops here


@dataclass
class MasterMap:
    """The graph the master plans on: nodes with positions and undirected edges."""

    map_id: str
    nodes: dict[str, MapNode]
    adj: dict[str, dict[str, float]] = field(default_factory=dict)
    max_speed: float | None = None

    @classmethod
    def build(
        cls,
        map_id: str,
        nodes: Iterable[MapNode],
        edges: Iterable[tuple[str, str]],
        max_speed: float | None = None,
    ) -> MasterMap:
        by_id = {n.id: n for n in nodes}
        adj: dict[str, dict[str, float]] = {n: {} for n in by_id}
        for a, b in edges:
            if a not in by_id or b not in by_id:
                raise ValueError(f"map {map_id}: edge {a}-{b} names an unknown node")
            length = math.dist((by_id[a].x, by_id[a].y), (by_id[b].x, by_id[b].y))
            adj[a][b] = adj[b][a] = length
        return cls(map_id, by_id, adj, max_speed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MasterMap:
        """``{"mapId", "nodes": [{"id", "x", "y", "kind"?, "theta"?}],
        "edges": [[a, b] | {"from", "to"}]}``"""
        nodes = [
            MapNode(
                str(n["id"]),
                float(n["x"]),
                float(n["y"]),
                str(n.get("kind", "aisle")),
                None if n.get("theta") is None else float(n["theta"]),
            )
            for n in data["nodes"]
        ]
        edges = [
            (str(e[0]), str(e[1]))
            if isinstance(e, list | tuple)
            else (str(e["from"]), str(e["to"]))
            for e in data["edges"]
        ]
        return cls.build(str(data.get("mapId", "map")), nodes, edges, data.get("maxSpeed"))

    def of_kind(self, kind: NodeKind) -> list[str]:
        return sorted(n for n, v in self.nodes.items() if v.kind == kind)

    def nearest(self, x: float, y: float) -> tuple[str, float]:
        best = min(self.nodes.values(), key=lambda n: math.dist((n.x, n.y), (x, y)))
        return best.id, math.dist((best.x, best.y), (x, y))

    def route(
        self,
        start: str,
        goal: str,
        cost: Callable[[str], float] | None = None,
        blocked: set[str] | frozenset[str] = frozenset(),
    ) -> list[str] | None:
        """Cheapest node path start..goal (Dijkstra); ``blocked`` nodes are never entered."""
        if start == goal:
            return [start]
        dist = {start: 0.0}
        prev: dict[str, str] = {}
        tie = itertools.count()
        heap = [(0.0, next(tie), start)]
        while heap:
            d, _, here = heapq.heappop(heap)
            if here == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return path[::-1]
            if d > dist.get(here, math.inf):
                continue
            for nxt, length in self.adj[here].items():
                if nxt in blocked:
                    continue
                nd = d + length + (cost(nxt) if cost else 0.0)
                if nd < dist.get(nxt, math.inf):
                    dist[nxt], prev[nxt] = nd, here
                    heapq.heappush(heap, (nd, next(tie), nxt))
        return None

    def length(self, path: list[str]) -> float:
        return sum(self.adj[a][b] for a, b in itertools.pairwise(path))


# ---- the pure core ----
@dataclass(frozen=True)
class Out:
    """One message to send: ``topic`` is ``order`` or ``instantActions``."""

    serial: str
    topic: str
    body: dict[str, Any]


@dataclass(frozen=True)
class MasterSettings:
    release_ahead: int = 2  # nodes released beyond the one the vehicle last reached
    reroute_after_s: float = 4.0
    resend_after_s: float = 2.0  # an order the vehicle has not taken is sent again (QoS 0)
    stall_after_s: float = 90.0  # no progress this long: the order is cancelled (failed)
    battery_low_percent: float = 30.0
    battery_full_percent: float = 80.0
    allowed_deviation_xy: float = 0.10  # at stop nodes (stations, chargers, parks)
    allowed_deviation_theta: float = 0.10
    pass_deviation_xy: float = 0.25  # at nodes driven through
    edge_max_speed: float | None = None
    reserved_cost: float = 5.0  # metres added per node another vehicle holds
    pick_action: str = "pick"
    load_type: str = "TOTE"
    action_duration_s: float | None = None  # pick/drop "duration" parameter (None: the vehicle's)
    drop_action: str = "drop"
    charge_action: str = "startCharging"
    stop_charge_action: str = "stopCharging"
    retry_after_s: float = 5.0  # after a failed order, before the vehicle gets another
    startup_grace_s: float = 30.0  # wait this long for every vehicle's first state
    transports: bool = True  # keep idle vehicles busy with random station-to-station orders
    seed: int = 1


@dataclass
class Job:
    kind: str  # "transport", "charge", "park"
    order_id: str
    path: list[str]
    actions: dict[int, list[dict[str, Any]]]  # path index -> actions at that node
    created: float
    update_id: int = 0
    released_to: int = 0  # index of the last released node
    sent_at: float = 0.0
    progress_at: float = 0.0
    waiting_since: float | None = None
    src: str | None = None
    dst: str | None = None
    acked: bool = False
    cancelled: bool = False
    last_at: int = 0  # the path index the vehicle last reported
    aside_at: float = -1e9  # when it last stepped aside for another vehicle
    asides: int = 0
    yield_node: str | None = None  # a node it left for ``yield_to`` to pass first
    yield_to: str | None = None
    stitch: int = 0  # the path index the latest update was stitched at


@dataclass
class VehicleView:
    serial: str
    online: bool = False
    state: dict[str, Any] | None = None
    node: str | None = None  # the node it stands on / last reached
    job: Job | None = None
    charging_at: str | None = None
    stop_charge_sent: float | None = None
    parked: bool = False
    refused_in_row: int = 0  # orders it refused one after the other
    rest_until: float = 0.0  # no new work before this (after a failed order)

    @property
    def battery(self) -> float:
        return float(((self.state or {}).get("batteryState") or {}).get("batteryCharge", 100.0))

    @property
    def fatal(self) -> bool:
        return any(e.get("errorLevel") == "FATAL" for e in (self.state or {}).get("errors", []))


@dataclass
class MasterStats:
    orders_completed: int = 0  # transport orders (pick and drop done)
    orders_failed: Counter[str] = field(default_factory=Counter)
    action_failures: Counter[str] = field(default_factory=Counter)
    charges_sent: int = 0
    charges_done: int = 0
    parks_sent: int = 0
    reroutes: int = 0
    resends: int = 0
    cancels: int = 0
    conflicts: int = 0  # a vehicle reported a node another one held
    step_asides: int = 0
    given_up: list[str] = field(default_factory=list)  # vehicles left to an operator
    rejections: list[dict[str, Any]] = field(default_factory=list)
    # (serial, nodeId, sequenceId, wall time) each time a vehicle reports a new last node
    arrivals: list[tuple[str, str, int, float]] = field(default_factory=list)
    transport_s: list[float] = field(default_factory=list)


class MasterCore:
    """Facts in (vehicle states, connection, time), VDA 5050 orders and instant actions out."""

    def __init__(self, mp: MasterMap, serials: Iterable[str], settings: MasterSettings) -> None:
        self.map = mp
        self.s = settings
        self.vehicles = {s: VehicleView(s) for s in serials}
        self.reserved: dict[str, str] = {}  # node -> serial
        self.stats = MasterStats()
        self._ids = itertools.count(1)
        self._action_ids = itertools.count(1)
        self._rng = random.Random(settings.seed)
        self.paused: set[str] = set()
        self.hold: set[str] = set()  # vehicles the master gives no new work (tests, faults)
        self._first_tick: float | None = None

    # ---- facts ----
    def on_connection(self, serial: str, state: str) -> None:
        v = self.vehicles.get(serial)
        if v is not None:
            v.online = state == "ONLINE"

    def on_state(self, serial: str, st: dict[str, Any], now: float) -> list[Out]:
        v = self.vehicles.get(serial)
        if v is None:
            return []
        v.state = st
        v.online = True
        last = st.get("lastNodeId") or None
        if last and last != v.node:
            self.stats.arrivals.append((serial, last, int(st.get("lastNodeSequenceId", 0)), now))
        if v.node is None and not last:
            pos = st.get("agvPosition")
            if pos and pos.get("positionInitialized", True):
                last, _ = self.map.nearest(float(pos["x"]), float(pos["y"]))
        if last and last in self.map.nodes:
            holder = self.reserved.get(last)
            if holder is not None and holder != serial and v.node != last:
                self.stats.conflicts += 1  # a vehicle where the master did not send it
                log.warning("%s reports node %s, which %s holds", serial, last, holder)
            v.node = last
            self._claim(last, serial)
        out: list[Out] = []
        if v.job is not None:
            out += self._progress(v, st, now)
        if v.job is None:
            self._free_all_but(serial, {v.node} if v.node else set())
        return out

    # ---- requests (tests and faults) ----
    def cancel(self, serial: str) -> list[Out]:
        v = self.vehicles[serial]
        if v.job is not None:
            v.job.cancelled = True
        self.stats.cancels += 1
        return [self._instant(serial, "cancelOrder")]

    def pause(self, serial: str) -> list[Out]:
        self.paused.add(serial)
        return [self._instant(serial, "startPause")]

    def resume(self, serial: str) -> list[Out]:
        self.paused.discard(serial)
        return [self._instant(serial, "stopPause")]

    # ---- the clock ----
    def tick(self, now: float) -> list[Out]:
        if self._first_tick is None:
            self._first_tick = now
        if any(v.node is None for v in self.vehicles.values()):
            # a vehicle not heard from yet may stand on a node a route would take: no work
            # until every vehicle has said where it is (or the grace time is over)
            if now - self._first_tick < self.s.startup_grace_s:
                return []
        out: list[Out] = []
        for v in self.vehicles.values():
            if v.state is None or not v.online or v.node is None:
                continue
            if v.job is not None:
                out += self._extend(v, now)
                out += self._watch_job(v, now)
            elif v.charging_at is not None:
                out += self._watch_charge(v, now)
            elif v.serial not in self.hold and not v.fatal and now >= v.rest_until:
                out += self._assign(v, now)
        return out

    # ---- jobs ----
    def _assign(self, v: VehicleView, now: float) -> list[Out]:
        assert v.node is not None
        if v.battery < self.s.battery_low_percent:
            charger = self._free_target(self.map.of_kind("charger"), v)
            if charger is not None:
                self.stats.charges_sent += 1
                return self._start_job(
                    v,
                    "charge",
                    [charger],
                    {charger: [self._action(self.s.charge_action, "HARD")]},
                    now,
                )
        if self.s.transports:
            stations = self.map.of_kind("station")
            free = [s for s in stations if self._target_free(s, v)]
            if len(free) >= 2:
                src = min(free, key=lambda s: self._dist(v.node, s) + self._rng.random())
                dst = self._rng.choice([s for s in free if s != src])
                load = f"load-{next(self._ids)}"
                params = {"loadId": load, "loadType": self.s.load_type, "stationType": "STATION"}
                if self.s.action_duration_s is not None:
                    params["duration"] = self.s.action_duration_s
                actions = {
                    src: [self._action(self.s.pick_action, "HARD", **params)],
                    dst: [self._action(self.s.drop_action, "HARD", **params)],
                }
                return self._start_job(v, "transport", [src, dst], actions, now)
        if not v.parked and self.map.nodes[v.node].kind != "park":
            park = self._free_target(self.map.of_kind("park"), v)
            if park is not None:
                self.stats.parks_sent += 1
                return self._start_job(v, "park", [park], {}, now)
        return []

    def _start_job(
        self,
        v: VehicleView,
        kind: str,
        goals: list[str],
        actions_at: dict[str, list[dict[str, Any]]],
        now: float,
    ) -> list[Out]:
        assert v.node is not None
        path = self._plan(v.serial, v.node, goals)
        if path is None:
            return []
        index: dict[int, list[dict[str, Any]]] = {}
        for node, acts in actions_at.items():
            # the goal's index: the last occurrence at or after the previous goal
            idx = max(i for i, n in enumerate(path) if n == node)
            index[idx] = acts
        order_id = f"{kind[0].upper()}{next(self._ids)}-{v.serial}"
        job = Job(kind, order_id, path, index, now, src=goals[0], dst=goals[-1])
        job.progress_at = now
        v.job, v.parked = job, False
        job.released_to = 0
        self._reserve_ahead(v, job)
        return [self._order(v, job, first=True, now=now)]

    def _plan(self, serial: str, start: str, goals: list[str]) -> list[str] | None:
        path = [start]
        for g in goals:
            leg = self.map.route(path[-1], g, cost=lambda n: self._cost(serial, n))
            if leg is None:
                return None
            path += leg[1:]
        return path

    def _cost(self, serial: str, node: str) -> float:
        holder = self.reserved.get(node)
        return self.s.reserved_cost if holder is not None and holder != serial else 0.0

    def _dist(self, a: str, b: str) -> float:
        path = self.map.route(a, b)
        return self.map.length(path) if path else math.inf

    def _target_free(self, node: str, v: VehicleView) -> bool:
        holder = self.reserved.get(node)
        if holder is not None and holder != v.serial:
            return False
        for o in self.vehicles.values():
            if o is not v and o.job is not None and node in (o.job.src, o.job.dst):
                return False
            if o is not v and o.node == node:
                return False
        return True

    def _free_target(self, nodes: list[str], v: VehicleView) -> str | None:
        free = [n for n in nodes if self._target_free(n, v)]
        assert v.node is not None
        here = v.node
        return min(free, key=lambda n: self._dist(here, n)) if free else None

    # ---- reservations ----
    def _claim(self, node: str, serial: str) -> None:
        self.reserved.setdefault(node, serial)

    def _free_all_but(self, serial: str, keep: set[str]) -> None:
        for node in [n for n, s in self.reserved.items() if s == serial and n not in keep]:
            del self.reserved[node]

    def _reserve_ahead(self, v: VehicleView, job: Job) -> bool:
        """Reserve and release nodes up to ``release_ahead`` beyond the vehicle; True if the
        base grew."""
        at = self._index(v, job)
        target = min(len(job.path) - 1, at + self.s.release_ahead)
        grew = False
        while job.released_to < target:
            node = job.path[job.released_to + 1]
            holder = self.reserved.get(node)
            if holder is not None and holder != v.serial:
                break
            if node == job.yield_node:
                if self._still_needs(job.yield_to, node):
                    break  # stepped aside for that vehicle: it passes first
                job.yield_node = job.yield_to = None
            self.reserved[node] = v.serial
            job.released_to += 1
            grew = True
        return grew

    def _index(self, v: VehicleView, job: Job) -> int:
        st = v.state or {}
        if st.get("orderId") == job.order_id and job.acked:
            return max(0, int(st.get("lastNodeSequenceId", 0)) // 2)
        return 0

    # ---- progress ----
    def _progress(self, v: VehicleView, st: dict[str, Any], now: float) -> list[Out]:
        job = v.job
        assert job is not None
        errors = [e for e in st.get("errors", []) if _refers_to(e, job.order_id)]
        if st.get("orderId") != job.order_id:
            if errors:  # refused before it was taken
                return self._fail(v, errors[0].get("errorType", "rejected"), now, errors[0])
            if job.cancelled:
                return self._fail(v, "cancelled", now)
            return []
        if int(st.get("orderUpdateId", -1)) == job.update_id:
            job.acked = True
        if not job.acked:
            if errors:  # an update refused (the vehicle keeps the older one)
                return self._fail(v, errors[0].get("errorType", "rejected"), now, errors[0])
            return []
        at = self._index(v, job)
        # free what the vehicle has left behind
        keep = set(job.path[at : job.released_to + 1])
        self._free_all_but(v.serial, keep)
        failed = [
            a
            for a in st.get("actionStates", [])
            if a.get("actionStatus") == "FAILED" and self._ours(job, a.get("actionId"))
        ]
        if failed:
            a = failed[0]
            self.stats.action_failures[
                f"{a.get('actionType')}: {a.get('resultDescription', '')}".rstrip(": ")
            ] += 1
            return self._fail(v, f"action {a.get('actionType')} failed", now)
        if job.cancelled:
            if not st.get("nodeStates") and not st.get("edgeStates"):
                return self._fail(v, "cancelled", now)
            return []
        done = (
            not st.get("nodeStates")
            and not st.get("edgeStates")
            and job.released_to == len(job.path) - 1
            and all(
                a.get("actionStatus") == "FINISHED"
                for a in st.get("actionStates", [])
                if self._ours(job, a.get("actionId"))
            )
        )
        if at != job.last_at:
            job.progress_at = now
            job.last_at = at
        if done:
            return self._finish(v, now)
        return []

    def _ours(self, job: Job, action_id: Any) -> bool:
        return any(a["actionId"] == action_id for acts in job.actions.values() for a in acts)

    def _finish(self, v: VehicleView, now: float) -> list[Out]:
        job = v.job
        assert job is not None
        v.refused_in_row = 0
        if job.kind == "transport":
            self.stats.orders_completed += 1
            self.stats.transport_s.append(now - job.created)
        elif job.kind == "charge":
            v.charging_at = job.dst
        elif job.kind == "park":
            v.parked = True
        v.job = None
        self._free_all_but(v.serial, {v.node} if v.node else set())
        return []

    def _fail(self, v: VehicleView, reason: str, now: float, error: Any = None) -> list[Out]:
        job = v.job
        assert job is not None
        if job.kind == "transport":
            self.stats.orders_failed[reason] += 1
        v.rest_until = now + self.s.retry_after_s
        if error is not None:
            self.stats.rejections.append({"vehicle": v.serial, "order": job.order_id, **error})
            v.refused_in_row += 1
            if v.refused_in_row >= MAX_REFUSED:
                # it refuses whatever it is sent (not where the master thinks, an error of
                # its own): leave it to an operator rather than flood it
                self.hold.add(v.serial)
                self.stats.given_up.append(v.serial)
                log.warning(
                    "%s refused %d orders in a row: no more work for it", v.serial, v.refused_in_row
                )
        log.info("%s: order %s failed: %s", v.serial, job.order_id, reason)
        v.job = None
        self._free_all_but(v.serial, {v.node} if v.node else set())
        return []

    def _extend(self, v: VehicleView, now: float) -> list[Out]:
        job = v.job
        assert job is not None
        if job.cancelled or v.serial in self.paused:
            return []
        if not job.acked:
            if now - job.sent_at > self.s.resend_after_s:
                self.stats.resends += 1
                return [self._order(v, job, first=job.update_id == 0, now=now, bump=False)]
            return []
        before = job.released_to
        if self._reserve_ahead(v, job):
            job.waiting_since = None
            return [self._order(v, job, first=False, now=now, stitch=before)]
        at = self._index(v, job)
        if at == job.released_to < len(job.path) - 1:
            if job.waiting_since is None:
                job.waiting_since = now
            elif now - job.waiting_since > self.s.reroute_after_s:
                job.waiting_since = now
                return self._reroute(v, job, now)
        return []

    def _reroute(self, v: VehicleView, job: Job, now: float) -> list[Out]:
        """A new horizon around the nodes others hold; an idle vehicle in the way parks."""
        at = job.released_to
        blocker = self.reserved.get(job.path[at + 1])
        out: list[Out] = []
        if blocker is not None:
            b = self.vehicles[blocker]
            if b.job is None and b.charging_at is None and b.node is not None:
                # out of the way: a free parking place, else the nearest free node that is
                # neither its own nor on the waiting vehicle's route
                ahead = set(job.path[at:]) | {b.node}
                parks = [n for n in self.map.of_kind("park") if n not in ahead]
                others = [
                    n
                    for n, nd in self.map.nodes.items()
                    if nd.kind in ("aisle", "charger") and n not in ahead
                ]
                park = self._free_target(parks, b) or self._free_target(others, b)
                if park is not None:
                    self.stats.parks_sent += 1
                    out += self._start_job(b, "park", [park], {}, now)
        goals = sorted({i for i in job.actions if i > at} | {len(job.path) - 1})
        blocked = {n for n, s in self.reserved.items() if s != v.serial}
        path = job.path[: at + 1]
        for gi in goals:
            leg = self.map.route(path[-1], job.path[gi], blocked=blocked)
            if leg is None:
                return out + self._maybe_step_aside(v, job, blocker, now)
            path += leg[1:]
        if path == job.path:
            return out + self._maybe_step_aside(v, job, blocker, now)
        actions: dict[int, list[dict[str, Any]]] = {i: a for i, a in job.actions.items() if i <= at}
        cursor = at
        for gi in goals:
            node = job.path[gi]
            idx = next(i for i in range(cursor + 1, len(path)) if path[i] == node)
            if gi in job.actions:
                actions[idx] = job.actions[gi]
            cursor = idx
        job.path, job.actions = path, actions
        self.stats.reroutes += 1
        out.append(self._order(v, job, first=False, now=now, stitch=at))
        return out

    def _maybe_step_aside(
        self, v: VehicleView, job: Job, blocker: str | None, now: float
    ) -> list[Out]:
        """Two vehicles each waiting for the node the other stands on (one at a dead end, a
        station, the other in front of it) never get out of it by rerouting: the waiting
        vehicle steps aside onto a free neighbour and back, which frees its node for the
        other. Only one of the pair does (the other's recent step aside is respected)."""
        if blocker is None:
            return []
        b = self.vehicles[blocker]
        if b.job is None or b.node is None:
            return []
        b_at = b.job.released_to
        waits_for_us = b_at + 1 < len(b.job.path) and b.job.path[b_at + 1] == v.node
        if not waits_for_us or now - b.job.aside_at < self.s.reroute_after_s * 3:
            return []
        if job.asides >= MAX_ASIDES:
            return []  # the order stalls; the stall timeout cancels it
        at = job.released_to
        here = job.path[at]
        avoid = set(b.job.path[b_at:]) | set(job.path[at:])
        free = [
            n
            for n in sorted(self.map.adj[here])
            if n not in self.reserved
            and n not in avoid
            and all(o.node != n for o in self.vehicles.values())
        ]
        if not free:
            return []
        side = min(free, key=lambda n: (self.map.nodes[n].kind == "station", n))
        job.path = [*job.path[: at + 1], side, here, *job.path[at + 1 :]]
        job.actions = {(i if i <= at else i + 2): a for i, a in job.actions.items()}
        job.aside_at = now
        job.asides += 1
        job.yield_node, job.yield_to = here, blocker
        self.stats.step_asides += 1
        log.info("%s steps aside to %s for %s", v.serial, side, blocker)
        return [self._order(v, job, first=False, now=now, stitch=at)]

    def _still_needs(self, serial: str | None, node: str) -> bool:
        """Whether vehicle ``serial`` has ``node`` still ahead on its route."""
        o = self.vehicles.get(serial or "")
        if o is None or o.job is None:
            return False
        return node in o.job.path[self._index(o, o.job) :]

    def _watch_job(self, v: VehicleView, now: float) -> list[Out]:
        job = v.job
        assert job is not None
        if job.cancelled or v.serial in self.paused:
            job.progress_at = now
            return []
        if now - job.progress_at > self.s.stall_after_s:
            job.progress_at = now
            log.warning(
                "%s: order %s made no progress for %.0f s: cancelled",
                v.serial,
                job.order_id,
                self.s.stall_after_s,
            )
            return self.cancel(v.serial)
        return []

    def _watch_charge(self, v: VehicleView, now: float) -> list[Out]:
        if v.battery >= self.s.battery_full_percent:
            if v.stop_charge_sent is None or now - v.stop_charge_sent > self.s.resend_after_s:
                v.stop_charge_sent = now
                return [self._instant(v.serial, self.s.stop_charge_action)]
            charging = ((v.state or {}).get("batteryState") or {}).get("charging", False)
            if not charging:
                self.stats.charges_done += 1
                v.charging_at, v.stop_charge_sent = None, None
        return []

    # ---- messages ----
    def _action(self, kind: str, blocking: str, **params: Any) -> dict[str, Any]:
        action: dict[str, Any] = {
            "actionId": f"a{next(self._action_ids)}",
            "actionType": kind,
            "blockingType": blocking,
        }
        if params:
            action["actionParameters"] = [{"key": k, "value": v} for k, v in params.items()]
        return action

    def _instant(self, serial: str, kind: str) -> Out:
        return Out(serial, "instantActions", {"actions": [self._action(kind, "HARD")]})

    def _order(
        self,
        v: VehicleView,
        job: Job,
        first: bool,
        now: float,
        stitch: int = 0,
        bump: bool = True,
    ) -> Out:
        """The order (first) or an update stitched at node index ``stitch`` (the last base
        node the vehicle already has); the stitching node carries no actions again."""
        if not first and bump:
            job.update_id += 1
        if not bump and job.update_id > 0:
            stitch = job.stitch
        job.stitch = stitch
        job.sent_at = now
        start = 0 if first else stitch
        nodes, edges = [], []
        for i in range(start, len(job.path)):
            nid = job.path[i]
            node = self.map.nodes[nid]
            stop = i in job.actions or i == len(job.path) - 1
            pos: dict[str, Any] = {"x": node.x, "y": node.y, "mapId": self.map.map_id}
            if stop:
                pos["allowedDeviationXY"] = self.s.allowed_deviation_xy
                theta = node.theta if node.theta is not None else self._heading_into(job, i)
                if theta is not None:
                    pos["theta"] = theta
                    pos["allowedDeviationTheta"] = self.s.allowed_deviation_theta
            else:
                pos["allowedDeviationXY"] = self.s.pass_deviation_xy
            acts = job.actions.get(i, []) if (first or i != stitch) else []
            nodes.append(
                {
                    "nodeId": nid,
                    "sequenceId": 2 * i,
                    "released": i <= job.released_to,
                    "nodePosition": pos,
                    "actions": acts,
                }
            )
            if i + 1 < len(job.path):
                a, b = nid, job.path[i + 1]
                edge: dict[str, Any] = {
                    "edgeId": f"{a}--{b}",
                    "sequenceId": 2 * i + 1,
                    "released": i + 1 <= job.released_to,
                    "startNodeId": a,
                    "endNodeId": b,
                    "actions": [],
                }
                speed = self.s.edge_max_speed or self.map.max_speed
                if speed:
                    edge["maxSpeed"] = speed
                edges.append(edge)
        body = {
            "orderId": job.order_id,
            "orderUpdateId": job.update_id,
            "nodes": nodes,
            "edges": edges,
        }
        return Out(v.serial, "order", body)

    def _heading_into(self, job: Job, i: int) -> float | None:
        if i == 0:
            return None
        a, b = self.map.nodes[job.path[i - 1]], self.map.nodes[job.path[i]]
        return math.atan2(b.y - a.y, b.x - a.x)


def _refers_to(error: dict[str, Any], order_id: str) -> bool:
    return any(
        r.get("referenceKey") == "orderId" and r.get("referenceValue") == order_id
        for r in error.get("errorReferences", []) or []
    )


# ---- on MQTT ----
def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class MasterControl:
    """The core on paho-mqtt: subscribes to the vehicles' state and connection, ticks every
    ``tick_s``, publishes orders and instant actions (QoS 0, not retained, as VDA 5050 says)."""

    def __init__(
        self,
        broker_url: str,
        mp: MasterMap,
        serials: Iterable[str],
        manufacturer: str,
        interface_name: str = "uagv",
        settings: MasterSettings | None = None,
        tick_s: float = 0.05,
        on_state: Callable[[str, dict[str, Any], float], None] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.core = MasterCore(mp, serials, settings or MasterSettings())
        self.manufacturer, self.interface = manufacturer, interface_name
        self.tick_s = tick_s
        self.on_state_hook = on_state
        self.latencies_ms: list[float] = []
        self.connections: list[tuple[str, str, bool, float]] = []  # serial, state, retained, t
        self.states: Counter[str] = Counter()
        self.sent: list[tuple[float, str, str, dict[str, Any]]] = []
        self._headers: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        url = urlparse(broker_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 1883
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"master-{id(self):x}")
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.connected = threading.Event()

    @property
    def prefix(self) -> str:
        return f"{self.interface}/v2/{self.manufacturer}"

    def start(self, timeout: float = 10.0) -> MasterControl:
        self.client.connect(self._host, self._port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise OSError(f"master control: no connection to {self._host}:{self._port}")
        self._thread = threading.Thread(target=self._run, name="sim-master", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, _rc: Any, _props: Any) -> None:
        client.subscribe(f"{self.prefix}/+/state", qos=0)
        client.subscribe(f"{self.prefix}/+/connection", qos=1)
        self.connected.set()

    def _on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        now = time.time()
        parts = msg.topic.split("/")
        if len(parts) != 5:
            return
        serial, topic = parts[3], parts[4]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            log.warning("master: %s: not JSON", msg.topic)
            return
        if not isinstance(body, dict):
            return
        if topic == "connection":
            state = str(body.get("connectionState"))
            self.connections.append((serial, state, bool(msg.retain), now))
            with self._lock:
                self.core.on_connection(serial, state)
            return
        if topic != "state":
            return
        self.states[serial] += 1
        try:
            self.latencies_ms.append((now - parse_iso(str(body["timestamp"]))) * 1000.0)
        except (KeyError, ValueError):
            pass
        if self.on_state_hook is not None:
            self.on_state_hook(serial, body, now)
        with self._lock:
            out = self.core.on_state(serial, body, now)
        self._send(out)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self._lock:
                out = self.core.tick(time.time())
            self._send(out)

    def act(self, fn: Callable[[MasterCore], list[Out]]) -> None:
        """Run a request on the core under its lock (cancel, pause, resume) and send it."""
        with self._lock:
            out = fn(self.core)
        self._send(out)

    def _send(self, out: list[Out]) -> None:
        for o in out:
            key = (o.serial, o.topic)
            header = self._headers[key]
            self._headers[key] += 1
            now = time.time()
            body = {
                "headerId": header,
                "timestamp": _iso(now),
                "version": VDA_VERSION,
                "manufacturer": self.manufacturer,
                "serialNumber": o.serial,
                **o.body,
            }
            self.sent.append((now, o.serial, o.topic, body))
            self.client.publish(f"{self.prefix}/{o.serial}/{o.topic}", json.dumps(body), qos=0)
