"""The reference master control's planner (sim_hardware/amr/master.py) against toy vehicles that
follow VDA 5050's order rules at node granularity: whatever the map and the fleet, no two
vehicles ever stand on or drive towards the same node, updates stitch at the last base node,
and transport orders complete."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.amr.master import MapNode, MasterCore, MasterMap, MasterSettings, Out
from sim_hardware.amr.warehouse import DEFAULT_MAP


class ToyVehicle:
    """A vehicle that moves one released node per step and finishes actions at once."""

    def __init__(self, serial: str, node: str, battery: float = 100.0) -> None:
        self.serial = serial
        self.order_id = ""
        self.update_id = 0
        self.last = node
        self.last_seq = 0
        self.nodes: list[dict[str, Any]] = []  # still to traverse
        self.edges: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.battery = battery
        self.charging = False
        self.stitches = 0
        self.paused = False

    def on_order(self, o: dict[str, Any]) -> None:
        nodes = o["nodes"]
        if o["orderId"] != self.order_id:
            assert nodes[0]["nodeId"] == self.last, "a new order starts where the vehicle is"
            self.order_id, self.update_id = o["orderId"], o["orderUpdateId"]
            self.last_seq = nodes[0]["sequenceId"]
            self.nodes, self.edges = nodes[1:], list(o["edges"])
            self.actions = [dict(a, actionStatus="FINISHED") for a in nodes[0]["actions"]]
            for n in nodes[1:]:
                self.actions += [dict(a, actionStatus="WAITING") for a in n["actions"]]
            return
        if o["orderUpdateId"] <= self.update_id:
            return  # the same update again (a resend) or stale
        base = [self.last_seq] + [n["sequenceId"] for n in self.nodes if n["released"]]
        assert nodes[0]["sequenceId"] == base[-1], "an update stitches at the last base node"
        assert nodes[0]["actions"] == [], "the stitching node's actions are not sent again"
        self.stitches += 1
        self.update_id = o["orderUpdateId"]
        # the vehicle keeps its own copy of the stitching node (with its actions)
        keep = [n for n in self.nodes if n["sequenceId"] <= nodes[0]["sequenceId"]]
        self.nodes = keep + nodes[1:]
        self.edges = [e for e in self.edges if e["sequenceId"] < nodes[0]["sequenceId"]] + list(
            o["edges"]
        )
        known = {a["actionId"] for a in self.actions}
        for n in nodes[1:]:
            self.actions += [
                dict(a, actionStatus="WAITING") for a in n["actions"] if a["actionId"] not in known
            ]

    def on_instant(self, body: dict[str, Any]) -> None:
        for a in body["actions"]:
            if a["actionType"] == "startCharging":
                self.charging = True
            elif a["actionType"] == "stopCharging":
                self.charging = False

    def step(self) -> None:
        if self.charging:
            self.battery = min(100.0, self.battery + 20)
        if self.paused or not self.nodes or not self.nodes[0]["released"]:
            return
        nxt = self.nodes.pop(0)
        self.edges = [e for e in self.edges if e["sequenceId"] > nxt["sequenceId"]]
        self.last, self.last_seq = nxt["nodeId"], nxt["sequenceId"]
        ids = {a["actionId"] for a in nxt["actions"]}
        for a in self.actions:
            if a["actionId"] in ids:
                a["actionStatus"] = "FINISHED"
                if a["actionType"] == "startCharging":
                    self.charging = True
        self.battery = max(0.0, self.battery - 1.5)

    def state(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "orderUpdateId": self.update_id,
            "lastNodeId": self.last,
            "lastNodeSequenceId": self.last_seq,
            "nodeStates": [
                {"nodeId": n["nodeId"], "sequenceId": n["sequenceId"], "released": n["released"]}
                for n in self.nodes
            ],
            "edgeStates": [
                {"edgeId": e["edgeId"], "sequenceId": e["sequenceId"], "released": e["released"]}
                for e in self.edges
            ],
            "actionStates": [
                {
                    "actionId": a["actionId"],
                    "actionType": a["actionType"],
                    "actionStatus": a["actionStatus"],
                }
                for a in self.actions
            ],
            "driving": bool(self.nodes and self.nodes[0]["released"]),
            "batteryState": {"batteryCharge": self.battery, "charging": self.charging},
            "errors": self.errors,
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }


def grid_map(cols: int, rows: int, spacing: float = 2.0) -> MasterMap:
    """Aisles on a grid; stations on the top row, parks on the bottom, one charger at the left."""
    nodes, edges = [], []
    for r in range(rows):
        for c in range(cols):
            kind = "aisle"
            if r == rows - 1:
                kind = "station"
            elif r == 0:
                kind = "park"
            if r == 1 and c == 0:
                kind = "charger"
            nodes.append(MapNode(f"n{r}_{c}", c * spacing, r * spacing, kind))
            if c:
                edges.append((f"n{r}_{c - 1}", f"n{r}_{c}"))
            if r:
                edges.append((f"n{r - 1}_{c}", f"n{r}_{c}"))
    return MasterMap.build("grid", nodes, edges, max_speed=1.0)


def run_fleet(
    mp: MasterMap,
    n: int,
    steps: int,
    settings: MasterSettings,
    battery: float = 100.0,
    starts: list[str] | None = None,
) -> tuple[MasterCore, dict[str, ToyVehicle]]:
    parks = starts or mp.of_kind("park") + mp.of_kind("aisle")
    cars = {f"v{i}": ToyVehicle(f"v{i}", parks[i], battery) for i in range(n)}
    core = MasterCore(mp, cars, settings)

    def deliver(outs: list[Out]) -> None:
        for o in outs:
            if o.topic == "order":
                cars[o.serial].on_order(o.body)
            else:
                cars[o.serial].on_instant(o.body)

    t = 0.0
    for serial, car in cars.items():
        core.on_connection(serial, "ONLINE")
        deliver(core.on_state(serial, car.state(), t))
    for _ in range(steps):
        t += 0.5
        deliver(core.tick(t))
        for serial, car in cars.items():
            car.step()
            deliver(core.on_state(serial, car.state(), t))
        where = [c.last for c in cars.values()]
        assert len(set(where)) == len(where), f"two vehicles on one node at t={t}: {where}"
        # no vehicle's released base reaches a node another vehicle stands on or has released
        claims: dict[str, str] = {}
        for s, c in cars.items():
            for node in [c.last] + [x["nodeId"] for x in c.nodes if x["released"]]:
                assert claims.setdefault(node, s) == s, f"{node} claimed by {claims[node]} and {s}"
    return core, cars


@settings(max_examples=25, deadline=None)
@given(
    cols=st.integers(3, 6),
    rows=st.integers(3, 5),
    share=st.floats(0.1, 0.5),
    seed=st.integers(0, 10_000),
)
def test_vehicles_never_share_a_node_and_orders_complete(
    cols: int, rows: int, share: float, seed: int
) -> None:
    mp = grid_map(cols, rows)
    n = max(1, min(cols, math.floor(cols * rows * share)))
    core, cars = run_fleet(mp, n, 160, MasterSettings(seed=seed, reroute_after_s=1.0))
    assert core.stats.orders_completed >= 1
    assert not core.stats.orders_failed
    assert sum(c.stitches for c in cars.values()) >= 1


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 10))
def test_the_simulators_map_never_deadlocks_a_fleet(seed: int, n: int) -> None:
    """Stations and parking places are dead ends off the aisles: two vehicles each waiting
    for the other's node must be resolved (one steps aside), idle ones moved out of the way."""
    data = json.loads(DEFAULT_MAP.read_text())
    mp = MasterMap.from_dict(data)
    core, _ = run_fleet(
        mp, n, 300, MasterSettings(seed=seed, reroute_after_s=1.0), starts=data["vehicles"]
    )
    assert core.stats.orders_completed >= 20, core.stats
    assert not core.stats.orders_failed


def test_a_low_battery_vehicle_is_sent_to_charge_and_released_when_full() -> None:
    mp = grid_map(4, 4)
    core, cars = run_fleet(mp, 1, 60, MasterSettings(battery_low_percent=30), battery=20.0)
    assert core.stats.charges_sent >= 1
    assert core.stats.charges_done >= 1
    assert not cars["v0"].charging
    assert core.stats.orders_completed >= 1  # back to work afterwards


def test_routes_avoid_blocked_nodes_and_refuse_when_cut_off() -> None:
    mp = grid_map(3, 3)
    assert mp.route("n0_0", "n2_2") is not None
    path = mp.route("n0_0", "n0_2", blocked={"n0_1"})
    assert path is not None and "n0_1" not in path
    assert mp.route("n0_0", "n0_2", blocked={"n0_1", "n1_0", "n1_1"}) is None
