"""The state's safety, battery, errors, instant initPosition and blocking groups."""

from __future__ import annotations

from edge.amr.vehicle_state import Drive, SetPose, StartAction, Stop
from tests.edge.amr.test_order_scenario import Vehicle, actions_of, errors_of, route
from tests.fleet_link.vda5050.helpers import action, edge, node, order


def simple() -> dict:
    return order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0)], [edge("e", 1, "a", "b")])


def test_protective_field_and_estop_stop_first_then_resume() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(simple())
    v.driving(True)
    cmds = v.run(v.core.safety(estop=False, field_violation=True))
    assert cmds[0] == Stop("protective field")
    s = v.last
    assert s["safetyState"] == {"eStop": "NONE", "fieldViolation": True}
    assert errors_of(s) == ["fieldViolation"] and s["errors"][0]["errorLevel"] == "WARNING"
    cmds = v.run(v.core.safety(estop=True, field_violation=True))
    assert cmds[0] == Stop("e-stop")
    assert v.last["safetyState"]["eStop"] == "MANUAL"
    assert {e["errorType"]: e["errorLevel"] for e in v.last["errors"]} == {
        "fieldViolation": "WARNING",
        "emergencyStop": "FATAL",
    }
    assert not any(isinstance(c, Drive) for c in v.run(v.core.safety(True, False)))
    cmds = v.run(v.core.safety(False, False))
    assert route(cmds) == ["e>b"]  # the order goes on where it was
    assert v.last["errors"] == [] and v.last["safetyState"]["eStop"] == "NONE"


def test_battery_levels_and_charging() -> None:
    v = Vehicle()
    v.at(0.0)
    v.run(v.core.battery(50.0, charging=False, voltage=48.1))
    assert v.last["batteryState"]["batteryCharge"] == 100.0  # no relevant change, no message
    v.run(v.core.battery(15.0, charging=False))
    assert errors_of(v.last) == ["batteryLow"] and v.last["batteryState"]["batteryCharge"] == 15
    v.run(v.core.battery(4.0, charging=False))
    assert errors_of(v.last) == ["batteryCritical"]
    v.order(simple())
    assert v.last["orderId"] == "" and "orderError" in errors_of(v.last)
    v.run(v.core.battery(4.5, charging=True))
    assert v.last["batteryState"]["charging"] is True
    v.run(v.core.battery(90.0, charging=True))
    assert "batteryCritical" not in errors_of(v.last)


def test_init_position_sets_pose_and_last_node() -> None:
    v = Vehicle()
    cmds = v.instant(
        action("ip", "initPosition", x=3.0, y=1.5, theta=0.5, mapId="hall-1", lastNodeId="n7")
    )
    (pose,) = [c for c in cmds if isinstance(c, SetPose)]
    assert pose.last_node_id == "n7" and pose.pose.x == 3.0
    s = v.last
    assert s["lastNodeId"] == "n7" and actions_of(s)["ip"] == "FINISHED"
    assert s["agvPosition"]["positionInitialized"] is True
    v.instant(action("ip2", "initPosition", x=0, y=0, theta=0, mapId="elsewhere",
                     lastNodeId="n1"))  # fmt: skip
    assert actions_of(v.last)["ip2"] == "FAILED"
    v.instant(action("dance", "dance"))
    assert actions_of(v.last)["dance"] == "FAILED" and "actionError" in errors_of(v.last)


def test_blocking_groups_on_a_node() -> None:
    """NONE, SOFT | HARD | NONE: the first two together, the HARD alone after both ended,
    the last after it; the vehicle drives on only when no SOFT/HARD action runs."""
    acts = [
        action("n1", "detectObject", "NONE"),
        action("s1", "finePositioning", "SOFT"),
        action("h1", "waitForTrigger", "HARD", triggerType="button"),
        action("n2", "detectObject", "NONE"),
    ]
    v = Vehicle()
    v.at(0.0)
    cmds = v.order(
        order(
            "o",
            0,
            [node("a", 0, 0.0, actions=acts), node("b", 2, 2.0)],
            [edge("e", 1, "a", "b")],
        )
    )
    started = [c.action.action_id for c in cmds if isinstance(c, StartAction)]
    assert started == ["n1", "s1"] and not any(isinstance(c, Drive) for c in cmds)
    v.progress("s1", "FINISHED")
    assert not [c for c in v.progress("n1", "RUNNING") if isinstance(c, StartAction)]
    cmds = v.progress("n1", "FINISHED")
    assert [c.action.action_id for c in cmds if isinstance(c, StartAction)] == ["h1"]
    assert not any(isinstance(c, Drive) for c in cmds)
    cmds = v.progress("h1", "FINISHED")
    assert [c.action.action_id for c in cmds if isinstance(c, StartAction)] == ["n2"]
    assert route(cmds) == ["e>b"]  # a NONE action does not hold the vehicle
    # an illegal transition reported by the vehicle is ignored
    v.progress("h1", "RUNNING")
    assert actions_of(v.last)["h1"] == "FINISHED"


def test_pause_pauses_running_actions() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o", 0, [node("a", 0, 0.0, actions=[
        action("w", "waitForTrigger", "HARD", triggerType="button")]), node("b", 2, 2.0)],
        [edge("e", 1, "a", "b")]))  # fmt: skip
    v.progress("w", "RUNNING")
    cmds = v.instant(action("p", "startPause", "HARD"))
    assert [type(c).__name__ for c in cmds] == ["PauseAction", "Stop"]
    w = next(a for a in v.last["actionStates"] if a["actionId"] == "w")
    # the 2.1.0 schema has no PAUSED: published as RUNNING with the reason, paused: true
    assert w["actionStatus"] == "RUNNING" and w["resultDescription"] == "paused"
    assert v.core.actions.get("w").status == "PAUSED"  # type: ignore[union-attr]
    cmds = v.instant(action("r", "stopPause", "HARD"))
    assert [type(c).__name__ for c in cmds] == ["ResumeAction"]


def test_cancel_with_a_running_action_waits_for_it() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o", 0, [node("a", 0, 0.0, actions=[
        action("w", "waitForTrigger", "HARD", triggerType="button")]), node("b", 2, 2.0)],
        [edge("e", 1, "a", "b")]))  # fmt: skip
    v.progress("w", "RUNNING")
    cmds = v.instant(action("c", "cancelOrder", "HARD"))
    assert [type(c).__name__ for c in cmds] == ["CancelAction", "Stop"]
    assert actions_of(v.last)["c"] == "RUNNING"
    v.progress("w", "FAILED")
    s = v.last
    assert actions_of(s) == {"w": "FAILED", "c": "FINISHED"} and s["nodeStates"] == []


def test_localisation_uncertainty_is_fatal_and_holds() -> None:
    from edge.amr.order import Pose

    v = Vehicle()
    v.at(0.0)
    v.order(simple())
    cmds = v.run(v.core.position(Pose(0.5, 0, 0, "hall-1"), deviation_range=0.5))
    assert isinstance(cmds[0], Stop) and errors_of(v.last) == ["localizationError"]
    cmds = v.run(v.core.position(Pose(0.5, 0, 0, "hall-1"), deviation_range=0.01))
    assert route(cmds) == ["e>b"] and v.last["errors"] == []


def test_reports_on_actions_not_started_are_ignored() -> None:
    v = Vehicle()
    v.at(0.0)
    v.order(order("o", 0, [node("a", 0, 0.0), node("b", 2, 2.0, actions=[
        action("w", "waitForTrigger", "HARD", triggerType="button")])],
        [edge("e", 1, "a", "b")]))  # fmt: skip
    n = len(v.states)
    assert v.progress("w", "FINISHED") == []  # its node is not reached: not running
    assert len(v.states) == n and actions_of(v.last)["w"] == "WAITING"


def test_refused_instant_actions_keep_a_bounded_error_list() -> None:
    v = Vehicle()
    for i in range(25):
        v.instant(action(f"x{i}", "dance"))
    errs = v.last["errors"]
    assert len(errs) == 10 and all(e["errorType"] == "actionError" for e in errs)
    assert errs[-1]["errorReferences"][-1]["referenceValue"] == "x24"
    v.at(0.0)
    v.order(simple())
    assert v.last["errors"] == []


def test_estop_kinds() -> None:
    v = Vehicle()
    v.at(0.0)
    v.run(v.core.safety(True, False, estop_kind="AUTOACK"))
    assert v.last["safetyState"]["eStop"] == "AUTOACK"
    assert v.last["errors"][0]["errorLevel"] == "WARNING"  # a bumper clears itself
    v.run(v.core.safety(True, False, estop_kind="REMOTE"))
    assert v.last["safetyState"]["eStop"] == "REMOTE"
    assert v.last["errors"][0]["errorLevel"] == "FATAL"
    v.run(v.core.safety(False, False))
    assert v.last["safetyState"]["eStop"] == "NONE" and v.last["errors"] == []
