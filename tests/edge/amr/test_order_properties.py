"""Hypothesis: any sequence of facts (orders and updates of random shape, nodes reached,
action progress, instant actions, safety, battery, pose) leaves the core consistent and every
state it publishes valid against the tightened official schema."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.amr.vehicle_state import Drive, Stop
from fleet_link.safe_json import DecodeError
from fleet_link.vda5050.codec import decode_order
from tests.edge.amr.test_order_scenario import Vehicle
from tests.fleet_link.vda5050.helpers import MANUFACTURER, SERIAL, action, dumps, edge, node, order
from tests.fleet_link.vda5050.test_codec import FIELDS, JSON, _paths, good_order

ACTIONS = [
    lambda i: action(f"pick{i}", "pick", "HARD", stationType="s", loadType="TOTE", loadId=f"L{i}"),
    lambda i: action(f"drop{i}", "drop", "SOFT"),
    lambda i: action(f"look{i}", "detectObject", "NONE"),
    lambda i: action(f"wait{i}", "waitForTrigger", "HARD", triggerType="b"),
]
INSTANT = ["startPause", "stopPause", "cancelOrder", "stateRequest", "factsheetRequest"]
STATUS = ["INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED"]


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.integers(0, 6))  # first node index along a line of nodes 1 m apart
    n = draw(st.integers(1, 5))
    released = draw(st.integers(1, n))  # released nodes; edges up to the last released node
    base_seq = draw(st.sampled_from([0, 2, 4, 6]))
    nodes, edges = [], []
    for k in range(n):
        idx = start + k
        acts = [ACTIONS[a](idx * 10 + j) for j, a in enumerate(
            draw(st.lists(st.integers(0, 3), max_size=2)))]  # fmt: skip
        nodes.append(node(f"n{idx}", base_seq + 2 * k, float(idx), released=k < released,
                          actions=acts))  # fmt: skip
        if k:
            edges.append(edge(f"e{idx - 1}", base_seq + 2 * k - 1, f"n{idx - 1}", f"n{idx}",
                              released=k < released))  # fmt: skip
    return order(
        draw(st.sampled_from(["o1", "o2"])), draw(st.integers(0, 3)), nodes, edges,
        header_id=draw(st.integers(0, 100)),
    )  # fmt: skip


def continuation(v: Vehicle, more: int, bump: int, release_all: bool) -> dict[str, Any]:
    """An update from the decision point (valid when bump > 0), ``more`` nodes further."""
    p = v.core.progress
    nid, seq = p.decision_point or (p.last_node_id or "n0", p.last_node_sequence_id)
    x = float(nid[1:]) if nid[1:].isdigit() else 0.0
    nodes = [node(nid, seq, x)]
    edges = []
    for k in range(1, more + 1):
        rel = release_all or k < more
        nodes.append(node(f"n{int(x) + k}", seq + 2 * k, x + k, released=rel))
        edges.append(edge(f"e{int(x) + k - 1}", seq + 2 * k - 1, nodes[-2]["nodeId"],
                          nodes[-1]["nodeId"], released=rel))  # fmt: skip
    return order(p.order_id or "o1", max(0, p.order_update_id + bump), nodes, edges)


FACTS = st.one_of(
    st.tuples(st.just("order"), orders()),
    st.tuples(st.just("order_here"), orders()),
    st.tuples(st.just("update"), st.tuples(st.integers(1, 3), st.integers(-1, 2), st.booleans())),
    st.tuples(st.just("reach_next"), st.none()),
    st.tuples(st.just("reach"), st.integers(0, 8)),
    st.tuples(st.just("driving"), st.booleans()),
    st.tuples(st.just("progress"), st.tuples(st.integers(0, 30), st.sampled_from(STATUS))),
    st.tuples(st.just("instant"), st.sampled_from(INSTANT)),
    st.tuples(st.just("safety"), st.tuples(st.booleans(), st.booleans())),
    st.tuples(st.just("battery"), st.tuples(st.floats(0, 100), st.booleans())),
    st.tuples(st.just("at"), st.integers(0, 8)),
)


def check(v: Vehicle, cmds: list[Any]) -> None:
    s = v.core.state_body()
    seqs = [n["sequenceId"] for n in s["nodeStates"]]
    assert seqs == sorted(set(seqs))
    eseqs = [e["sequenceId"] for e in s["edgeStates"]]
    assert eseqs == sorted(set(eseqs))
    if seqs and s["orderId"]:
        assert s["lastNodeSequenceId"] < seqs[0]
    released = [n["released"] for n in s["nodeStates"]]
    assert released == sorted(released, reverse=True), "base before horizon"
    for c in cmds:
        if isinstance(c, Drive):
            assert c.steps and all(st.edge.released and st.node.released for st in c.steps)
            assert c.steps[0].node.sequence_id == seqs[0], "a route starts at the next node"
            assert not v.core.paused and v.core.estop == "NONE" and not v.core.field_violation
    ids = [a["actionId"] for a in s["actionStates"]]
    assert len(ids) == len(set(ids))


@settings(max_examples=80)  # ~3,000 runs found nothing more (docs/vda5050.md)
@given(st.lists(FACTS, max_size=20))
def test_any_fact_sequence_keeps_the_core_consistent(facts: list[tuple[str, Any]]) -> None:
    v = Vehicle()
    v.at(0.0)
    header = 0
    for kind, arg in facts:
        core = v.core
        if kind == "order":
            cmds = v.order(arg)
        elif kind == "order_here":  # the vehicle stands on the first node
            v.at(arg["nodes"][0]["nodePosition"]["x"])
            cmds = v.order(arg)
        elif kind == "update":
            cmds = v.order(continuation(v, *arg))
        elif kind == "reach_next":
            nxt = core.progress.next_node()
            cmds = v.reached(nxt.node_id, nxt.sequence_id) if nxt else []
        elif kind == "reach":
            cmds = v.reached(f"n{arg}", 2 * arg)
        elif kind == "driving":
            cmds = v.driving(arg)
        elif kind == "progress":
            recs = core.actions.all()
            cmds = v.progress(recs[arg[0] % len(recs)].action_id, arg[1]) if recs else []
        elif kind == "instant":
            header += 1
            cmds = v.instant(action(f"i{header}", arg, "HARD"))
        elif kind == "safety":
            cmds = v.run(core.safety(*arg))
            if arg[0] or arg[1]:
                assert isinstance(cmds[0], Stop), "a safety stop comes first"
        elif kind == "battery":
            cmds = v.run(core.battery(*arg))
        else:
            cmds = v.at(float(arg))
        check(v, cmds)


@settings(max_examples=60)
@given(st.data())
def test_any_order_that_decodes_is_taken_or_refused_cleanly(data: st.DataObject) -> None:
    """A valid order with one value replaced, dropped or added: if the decoder lets it
    through, the core takes it or refuses it with an error, and its state stays valid."""
    msg = good_order()
    path = data.draw(st.sampled_from([p for p in _paths(msg) if p]))
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
    try:
        decoded = decode_order(dumps(copy.deepcopy(msg)), MANUFACTURER, SERIAL)
    except DecodeError:
        return
    v = Vehicle()
    v.at(0.0)
    v.run(v.core.order_received(decoded))  # validates the state it publishes
    s = v.core.state_body()
    assert s["orderId"] == decoded.order_id or s["errors"]
