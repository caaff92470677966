"""The state's faults list: computed from the safety machine after every safety pass, so it
is true at all times. Random input sequences drive the real safety machine; after each one
the reported faults (replayed from the raise/clear stream) must equal what is true."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config.loader import load_board_config
from edge.node.cell_node import DiverterMachine
from edge.node.faults import BOOT_GRACE_S, FaultDiff, FaultTracker, wanted_faults
from edge.node.plc_belt import PlcStatus
from edge.safety.machine import SafetyMachine, State

REPO = Path(__file__).resolve().parents[3]
CELL = load_board_config(REPO / "configs" / "sim-cell.yaml").cell
DEVICES = ("mcu", "plc", "scanner", "brain")


def _node() -> SimpleNamespace:
    """The parts of a runtime node and its diverter machine that the fault tracker reads."""
    assert CELL is not None
    node = SimpleNamespace(
        safety=SafetyMachine(CELL.safety, set(DEVICES)), _closing=False, fleet=None, mcu=None,
        _plc_last=None, _scanner_up={"scanner": False}, _brain_misses=0,
    )  # fmt: skip
    # the diverter's own words for its devices, read from the same attributes
    node.machine = SimpleNamespace(device_reason=lambda d: DiverterMachine.device_reason(node, d))
    return node


inputs = st.one_of(
    st.tuples(st.just("up"), st.sampled_from(DEVICES)),
    st.tuples(st.just("lost"), st.sampled_from(DEVICES)),
    st.tuples(st.just("estop"), st.booleans()),
    st.tuples(st.just("belt"), st.booleans()),
    st.tuples(st.sampled_from(["start", "stop", "reset", "fault", "alarm", "tick"]), st.none()),
)


def _apply(node: Any, tracker: FaultTracker, what: str, arg: Any, t: float) -> None:
    m = node.safety
    if what == "up":
        m.device_up(arg, t)
    elif what == "lost":
        m.device_lost(arg, "test", t)
    elif what == "estop":
        m.estop(arg, t)
    elif what == "belt":
        m.belt(arg, t)
    elif what == "fault":
        m.fault("jam at the induction eye", t)
    elif what == "alarm":
        if m.state in (State.ESTOP, State.FAULT):
            tracker.raise_alarm("belt still moving 800 ms after the e-stop")
    elif what != "tick":
        getattr(m, what)(t)


@settings(max_examples=200, deadline=None)
@given(st.lists(inputs, max_size=40), st.booleans())
def test_reported_faults_are_always_what_is_true(steps, after_boot):
    node = _node()
    reported: dict[str, dict[str, str]] = {}
    stream: list[tuple[str, bool]] = []

    def report(code: str, active: bool, info: dict[str, str]) -> None:
        stream.append((code, active))
        if active:
            reported[code] = info
        else:
            assert code in reported, f"{code} cleared but never raised"
            del reported[code]

    tracker = FaultTracker(node, report)
    t0 = tracker.started
    for i, (what, arg) in enumerate(steps):
        now = t0 + (BOOT_GRACE_S + 1 if after_boot else 0.0) + i * 0.01
        _apply(node, tracker, what, arg, now)
        tracker.sync(now)
        m = node.safety
        assert ("estop" in reported) == (m.state is State.ESTOP)
        assert ("cell_fault" in reported) == (m.state is State.FAULT)
        for dev in DEVICES:
            waiting = m.state is State.BOOT and not after_boot and dev not in tracker.ever_up
            assert (f"{dev}_lost" in reported) == (dev not in m.up and not waiting), dev
        if "safety_alarm" in reported:
            assert m.state in (State.ESTOP, State.FAULT)
        assert reported == tracker.diff.active
    before = len(stream)
    tracker.sync(t0 + 10_000)  # nothing changed (past the boot grace, maybe): no repeats
    tracker.sync(t0 + 10_000)
    assert len(stream) - before <= len(DEVICES)
    last = tracker.diff.active
    tracker.sync(t0 + 10_001)
    assert tracker.diff.active == last


def test_estop_is_a_fault_while_pressed_and_until_the_reset():
    node = _node()
    events: list[tuple[str, bool, dict[str, str]]] = []
    tracker = FaultTracker(node, lambda c, a, i: events.append((c, a, i)))
    for dev in DEVICES:
        node.safety.device_up(dev, 1.0)
    node.safety.estop(False, 1.0)
    tracker.sync(1.0)
    assert events == []
    node.safety.estop(True, 2.0)
    tracker.sync(2.0)
    assert events[-1] == ("estop", True, {"severity": "critical", "message": "e-stop pressed"})
    node.safety.estop(False, 3.0)
    tracker.sync(3.0)
    assert events[-1][:2] == ("estop", True) and "reset" in events[-1][2]["message"]
    node.safety.reset(4.0)
    tracker.sync(4.0)
    assert events[-1][:2] == ("estop", False) and tracker.diff.active == {}


def test_plc_loss_says_why_and_its_fault_stays_until_the_reset():
    node = _node()
    events: list[tuple[str, bool, dict[str, str]]] = []
    tracker = FaultTracker(node, lambda c, a, i: events.append((c, a, i)))
    for dev in DEVICES:
        node.safety.device_up(dev, 1.0)
    node._plc_last = PlcStatus(online=False, why="conveyor: timeout after 100 ms")
    node.safety.device_lost("plc", "conveyor: timeout after 100 ms", 2.0)
    tracker.sync(2.0)
    active = tracker.diff.active
    assert active["plc_lost"] == {"severity": "error", "device": "plc",
                                  "message": "conveyor: timeout after 100 ms"}  # fmt: skip
    assert active["cell_fault"]["message"] == "plc lost: conveyor: timeout after 100 ms"
    node.safety.device_up("plc", 3.0)
    tracker.sync(3.0)
    assert set(tracker.diff.active) == {"cell_fault"}
    node.safety.reset(4.0)
    tracker.sync(4.0)
    assert tracker.diff.active == {}


def test_a_degrading_device_is_a_warning_and_boot_has_a_grace():
    node = _node()
    tracker = FaultTracker(node, lambda c, a, i: None)
    tracker.sync(tracker.started + 1.0)
    assert tracker.diff.active == {}  # booting: devices may still be coming up
    tracker.sync(tracker.started + BOOT_GRACE_S + 0.1)
    active = tracker.diff.active
    assert set(active) == {f"{d}_lost" for d in DEVICES}
    assert active["scanner_lost"]["severity"] == "warning"  # policy degrade
    assert active["scanner_lost"]["message"] == "not connected: scanner"
    assert active["mcu_lost"]["severity"] == "error"  # policy stop
    assert active["brain_lost"]["message"] == "broker unreachable"


def test_nothing_is_reported_while_the_node_shuts_down():
    node = _node()
    events: list[Any] = []
    tracker = FaultTracker(node, lambda c, a, i: events.append(c))
    node._closing = True
    tracker.sync(tracker.started + 100)
    assert events == []


def test_fault_diff_raises_again_only_when_the_message_changes():
    diff = FaultDiff()
    a = {"severity": "error", "message": "x"}
    assert diff.update({"f": a}) == [("f", True, a)]
    assert diff.update({"f": dict(a)}) == []
    b = {"severity": "error", "message": "y"}
    assert diff.update({"f": b}) == [("f", True, b)]
    assert diff.update({}) == [("f", False, b)]


def test_wanted_faults_of_a_healthy_running_cell_is_empty():
    node = _node()
    for dev in DEVICES:
        node.safety.device_up(dev, 1.0)
    node.safety.estop(False, 1.0)
    node.safety.start(1.1)
    tracker = FaultTracker(node)
    assert wanted_faults(tracker.view(1.2)) == {}
