"""Shared by the VDA 5050 tests: the official schemas tightened, and order builders."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from fleet_link.vda5050 import schemas

REPO = Path(__file__).resolve().parents[3]
OFFICIAL = REPO.parent / "shared" / "vda5050" / "2.1.0"
MANUFACTURER = "wolfpack"
SERIAL = "amr-01"


@cache
def strict(topic: str) -> Draft202012Validator:
    """The official schema with additionalProperties false on every object: a misspelt
    optional field fails."""
    return Draft202012Validator(schemas.tightened(topic))


def assert_valid(topic: str, message: dict[str, Any]) -> None:
    errors = sorted(strict(topic).iter_errors(message), key=lambda e: list(e.absolute_path))
    assert not errors, f"{topic} invalid: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def header(header_id: int = 1) -> dict[str, Any]:
    return {
        "headerId": header_id,
        "timestamp": "2026-12-02T05:00:00.00Z",
        "version": "2.1.0",
        "manufacturer": MANUFACTURER,
        "serialNumber": SERIAL,
    }


def action(
    action_id: str, action_type: str, blocking: str = "NONE", **params: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "actionId": action_id,
        "actionType": action_type,
        "blockingType": blocking,
    }
    if params:
        out["actionParameters"] = [{"key": k, "value": v} for k, v in params.items()]
    return out


def node(
    node_id: str,
    seq: int,
    x: float,
    released: bool = True,
    actions: list[dict[str, Any]] | None = None,
    y: float = 0.0,
    map_id: str = "hall-1",
    **pos: Any,
) -> dict[str, Any]:
    return {
        "nodeId": node_id,
        "sequenceId": seq,
        "released": released,
        "nodePosition": {"x": x, "y": y, "mapId": map_id, **pos},
        "actions": actions or [],
    }


def edge(
    edge_id: str,
    seq: int,
    start: str,
    end: str,
    released: bool = True,
    actions: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "edgeId": edge_id,
        "sequenceId": seq,
        "released": released,
        "startNodeId": start,
        "endNodeId": end,
        "actions": actions or [],
        **fields,
    }


def order(
    order_id: str,
    update: int,
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    header_id: int = 1,
) -> dict[str, Any]:
    return {
        **header(header_id),
        "orderId": order_id,
        "orderUpdateId": update,
        "nodes": nodes,
        "edges": edges,
    }


def instant(header_id: int, *actions: dict[str, Any]) -> dict[str, Any]:
    return {**header(header_id), "actions": list(actions)}


def dumps(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg).encode("utf-8")


def amr_config_dict() -> dict[str, Any]:
    return {
        "vda5050": {"manufacturer": MANUFACTURER, "serial_number": SERIAL},
        "maps": [{"id": "hall-1", "version": "3"}],
        "geometry": {
            "length_m": 1.0,
            "width_m": 0.7,
            "wheel_track_m": 0.5,
            "wheel_radius_m": 0.08,
        },
    }
