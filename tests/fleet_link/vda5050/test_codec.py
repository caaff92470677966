"""Decoders of order and instantActions: only DecodeError, whatever arrives; the schema and
protocol limits before use; the vendored schemas equal the official ones."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_link import safe_json
from fleet_link.safe_json import DecodeError
from fleet_link.vda5050 import codec, schemas
from fleet_link.vda5050.models import Order
from tests.fleet_link.vda5050.helpers import (
    MANUFACTURER,
    OFFICIAL,
    SERIAL,
    action,
    dumps,
    edge,
    instant,
    node,
    order,
)

KNOWN_REASONS = {
    safe_json.TOO_LARGE, safe_json.NOT_UTF8, safe_json.MALFORMED, safe_json.TOO_DEEP,
    safe_json.HUGE_NUMBER, safe_json.NOT_OBJECT, safe_json.INVALID_SCHEMA, codec.TOO_MANY,
    codec.WRONG_VEHICLE, codec.WRONG_VERSION,
}  # fmt: skip


def good_order() -> dict[str, Any]:
    return order(
        "o-1",
        0,
        [
            node("n0", 0, 0.0, allowedDeviationXY=0.1, theta=0.0),
            node("n1", 2, 2.0, actions=[action("p", "pick", "HARD", loadType="TOTE")]),
        ],
        [
            edge(
                "e0", 1, "n0", "n1", maxSpeed=1.2,
                trajectory={"degree": 1, "knotVector": [0, 0, 1, 1],
                            "controlPoints": [{"x": 0, "y": 0}, {"x": 2, "y": 0, "weight": 1}]},
            )
        ],
    )  # fmt: skip


@pytest.mark.parametrize("topic", schemas.TOPICS)
def test_vendored_schemas_are_the_official_ones(topic: str) -> None:
    official = OFFICIAL / f"{topic}.schema"
    # CI and every checkout here have ../shared beside the repo: a missing copy is a failure,
    # not a skip (the vendored schemas would then go unchecked)
    assert official.exists(), f"the official schemas are not beside the repo ({OFFICIAL})"
    assert schemas.schema(topic) == json.loads(official.read_text(encoding="utf-8"))


def test_a_good_order_decodes_to_its_model() -> None:
    got = codec.decode_order(dumps(good_order()), MANUFACTURER, SERIAL)
    assert isinstance(got, Order) and got.order_id == "o-1"
    assert got.nodes[1].actions[0].param("loadType") == "TOTE"
    assert got.edges[0].trajectory is not None and got.edges[0].trajectory.degree == 1
    assert got.nodes[0].position is not None and got.nodes[0].position.allowed_deviation_xy == 0.1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("nodes"), safe_json.INVALID_SCHEMA),
        (lambda o: o["nodes"][0].update(released="yes"), safe_json.INVALID_SCHEMA),
        (lambda o: o["nodes"][1]["actions"][0].update(blockingType="SOMETIMES"),
         safe_json.INVALID_SCHEMA),
        (lambda o: o.update(serialNumber="amr-02"), codec.WRONG_VEHICLE),
        (lambda o: o.update(manufacturer="other"), codec.WRONG_VEHICLE),
        (lambda o: o.update(version="1.1.0"), codec.WRONG_VERSION),
        (lambda o: o.update(orderId="x" * 500), codec.TOO_MANY),
        (lambda o: o["nodes"].extend([o["nodes"][0]] * 1000), codec.TOO_MANY),
    ],
)  # fmt: skip
def test_refusals_name_their_reason(mutate: Any, reason: str) -> None:
    msg = good_order()
    mutate(msg)
    with pytest.raises(DecodeError) as info:
        codec.decode_order(dumps(msg), MANUFACTURER, SERIAL)
    assert info.value.reason == reason


def test_limits_before_parsing() -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode_order(b"[" * 100000 + b"]" * 100000)
    assert info.value.reason == safe_json.TOO_DEEP
    with pytest.raises(DecodeError) as info:
        codec.decode_order(b" " * (2 * 1024 * 1024))
    assert info.value.reason == safe_json.TOO_LARGE
    assert codec.recover_header_id(b'{"headerId": 77, "x"') == 77


def _decode_any(payload: bytes) -> None:
    for decode in (codec.decode_order, codec.decode_instant_actions):
        try:
            decode(payload, MANUFACTURER, SERIAL)
        except DecodeError as exc:
            assert exc.reason in KNOWN_REASONS


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_decode_errors(payload: bytes) -> None:
    _decode_any(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)  # fmt: skip


@settings(max_examples=100)
@given(JSON)
def test_arbitrary_json_only_decode_errors(value: Any) -> None:
    _decode_any(json.dumps(value).encode())


FIELDS = st.sampled_from(
    ["headerId", "orderId", "orderUpdateId", "nodes", "edges", "sequenceId", "released",
     "nodeId", "nodePosition", "x", "mapId", "actions", "actionId", "blockingType",
     "actionParameters", "trajectory", "knotVector", "degree", "controlPoints", "edgeId"]
)  # fmt: skip


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=100)
@given(st.data())
def test_mutated_orders_decode_or_refuse(data: st.DataObject) -> None:
    """A valid order with one value replaced, a key dropped or added anywhere: decoded to a
    model or refused with a known reason, never another exception."""
    msg = good_order()
    paths = [p for p in _paths(msg) if p]
    path = data.draw(st.sampled_from(paths))
    parent: Any = msg
    for step in path[:-1]:
        parent = parent[step]
    how = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "replace":
        parent[path[-1]] = data.draw(JSON)
    elif how == "drop":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(FIELDS)] = data.draw(JSON)
    _decode_any(dumps(copy.deepcopy(msg)))


def test_instant_actions_decode() -> None:
    msg = instant(3, action("a", "startPause", "HARD"), action("b", "initPosition", x=1.0))
    got = codec.decode_instant_actions(dumps(msg), MANUFACTURER, SERIAL)
    assert [a.action_type for a in got.actions] == ["startPause", "initPosition"]
    assert got.header.header_id == 3 and got.actions[1].param("x") == 1.0
    msg["actions"] = [action(f"a{i}", "stateRequest") for i in range(100)]
    with pytest.raises(DecodeError) as info:
        codec.decode_instant_actions(dumps(msg), MANUFACTURER, SERIAL)
    assert info.value.reason == codec.TOO_MANY
