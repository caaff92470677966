"""A whole order as the standard describes it, checked message by message against the state
the vehicle publishes: a base with a horizon, a stitched update, a stale update refused, a
pick and a drop, pause and resume, cancelOrder in the middle of an edge, a new order after
it. Every published message is validated against the official 2.1.0 schema tightened to
``additionalProperties: false``."""

from __future__ import annotations

from typing import Any

from edge.amr.config import AmrConfig
from edge.amr.order import Pose
from edge.amr.vehicle_state import (
    Command,
    Drive,
    PublishFactsheet,
    PublishState,
    StartAction,
    Stop,
    VehicleCore,
)
from fleet_link.vda5050.codec import decode_instant_actions, decode_order
from fleet_link.vda5050.messages import Stamper
from tests.fleet_link.vda5050.helpers import (
    MANUFACTURER,
    SERIAL,
    action,
    amr_config_dict,
    assert_valid,
    dumps,
    edge,
    instant,
    node,
    order,
)


class Vehicle:
    """The core plus what the node would do with PublishState: stamp, validate, keep."""

    def __init__(self) -> None:
        self.core = VehicleCore(AmrConfig.model_validate(amr_config_dict()))
        self.stamper = Stamper(MANUFACTURER, SERIAL, clock=lambda: 1_796_180_400.0)
        self.states: list[dict[str, Any]] = []
        self.factsheets: list[dict[str, Any]] = []
        self.header = 0

    def run(self, cmds: list[Command]) -> list[Command]:
        assert sum(isinstance(c, PublishState) for c in cmds) <= 1
        if PublishState() in cmds:
            assert cmds[-1] == PublishState(), "the state is published after the actions"
        for c in cmds:
            if isinstance(c, PublishState):
                msg = self.stamper.stamp("state", self.core.state_body())
                assert_valid("state", msg)
                self.states.append(msg)
            elif isinstance(c, PublishFactsheet):
                msg = self.stamper.stamp("factsheet", self.core.factsheet_body())
                assert_valid("factsheet", msg)
                self.factsheets.append(msg)
        return [c for c in cmds if not isinstance(c, PublishState | PublishFactsheet)]

    def order(self, msg: dict[str, Any]) -> list[Command]:
        return self.run(self.core.order_received(decode_order(dumps(msg), MANUFACTURER, SERIAL)))

    def instant(self, *actions: dict[str, Any]) -> list[Command]:
        self.header += 1
        msg = decode_instant_actions(dumps(instant(self.header, *actions)), MANUFACTURER, SERIAL)
        return self.run(self.core.instant_actions(msg))

    def at(self, x: float, y: float = 0.0) -> list[Command]:
        return self.run(self.core.position(Pose(x, y, 0.0, "hall-1"), velocity=(0.0, 0.0, 0.0)))

    def reached(self, node_id: str, seq: int) -> list[Command]:
        return self.run(self.core.node_reached(node_id, seq))

    def driving(self, on: bool) -> list[Command]:
        return self.run(self.core.driving_changed(on))

    def progress(self, action_id: str, status: str) -> list[Command]:
        return self.run(self.core.action_progress(action_id, status))  # type: ignore[arg-type]

    @property
    def last(self) -> dict[str, Any]:
        return self.states[-1]


def nodes_of(state: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(n["nodeId"], n["sequenceId"], n["released"]) for n in state["nodeStates"]]


def edges_of(state: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(e["edgeId"], e["sequenceId"], e["released"]) for e in state["edgeStates"]]


def actions_of(state: dict[str, Any]) -> dict[str, str]:
    return {a["actionId"]: a["actionStatus"] for a in state["actionStates"]}


def errors_of(state: dict[str, Any]) -> list[str]:
    return [e["errorType"] for e in state["errors"]]


def route(cmds: list[Command]) -> list[str]:
    drives = [c for c in cmds if isinstance(c, Drive)]
    assert len(drives) == 1, cmds
    return [f"{s.edge.edge_id}>{s.node.node_id}" for s in drives[0].steps]


PICK = action("pick-1", "pick", "HARD", stationType="floor", loadType="TOTE", loadId="T-17")
DROP = action("drop-1", "drop", "SOFT", stationType="floor", loadId="T-17")
LIGHTS = action("beep-1", "detectObject", "NONE")


def test_order_with_horizon_update_stale_pause_cancel() -> None:
    v = Vehicle()
    v.at(0.0)
    assert v.last["orderId"] == "" and v.last["nodeStates"] == []

    # -- order 0: base n0-e0-n1-e1-n2, horizon e2-n3-e3-n4; a HARD pick on n1 --------------
    cmds = v.order(
        order(
            "o-1",
            0,
            [
                node("n0", 0, 0.0),
                node("n1", 2, 2.0, actions=[PICK]),
                node("n2", 4, 4.0),
                node("n3", 6, 6.0, released=False),
                node("n4", 8, 8.0, released=False),
            ],
            [
                edge("e0", 1, "n0", "n1", actions=[LIGHTS]),
                edge("e1", 3, "n1", "n2"),
                edge("e2", 5, "n2", "n3", released=False),
                edge("e3", 7, "n3", "n4", released=False),
            ],
        )
    )
    assert route(cmds) == ["e0>n1"]  # stops at n1: its pick is HARD
    starts = [c.action.action_id for c in cmds if isinstance(c, StartAction)]
    assert starts == ["beep-1"]  # the NONE action of the edge entered
    s = v.last
    assert (s["orderId"], s["orderUpdateId"]) == ("o-1", 0)
    assert (s["lastNodeId"], s["lastNodeSequenceId"]) == ("n0", 0)  # the first node is reached
    assert nodes_of(s) == [("n1", 2, True), ("n2", 4, True), ("n3", 6, False), ("n4", 8, False)]
    assert edges_of(s) == [("e0", 1, True), ("e1", 3, True), ("e2", 5, False), ("e3", 7, False)]
    assert actions_of(s) == {"pick-1": "WAITING", "beep-1": "WAITING"}
    assert s["driving"] is False and s["paused"] is False and s["errors"] == []

    v.driving(True)
    assert v.last["driving"] is True
    v.progress("beep-1", "RUNNING")
    assert actions_of(v.last)["beep-1"] == "RUNNING"

    # -- n1 reached: the edge's action ends, the pick starts, the vehicle holds --------------
    cmds = v.reached("n1", 2)
    assert [type(c).__name__ for c in cmds] == ["EndAction", "StartAction"]
    assert cmds[1].action.action_id == "pick-1"  # type: ignore[union-attr]
    s = v.last
    assert (s["lastNodeId"], s["lastNodeSequenceId"]) == ("n1", 2)
    assert nodes_of(s)[0] == ("n2", 4, True) and edges_of(s)[0] == ("e1", 3, True)
    v.driving(False)
    v.progress("beep-1", "FINISHED")
    assert not any(isinstance(c, Drive) for c in v.progress("pick-1", "RUNNING"))
    assert actions_of(v.last)["pick-1"] == "RUNNING" and v.last["loads"] == []
    cmds = v.progress("pick-1", "FINISHED")
    assert route(cmds) == ["e1>n2"]  # the rest of the base; n2 is the decision point
    s = v.last
    assert actions_of(s)["pick-1"] == "FINISHED"
    assert s["loads"] == [{"loadType": "TOTE", "loadId": "T-17"}]
    v.driving(True)

    # -- update 1, stitched at the decision point n2 while driving e1 -----------------------
    n_states_before = len(v.states)
    cmds = v.order(
        order(
            "o-1",
            1,
            [
                node("n2", 4, 4.0),
                node("n3", 6, 6.0),
                node("n4", 8, 8.0, actions=[DROP]),
                node("n5", 10, 10.0, released=False),
            ],
            [
                edge("e2", 5, "n2", "n3", maxSpeed=1.0),
                edge("e3", 7, "n3", "n4"),
                edge("e4", 9, "n4", "n5", released=False),
            ],
            header_id=2,
        )
    )
    assert route(cmds) == ["e1>n2", "e2>n3", "e3>n4"]  # extended, stops at the drop
    assert len(v.states) == n_states_before + 1
    s = v.last
    assert s["orderUpdateId"] == 1 and s["errors"] == []
    assert nodes_of(s) == [("n2", 4, True), ("n3", 6, True), ("n4", 8, True), ("n5", 10, False)]
    assert edges_of(s) == [("e1", 3, True), ("e2", 5, True), ("e3", 7, True), ("e4", 9, False)]
    assert actions_of(s)["drop-1"] == "WAITING"

    # -- the same update again: ignored; an older one: refused, the order goes on ----------
    n_states = len(v.states)
    assert v.order(order("o-1", 1, [node("n2", 4, 4.0)], [], header_id=3)) == []
    assert len(v.states) == n_states  # nothing changed, nothing published
    cmds = v.order(order("o-1", 0, [node("n2", 4, 4.0)], [], header_id=4))
    assert cmds == []  # no stop, no new route
    s = v.last
    assert s["orderUpdateId"] == 1 and nodes_of(s)[0] == ("n2", 4, True)
    (err,) = s["errors"]
    assert err["errorType"] == "orderUpdateError" and err["errorLevel"] == "WARNING"
    refs = {r["referenceKey"]: r["referenceValue"] for r in err["errorReferences"]}
    assert refs == {"headerId": "4", "topic": "order", "orderId": "o-1", "orderUpdateId": "0"}

    v.reached("n2", 4)
    assert v.last["lastNodeId"] == "n2" and nodes_of(v.last)[0] == ("n3", 6, True)

    # -- pause on e2, resume ---------------------------------------------------------------
    cmds = v.instant(action("pause-1", "startPause", "HARD"))
    assert cmds == [Stop("paused")]
    assert v.last["paused"] is True and actions_of(v.last)["pause-1"] == "RUNNING"
    v.driving(False)
    assert actions_of(v.last)["pause-1"] == "FINISHED" and v.last["driving"] is False
    assert v.reached("n9", 99) == []  # a stale report of the drive changes nothing
    cmds = v.instant(action("resume-1", "stopPause", "HARD"))
    assert route(cmds) == ["e2>n3", "e3>n4"]
    assert v.last["paused"] is False and actions_of(v.last)["resume-1"] == "FINISHED"
    v.driving(True)

    # -- n3, n4: the SOFT drop holds the vehicle, then the load is gone --------------------
    v.reached("n3", 6)
    cmds = v.reached("n4", 8)
    assert [c.action.action_id for c in cmds if isinstance(c, StartAction)] == ["drop-1"]
    v.driving(False)
    v.progress("drop-1", "RUNNING")
    cmds = v.progress("drop-1", "FINISHED")
    assert not any(isinstance(c, Drive) for c in cmds)  # n5 is not released
    s = v.last
    assert s["loads"] == [] and s["newBaseRequest"] is True
    assert nodes_of(s) == [("n5", 10, False)] and edges_of(s) == [("e4", 9, False)]

    # -- update 2 releases n5 and n6; cancelOrder in the middle of e4 ----------------------
    cmds = v.order(
        order(
            "o-1",
            2,
            [node("n4", 8, 8.0), node("n5", 10, 10.0), node("n6", 12, 12.0)],
            [edge("e4", 9, "n4", "n5"), edge("e5", 11, "n5", "n6")],
            header_id=5,
        )
    )
    assert route(cmds) == ["e4>n5", "e5>n6"]
    v.driving(True)
    v.at(9.0)
    cmds = v.instant(action("cancel-1", "cancelOrder", "HARD"))
    assert cmds == [Stop("order cancelled")]
    s = v.last
    assert actions_of(s)["cancel-1"] == "RUNNING"
    assert nodes_of(s) == [("n5", 10, True), ("n6", 12, True)]  # kept until the vehicle stands
    v.driving(False)
    s = v.last
    assert actions_of(s)["cancel-1"] == "FINISHED"
    assert s["nodeStates"] == [] and s["edgeStates"] == []
    assert (s["orderId"], s["orderUpdateId"]) == ("o-1", 2)  # kept, as the standard says
    assert (s["lastNodeId"], s["lastNodeSequenceId"]) == ("n4", 8)
    assert s["driving"] is False

    # an update of the cancelled order is refused; a new order from where it stands is taken
    v.order(order("o-1", 3, [node("n4", 8, 8.0)], [], header_id=6))
    assert errors_of(v.last) == ["orderUpdateError"]
    cmds = v.order(
        order(
            "o-2",
            0,
            [node("tmp", 0, 9.0, allowedDeviationXY=0.2), node("n6", 2, 12.0)],
            [edge("e9", 1, "tmp", "n6")],
            header_id=7,
        )
    )
    assert route(cmds) == ["e9>n6"]
    s = v.last
    assert s["orderId"] == "o-2" and s["errors"] == []
    assert "pick-1" not in actions_of(s)  # the previous order's actionStates are gone
    v.driving(True)
    v.reached("n6", 2)
    v.driving(False)
    assert v.last["nodeStates"] == [] and v.last["lastNodeId"] == "n6"

    # -- cancelOrder with no order: FAILED and noOrderToCancel referencing the action ------
    v.instant(action("cancel-2", "cancelOrder", "HARD"))
    s = v.last
    assert actions_of(s)["cancel-2"] == "FAILED"
    (err,) = s["errors"]
    assert err["errorType"] == "noOrderToCancel" and err["errorLevel"] == "WARNING"
    assert {"referenceKey": "actionId", "referenceValue": "cancel-2"} in err["errorReferences"]

    # header ids count up per topic, one per published message
    assert [m["headerId"] for m in v.states] == list(range(len(v.states)))


def test_state_factsheet_requests() -> None:
    v = Vehicle()
    v.at(0.0)
    n = len(v.states)
    v.instant(action("sr-1", "stateRequest"), action("fs-1", "factsheetRequest"))
    assert len(v.states) == n + 1 and len(v.factsheets) == 1
    assert actions_of(v.last) == {"sr-1": "FINISHED", "fs-1": "FINISHED"}
    fs = v.factsheets[0]
    assert fs["typeSpecification"]["agvKinematic"] == "DIFF"
    assert fs["physicalParameters"]["width"] == 0.7
