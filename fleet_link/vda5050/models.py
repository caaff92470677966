"""Typed, immutable views of the order and instantActions a vehicle receives.

Built only from messages that already passed the official schema (see :mod:`.codec`), so the
constructors here trust types and required fields; they never see raw bytes. Optional fields
absent in the message are None, never a guessed default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

BlockingType = Literal["NONE", "SOFT", "HARD"]


@dataclass(frozen=True)
class Action:
    action_type: str
    action_id: str
    blocking_type: BlockingType
    description: str | None = None
    parameters: tuple[tuple[str, Any], ...] = ()

    def param(self, key: str, default: Any = None) -> Any:
        for k, v in self.parameters:
            if k == key:
                return v
        return default

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Action:
        params = tuple((p["key"], p["value"]) for p in obj.get("actionParameters") or ())
        return cls(
            action_type=obj["actionType"],
            action_id=obj["actionId"],
            blocking_type=obj["blockingType"],
            description=obj.get("actionDescription"),
            parameters=params,
        )


@dataclass(frozen=True)
class NodePosition:
    x: float
    y: float
    map_id: str
    theta: float | None = None
    allowed_deviation_xy: float | None = None
    allowed_deviation_theta: float | None = None
    map_description: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> NodePosition:
        return cls(
            x=float(obj["x"]),
            y=float(obj["y"]),
            map_id=obj["mapId"],
            theta=_opt_float(obj.get("theta")),
            allowed_deviation_xy=_opt_float(obj.get("allowedDeviationXY")),
            allowed_deviation_theta=_opt_float(obj.get("allowedDeviationTheta")),
            map_description=obj.get("mapDescription"),
        )


@dataclass(frozen=True)
class Node:
    node_id: str
    sequence_id: int
    released: bool
    actions: tuple[Action, ...] = ()
    position: NodePosition | None = None
    description: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Node:
        pos = obj.get("nodePosition")
        return cls(
            node_id=obj["nodeId"],
            sequence_id=int(obj["sequenceId"]),
            released=obj["released"],
            actions=tuple(Action.from_json(a) for a in obj["actions"]),
            position=NodePosition.from_json(pos) if pos is not None else None,
            description=obj.get("nodeDescription"),
        )


@dataclass(frozen=True)
class ControlPoint:
    x: float
    y: float
    weight: float = 1.0


@dataclass(frozen=True)
class Trajectory:
    """A NURBS curve as VDA 5050 edges carry it (evaluated by the drive, not here)."""

    degree: int
    knot_vector: tuple[float, ...]
    control_points: tuple[ControlPoint, ...]

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Trajectory:
        return cls(
            degree=int(obj["degree"]),
            knot_vector=tuple(float(k) for k in obj["knotVector"]),
            control_points=tuple(
                ControlPoint(float(p["x"]), float(p["y"]), float(p.get("weight", 1.0)))
                for p in obj["controlPoints"]
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "degree": self.degree,
            "knotVector": list(self.knot_vector),
            "controlPoints": [
                {"x": p.x, "y": p.y, "weight": p.weight} for p in self.control_points
            ],
        }


@dataclass(frozen=True)
class Corridor:
    left_width: float
    right_width: float
    ref_point: str = "KINEMATICCENTER"


@dataclass(frozen=True)
class Edge:
    edge_id: str
    sequence_id: int
    released: bool
    start_node_id: str
    end_node_id: str
    actions: tuple[Action, ...] = ()
    max_speed: float | None = None
    max_height: float | None = None
    min_height: float | None = None
    orientation: float | None = None
    orientation_type: str | None = None
    direction: str | None = None
    rotation_allowed: bool | None = None
    max_rotation_speed: float | None = None
    length: float | None = None
    trajectory: Trajectory | None = None
    corridor: Corridor | None = None
    description: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Edge:
        traj = obj.get("trajectory")
        cor = obj.get("corridor")
        return cls(
            edge_id=obj["edgeId"],
            sequence_id=int(obj["sequenceId"]),
            released=obj["released"],
            start_node_id=obj["startNodeId"],
            end_node_id=obj["endNodeId"],
            actions=tuple(Action.from_json(a) for a in obj["actions"]),
            max_speed=_opt_float(obj.get("maxSpeed")),
            max_height=_opt_float(obj.get("maxHeight")),
            min_height=_opt_float(obj.get("minHeight")),
            orientation=_opt_float(obj.get("orientation")),
            orientation_type=obj.get("orientationType"),
            direction=obj.get("direction"),
            rotation_allowed=obj.get("rotationAllowed"),
            max_rotation_speed=_opt_float(obj.get("maxRotationSpeed")),
            length=_opt_float(obj.get("length")),
            trajectory=Trajectory.from_json(traj) if traj is not None else None,
            corridor=(
                Corridor(
                    float(cor["leftWidth"]),
                    float(cor["rightWidth"]),
                    cor.get("corridorRefPoint", "KINEMATICCENTER"),
                )
                if cor is not None
                else None
            ),
            description=obj.get("edgeDescription"),
        )


@dataclass(frozen=True)
class Header:
    header_id: int
    timestamp: str
    version: str
    manufacturer: str
    serial_number: str

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Header:
        return cls(
            int(obj["headerId"]), obj["timestamp"], obj["version"], obj["manufacturer"],
            obj["serialNumber"],
        )  # fmt: skip


@dataclass(frozen=True)
class Order:
    header: Header
    order_id: str
    order_update_id: int
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    zone_set_id: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Order:
        return cls(
            header=Header.from_json(obj),
            order_id=obj["orderId"],
            order_update_id=int(obj["orderUpdateId"]),
            nodes=tuple(Node.from_json(n) for n in obj["nodes"]),
            edges=tuple(Edge.from_json(e) for e in obj["edges"]),
            zone_set_id=obj.get("zoneSetId"),
        )


@dataclass(frozen=True)
class InstantActions:
    header: Header
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InstantActions:
        return cls(
            header=Header.from_json(obj),
            actions=tuple(Action.from_json(a) for a in obj["actions"]),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
