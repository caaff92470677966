"""Orders the vehicle must refuse, each with the standard's error type and references, and
the order it holds left untouched."""

from __future__ import annotations

from typing import Any

import pytest

from edge.amr.vehicle_state import Drive
from tests.edge.amr.test_order_scenario import Vehicle, errors_of, nodes_of
from tests.fleet_link.vda5050.helpers import action, edge, node, order

PICK = action("p", "pick", "HARD", stationType="floor", loadType="TOTE")


def two(**first: Any) -> list[dict[str, Any]]:
    return [node("a", 0, 0.0, **first), node("b", 2, 2.0)]


CASES: list[tuple[str, dict[str, Any], str, dict[str, str]]] = [
    (
        "edges do not alternate (sequenceId gap)",
        order("o", 0, two(), [edge("e", 3, "a", "b")]),
        "orderError",
        {"edgeId": "e"},
    ),
    (
        "edge between the wrong nodes",
        order("o", 0, two(), [edge("e", 1, "a", "x")]),
        "orderError",
        {"edgeId": "e"},
    ),
    (
        "too few edges",
        order("o", 0, two(), []),
        "orderError",
        {},
    ),
    (
        "released node after the horizon",
        order(
            "o",
            0,
            [node("a", 0, 0.0), node("b", 2, 2.0)],
            [edge("e", 1, "a", "b", released=False)],
        ),
        "orderError",
        {"nodeId": "b"},
    ),
    (
        "released edge to an unreleased node",
        order(
            "o",
            0,
            [node("a", 0, 0.0), node("b", 2, 2.0, released=False)],
            [edge("e", 1, "a", "b")],
        ),
        "orderError",
        {"edgeId": "e"},
    ),
    (
        "first node not released",
        order("o", 0, [node("a", 0, 0.0, released=False)], []),
        "orderError",
        {"nodeId": "a"},
    ),
    (
        "unknown map",
        order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0, map_id="hall-9")],
              [edge("e", 1, "a", "b")]),
        "orderError",
        {"nodeId": "b", "mapId": "hall-9"},
    ),
    (
        "vehicle not on the first node",
        order("o", 0, [node("a", 0, 3.0), node("b", 2, 5.0)], [edge("e", 1, "a", "b")]),
        "orderError",
        {"nodeId": "a"},
    ),
    (
        "an action the vehicle does not have",
        order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0, actions=[action("x", "dance")])],
              [edge("e", 1, "a", "b")]),
        "orderError",
        {"actionId": "x", "nodeId": "b", "actionType": "dance"},
    ),
    (
        "pick without its required loadType",
        order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0,
              actions=[action("p", "pick", stationType="floor")])], [edge("e", 1, "a", "b")]),
        "orderError",
        {"actionId": "p"},
    ),
    (
        "an instant-only action on a node",
        order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0,
              actions=[action("c", "cancelOrder")])], [edge("e", 1, "a", "b")]),
        "orderError",
        {"actionId": "c"},
    ),
    (
        "an actionId used twice",
        order("o", 0, [node("a", 0, 0.0, actions=[PICK]), node("b", 2, 2.0, actions=[PICK])],
              [edge("e", 1, "a", "b")]),
        "orderError",
        {"actionId": "p"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("why", "msg", "error_type", "refs"), CASES, ids=[c[0] for c in CASES])
def test_refused_orders(why: str, msg: dict[str, Any], error_type: str, refs: dict[str, str]):
    v = Vehicle()
    v.at(0.0)
    cmds = v.order(msg)
    assert not any(isinstance(c, Drive) for c in cmds), why
    s = v.last
    assert s["orderId"] == "" and s["nodeStates"] == [], "a refused order is not taken"
    (err,) = s["errors"]
    assert err["errorType"] == error_type and err["errorLevel"] == "WARNING"
    got = {r["referenceKey"]: r["referenceValue"] for r in err["errorReferences"]}
    assert got["topic"] == "order" and got["orderId"] == "o" and got["orderUpdateId"] == "0"
    for key, value in refs.items():
        assert got.get(key) == value, (why, got)
    # the warning stays until an order is accepted
    v.instant(action("sr", "stateRequest"))
    assert errors_of(v.last) == [error_type]
    v.order(order("ok", 0, two(), [edge("e", 1, "a", "b")]))
    assert v.last["errors"] == [] and v.last["orderId"] == "ok"


def base_order() -> dict[str, Any]:
    return order(
        "o-1",
        0,
        [node("a", 0, 0.0), node("b", 2, 2.0), node("c", 4, 4.0, released=False)],
        [edge("e1", 1, "a", "b"), edge("e2", 3, "b", "c", released=False)],
    )


def test_new_order_while_busy_is_refused_and_the_current_goes_on() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(base_order())
    v.order(order("o-2", 0, two(), [edge("e", 1, "a", "b")], header_id=2))
    s = v.last
    assert s["orderId"] == "o-1" and nodes_of(s)[0] == ("b", 2, True)
    assert errors_of(s) == ["orderError"]


def test_update_not_at_the_decision_point_is_refused() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(base_order())
    # starts at a (already traversed), not at the decision point b
    v.order(order("o-1", 1, [node("a", 0, 0.0), node("x", 2, 9.0)], [edge("e", 1, "a", "x")]))
    s = v.last
    assert s["orderUpdateId"] == 0 and errors_of(s) == ["orderUpdateError"]
    assert nodes_of(s) == [("b", 2, True), ("c", 4, False)]


def test_update_after_completion_continues_from_the_last_node() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o-1", 0, two(), [edge("e", 1, "a", "b")]))
    v.reached("b", 2)
    assert v.last["nodeStates"] == []
    cmds = v.order(order("o-1", 1, [node("b", 2, 2.0), node("c", 4, 4.0)],
                         [edge("f", 3, "b", "c")]))  # fmt: skip
    assert [s.node.node_id for c in cmds if isinstance(c, Drive) for s in c.steps] == ["c"]
    # the same continuation with a wrong sequenceId is refused
    v2 = Vehicle()
    v2.at(0.0)
    v2.order(order("o-1", 0, two(), [edge("e", 1, "a", "b")]))
    v2.reached("b", 2)
    v2.order(order("o-1", 1, [node("b", 6, 2.0), node("c", 8, 4.0)], [edge("f", 7, "b", "c")]))
    assert errors_of(v2.last) == ["orderUpdateError"]


def test_refused_message_is_a_validation_error() -> None:
    v = Vehicle()
    v.at(0.0)
    v.run(v.core.message_refused("order", "invalid_schema", "nodes: required", 41))
    (err,) = v.last["errors"]
    assert err["errorType"] == "validationError"
    refs = {r["referenceKey"]: r["referenceValue"] for r in err["errorReferences"]}
    assert refs == {"headerId": "41", "topic": "order"}


def test_manual_mode_refuses_orders_and_holds() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(base_order())
    cmds = v.run(v.core.set_operating_mode("MANUAL"))
    assert [type(c).__name__ for c in cmds] == ["Stop"]
    assert v.last["operatingMode"] == "MANUAL"
    cmds = v.run(v.core.set_operating_mode("AUTOMATIC"))
    assert [type(c).__name__ for c in cmds] == ["Drive"]


def test_update_reusing_an_action_id_is_refused() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o-1", 0, [node("a", 0, 0.0, actions=[PICK]), node("b", 2, 2.0)],
                  [edge("e1", 1, "a", "b")]))  # fmt: skip
    v.order(order("o-1", 1, [node("b", 2, 2.0), node("c", 4, 4.0, actions=[PICK])],
                  [edge("e2", 3, "b", "c")]))  # fmt: skip
    s = v.last
    assert s["orderUpdateId"] == 0 and errors_of(s) == ["orderError"]
    refs = {r["referenceKey"]: r["referenceValue"] for r in s["errors"][0]["errorReferences"]}
    assert refs["actionId"] == "p" and refs["orderUpdateId"] == "1"


def test_a_horizon_action_may_come_again_in_the_update() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o-1", 0, [node("a", 0, 0.0), node("b", 2, 2.0),
                             node("c", 4, 4.0, released=False, actions=[PICK])],
                  [edge("e1", 1, "a", "b"), edge("e2", 3, "b", "c", released=False)]))  # fmt: skip
    v.order(order("o-1", 1, [node("b", 2, 2.0), node("c", 4, 4.0, actions=[PICK])],
                  [edge("e2", 3, "b", "c")]))  # fmt: skip
    s = v.last
    assert s["orderUpdateId"] == 1 and s["errors"] == []
    assert [a["actionId"] for a in s["actionStates"]] == ["p"]
