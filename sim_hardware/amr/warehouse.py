"""The simulated warehouse's map: nodes (aisle crossings, stations, chargers, parking) with
their floor codes, edges (the aisles), racks, and the drivable area for ground truth.

The map file is JSON, the same the reference master control reads (``MasterMap.from_dict``:
``mapId``, ``nodes`` with ``id``, ``x``, ``y``, ``kind``, ``theta``, ``edges`` as pairs),
plus what only the world needs: each node's ``floorCode`` (the id printed in the 2D code
glued on the floor at the node, aligned with the map's x axis), ``racks`` (rectangles
``[x0, y0, x1, y1]``), ``aisleHalfWidth`` (how far from an edge's centre line the floor is
drivable) and the default ``vehicles`` start nodes. ``maps/default.json`` is a small
warehouse: 7 x 3 aisle crossings 3 m apart, 6 stations, 3 chargers, 4 parking places.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAP = Path(__file__).with_name("maps") / "default.json"


class MapError(ValueError):
    """A map file that cannot be used: names the file, the entry and why."""


@dataclass(frozen=True)
class Node:
    id: str
    x: float
    y: float
    kind: str = "aisle"  # aisle | station | charger | park
    theta: float | None = None
    floor_code: str | None = None


@dataclass
class WarehouseMap:
    map_id: str
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]
    racks: list[tuple[float, float, float, float]] = field(default_factory=list)
    aisle_half_width: float = 0.75
    vehicles: list[str] = field(default_factory=list)  # default start nodes

    @classmethod
    def load(cls, path: Path | str = DEFAULT_MAP) -> WarehouseMap:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MapError(f"{path}: cannot read the map ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise MapError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
        try:
            return cls.from_dict(data)
        except MapError as exc:
            raise MapError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WarehouseMap:
        try:
            nodes: dict[str, Node] = {}
            for i, n in enumerate(data["nodes"]):
                node = Node(
                    str(n["id"]), float(n["x"]), float(n["y"]), str(n.get("kind", "aisle")),
                    None if n.get("theta") is None else float(n["theta"]),
                    None if n.get("floorCode") is None else str(n["floorCode"]),
                )  # fmt: skip
                if node.id in nodes:
                    raise MapError(f"nodes[{i}]: id {node.id!r} used twice")
                nodes[node.id] = node
            edges = []
            for i, e in enumerate(data["edges"]):
                a, b = (e[0], e[1]) if isinstance(e, list | tuple) else (e["from"], e["to"])
                if a not in nodes or b not in nodes:
                    raise MapError(f"edges[{i}]: {a}-{b} names an unknown node")
                edges.append((str(a), str(b)))
            racks = [tuple(float(v) for v in r) for r in data.get("racks", [])]
            if any(len(r) != 4 for r in racks):
                raise MapError("racks: each is [x0, y0, x1, y1]")
            vehicles = [str(v) for v in data.get("vehicles", [])]
            for v in vehicles:
                if v not in nodes:
                    raise MapError(f"vehicles: start node {v!r} is not on the map")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MapError):
                raise
            raise MapError(f"malformed map: {type(exc).__name__} {exc}") from None
        codes = [n.floor_code for n in nodes.values() if n.floor_code]
        if len(codes) != len(set(codes)):
            raise MapError("floorCode: the same code is glued at two nodes")
        return cls(
            str(data.get("mapId", "map")), nodes, edges,
            [(r[0], r[1], r[2], r[3]) for r in racks],
            float(data.get("aisleHalfWidth", 0.75)), vehicles,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapId": self.map_id,
            "aisleHalfWidth": self.aisle_half_width,
            "nodes": [
                {
                    "id": n.id,
                    "x": n.x,
                    "y": n.y,
                    "kind": n.kind,
                    "theta": n.theta,
                    "floorCode": n.floor_code,
                }
                for n in self.nodes.values()
            ],
            "edges": [list(e) for e in self.edges],
            "racks": [list(r) for r in self.racks],
            "vehicles": list(self.vehicles),
        }

    # ---- geometry ------------------------------------------------------------------------
    def floor_codes(self) -> dict[str, tuple[float, float, float]]:
        """Floor code id -> its map pose (x, y, theta 0: codes are glued along the x axis)."""
        return {n.floor_code: (n.x, n.y, 0.0) for n in self.nodes.values() if n.floor_code}

    def distance_to_aisles(self, x: float, y: float) -> float:
        """Distance from (x, y) to the nearest edge's centre line (or node, without edges)."""
        best = min((math.dist((x, y), (n.x, n.y)) for n in self.nodes.values()), default=math.inf)
        for a, b in self.edges:
            na, nb = self.nodes[a], self.nodes[b]
            best = min(best, _segment_distance((x, y), (na.x, na.y), (nb.x, nb.y)))
        return best

    def on_map(self, x: float, y: float, hint: list[int] | None = None) -> bool:
        """Whether (x, y) is on the drivable floor. ``hint`` (a one-element list the caller
        keeps) remembers the edge found last time: a vehicle is usually still beside it."""
        if hint is not None and 0 <= hint[0] < len(self.edges):
            a, b = self.edges[hint[0]]
            na, nb = self.nodes[a], self.nodes[b]
            if _segment_distance((x, y), (na.x, na.y), (nb.x, nb.y)) <= self.aisle_half_width:
                return True
        for i, (a, b) in enumerate(self.edges):
            na, nb = self.nodes[a], self.nodes[b]
            if _segment_distance((x, y), (na.x, na.y), (nb.x, nb.y)) <= self.aisle_half_width:
                if hint is not None:
                    hint[0] = i
                return True
        return self.distance_to_aisles(x, y) <= self.aisle_half_width

    def of_kind(self, kind: str) -> list[str]:
        return sorted(n for n, v in self.nodes.items() if v.kind == kind)


def _segment_distance(p: tuple[float, float], a: tuple[float, float],
                      b: tuple[float, float]) -> float:  # fmt: skip
    dx, dy = b[0] - a[0], b[1] - a[1]
    n2 = dx * dx + dy * dy
    if n2 == 0:
        return math.dist(p, a)
    f = min(1.0, max(0.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / n2))
    return math.dist(p, (a[0] + f * dx, a[1] + f * dy))


def build_default_map() -> WarehouseMap:
    """The generator of maps/default.json (kept so the data can be regenerated and checked)."""
    xs = [3.0 * i for i in range(7)]
    ys = [0.0, 3.5, 7.0]
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []

    def add(node_id: str, x: float, y: float, kind: str = "aisle",
            theta: float | None = None) -> None:  # fmt: skip
        nodes[node_id] = Node(node_id, x, y, kind, theta, f"FC-{node_id}")

    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            add(f"A{j}{i}", x, y)
            if i:
                edges.append((f"A{j}{i - 1}", f"A{j}{i}"))
            if j:
                edges.append((f"A{j - 1}{i}", f"A{j}{i}"))
    for i in range(6):  # stations above the top aisle, facing +y
        add(f"S{i + 1}", xs[i], 10.0, "station", math.pi / 2)
        edges.append((f"A2{i}", f"S{i + 1}"))
    for i in range(3):  # chargers below the bottom aisle, facing -y
        add(f"C{i + 1}", xs[i], -3.0, "charger", -math.pi / 2)
        edges.append((f"A0{i}", f"C{i + 1}"))
    for i in range(4):
        add(f"P{i + 1}", xs[3 + i], -3.0, "park", -math.pi / 2)
        edges.append((f"A0{3 + i}", f"P{i + 1}"))
    racks = [
        (x + 0.9, y + 0.9, x + 2.1, y + 2.6) for x in xs[:-1] for y in ys[:-1]
    ]  # between the aisles, 0.9 m clear of every centre line
    start = [f"A{j}{i}" for j in range(3) for i in range(7)]
    # a vehicle per crossing, spread out: every other crossing first
    order = start[::2] + start[1::2]
    return WarehouseMap("wolfpack-demo-1", nodes, edges, racks, 0.75, order)


def write_default_map(path: Path = DEFAULT_MAP) -> None:
    path.write_text(json.dumps(build_default_map().to_dict(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_default_map()
