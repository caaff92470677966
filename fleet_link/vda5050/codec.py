"""Bounded, schema-checked decoding of what the master control sends to one vehicle.

Order of checks, each before the work it bounds: size, UTF-8, nesting depth and number
sizes (:mod:`fleet_link.safe_json`), then the official 2.1.0 schema, then the protocol limits
this vehicle announces in its factsheet (array and id lengths), then that the message is
addressed to this vehicle in major version 2. Every refusal is one
:class:`~fleet_link.safe_json.DecodeError` with a reason code, so the caller counts it and
reports a ``validationError``; nothing else is ever raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleet_link import safe_json
from fleet_link.safe_json import DecodeError
from fleet_link.vda5050 import schemas
from fleet_link.vda5050.models import InstantActions, Order

TOO_MANY = "too_many"  # beyond the protocol limits of the factsheet
WRONG_VEHICLE = "wrong_vehicle"  # manufacturer/serialNumber of another vehicle
WRONG_VERSION = "wrong_version"  # not major version 2


@dataclass(frozen=True)
class ProtocolLimits:
    """What this vehicle processes; announced in the factsheet's ``protocolLimits``."""

    msg_len: int = safe_json.MAX_BYTES
    id_len: int = 128
    enum_len: int = 64
    load_id_len: int = 128
    order_nodes: int = 1000
    order_edges: int = 999
    node_actions: int = 32
    edge_actions: int = 32
    action_parameters: int = 32
    instant_actions: int = 32
    knot_vector: int = 256
    control_points: int = 256

    def to_factsheet(self) -> dict[str, Any]:
        return {
            "maxStringLens": {
                "msgLen": self.msg_len,
                "idLen": self.id_len,
                "enumLen": self.enum_len,
                "loadIdLen": self.load_id_len,
                "idNumericalOnly": False,
            },
            "maxArrayLens": {
                "order.nodes": self.order_nodes,
                "order.edges": self.order_edges,
                "node.actions": self.node_actions,
                "edge.actions": self.edge_actions,
                "actions.actionsParameters": self.action_parameters,
                "instantActions": self.instant_actions,
                "trajectory.knotVector": self.knot_vector,
                "trajectory.controlPoints": self.control_points,
            },
            "timing": {"minOrderInterval": 0.1, "minStateInterval": 0.1},
        }


DEFAULT_LIMITS = ProtocolLimits()


def _json(payload: bytes | str, limits: ProtocolLimits, topic: str) -> dict[str, Any]:
    obj = safe_json.loads_object(payload, safe_json.Limits(max_bytes=limits.msg_len))
    problem = schemas.first_error(topic, obj)
    if problem is not None:
        raise DecodeError(safe_json.INVALID_SCHEMA, f"{topic}: {problem}")
    return obj


def _check_header(obj: dict[str, Any], manufacturer: str | None, serial: str | None) -> None:
    version = obj["version"]
    if not version.startswith("2."):
        raise DecodeError(WRONG_VERSION, f"version {version[:20]!r} is not 2.x")
    if manufacturer is not None and obj["manufacturer"] != manufacturer:
        raise DecodeError(
            WRONG_VEHICLE, f"manufacturer {obj['manufacturer'][:64]!r} is not {manufacturer!r}"
        )
    if serial is not None and obj["serialNumber"] != serial:
        raise DecodeError(
            WRONG_VEHICLE, f"serialNumber {obj['serialNumber'][:64]!r} is not {serial!r}"
        )


def _check_count(what: str, items: list[Any], limit: int) -> None:
    if len(items) > limit:
        raise DecodeError(TOO_MANY, f"{what}: {len(items)} (at most {limit})")


def _check_id(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise DecodeError(TOO_MANY, f"{what}: an id of {len(value)} characters (at most {limit})")


def _check_actions(
    where: str, actions: list[dict[str, Any]], most: int, lim: ProtocolLimits
) -> None:
    _check_count(f"{where}.actions", actions, most)
    for i, action in enumerate(actions):
        _check_id(f"{where}.actions[{i}].actionId", action["actionId"], lim.id_len)
        _check_id(f"{where}.actions[{i}].actionType", action["actionType"], lim.enum_len)
        _check_count(
            f"{where}.actions[{i}].actionParameters",
            action.get("actionParameters") or [],
            lim.action_parameters,
        )


def decode_order(
    payload: bytes | str,
    manufacturer: str | None = None,
    serial_number: str | None = None,
    limits: ProtocolLimits = DEFAULT_LIMITS,
) -> Order:
    """An :class:`Order` from the payload of the ``order`` topic, or DecodeError."""
    obj = _json(payload, limits, "order")
    _check_header(obj, manufacturer, serial_number)
    _check_id("orderId", obj["orderId"], limits.id_len)
    _check_count("nodes", obj["nodes"], limits.order_nodes)
    _check_count("edges", obj["edges"], limits.order_edges)
    for i, node in enumerate(obj["nodes"]):
        _check_id(f"nodes[{i}].nodeId", node["nodeId"], limits.id_len)
        _check_actions(f"nodes[{i}]", node["actions"], limits.node_actions, limits)
    for i, edge in enumerate(obj["edges"]):
        for key in ("edgeId", "startNodeId", "endNodeId"):
            _check_id(f"edges[{i}].{key}", edge[key], limits.id_len)
        _check_actions(f"edges[{i}]", edge["actions"], limits.edge_actions, limits)
        traj = edge.get("trajectory")
        if traj is not None:
            _check_count(
                f"edges[{i}].trajectory.knotVector", traj["knotVector"], limits.knot_vector
            )
            _check_count(
                f"edges[{i}].trajectory.controlPoints", traj["controlPoints"], limits.control_points
            )
    try:
        return Order.from_json(obj)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:  # schema-valid, not usable
        raise DecodeError(safe_json.INVALID_SCHEMA, f"order: {type(exc).__name__}: {exc}") from None


def decode_instant_actions(
    payload: bytes | str,
    manufacturer: str | None = None,
    serial_number: str | None = None,
    limits: ProtocolLimits = DEFAULT_LIMITS,
) -> InstantActions:
    """:class:`InstantActions` from the payload of the ``instantActions`` topic, or DecodeError."""
    obj = _json(payload, limits, "instantActions")
    _check_header(obj, manufacturer, serial_number)
    _check_actions("instantActions", obj["actions"], limits.instant_actions, limits)
    try:
        return InstantActions.from_json(obj)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise DecodeError(
            safe_json.INVALID_SCHEMA, f"instantActions: {type(exc).__name__}: {exc}"
        ) from None


def recover_header_id(payload: bytes) -> int | None:
    """Best effort: the headerId of a refused message, for the validationError's references."""

    found = re.search(rb'"headerId"\s*:\s*(\d{1,10})\b', payload[:65536])
    return int(found.group(1)) if found else None
