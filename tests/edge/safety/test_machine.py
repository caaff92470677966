"""The safety state machine: e-stop wins, resets are explicit, device loss follows policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.safety import SafetyConfig, SafetyMachine, State, Transition
from edge.safety.machine import (
    AllowDiverting,
    CancelAllStrokes,
    DegradedChanged,
    Refused,
    SafetyAlarm,
    StartBelt,
    StopBelt,
)

DEVICES = {"mcu", "plc", "camera", "brain"}


def running() -> SafetyMachine:
    m = SafetyMachine(SafetyConfig(estop_stop_ms=500), DEVICES)
    for d in ("mcu", "plc", "camera", "brain"):
        m.device_up(d, 0.0)
    m.start(0.1)
    m.belt(True, 0.2)
    assert m.state is State.RUNNING
    return m


def test_boot_waits_for_required_devices_and_reports_missing_degradable_ones():
    m = SafetyMachine(SafetyConfig(), DEVICES)
    assert m.device_up("mcu", 0.0) == []
    out = m.device_up("plc", 0.1)
    assert out[0] == Transition(State.BOOT, State.READY, "all required devices up", 0.1)
    assert DegradedChanged(frozenset({"camera", "brain"}), "all required devices up", 0.1) in out
    out = m.start(0.2)
    assert m.state is State.RUNNING and AllowDiverting("start") in out
    assert StartBelt("start command") in out


def test_estop_from_running_stops_belt_and_cancels_strokes_and_needs_a_reset():
    m = running()
    out = m.estop(True, 1.0)
    assert out == [
        Transition(State.RUNNING, State.ESTOP, "e-stop pressed", 1.0),
        StopBelt(True, "e-stop"),
        CancelAllStrokes("e-stop"),
    ]
    m.belt(False, 1.3)
    assert m.reset(1.4) == [Refused("reset", "the e-stop is still pressed; release it first", 1.4)]
    assert m.estop(False, 1.5) == [] and m.state is State.ESTOP  # release alone is not a reset
    assert m.start(1.6)[0].why == "the cell is estop, not ready"
    out = m.reset(1.7)
    assert out[0] == Transition(State.ESTOP, State.READY, "reset command", 1.7)
    m.start(1.8)
    assert m.state is State.RUNNING


def test_belt_not_stopped_within_the_configured_time_raises_one_alarm():
    m = running()
    m.estop(True, 1.0)
    assert m.tick(1.5) == []
    (alarm,) = m.tick(1.501)
    assert isinstance(alarm, SafetyAlarm) and "500 ms after the e-stop" in alarm.detail
    assert m.tick(2.0) == []
    assert m.reset(2.1)[0].why == "the e-stop is still pressed; release it first"
    m.estop(False, 2.2)
    assert m.reset(2.3)[0].why == "the belt is still moving"


def test_losing_a_stop_device_faults_and_reset_waits_for_it():
    m = running()
    out = m.device_lost("mcu", "port vanished", 2.0)
    assert out[0] == Transition(State.RUNNING, State.FAULT, "mcu lost: port vanished", 2.0)
    assert StopBelt(False, "mcu lost: port vanished", quick=True) in out
    assert CancelAllStrokes("mcu lost: port vanished") in out
    m.belt(False, 2.5)
    assert m.reset(2.6)[0].why == "required device(s) still lost: mcu"
    m.device_up("mcu", 3.0)
    assert m.state is State.FAULT  # coming back is not a reset
    m.reset(3.1)
    assert m.state is State.READY


def test_losing_a_degrade_device_keeps_running_and_reports_it():
    m = running()
    out = m.device_lost("brain", "broker unreachable", 2.0)
    assert out == [DegradedChanged(frozenset({"brain"}), "brain lost: broker unreachable", 2.0)]
    assert m.state is State.RUNNING
    assert m.device_up("brain", 3.0) == [DegradedChanged(frozenset(), "brain up", 3.0)]


def test_a_stop_goes_through_stopping_to_ready():
    m = running()
    out = m.stop(1.0)
    assert out[0] == Transition(State.RUNNING, State.STOPPING, "stop command", 1.0)
    assert CancelAllStrokes("stop command") in out
    out = m.belt(False, 1.4)
    assert out == [Transition(State.STOPPING, State.READY, "belt at standstill", 1.4)]


def test_a_jam_faults_the_cell():
    m = running()
    m.fault("jam at photo-eye mid", 1.0)
    assert m.state is State.FAULT and m.history[-1].cause == "jam at photo-eye mid"


def test_unknown_devices_are_refused():
    with pytest.raises(ValueError, match="unknown device 'lidar'"):
        SafetyMachine(SafetyConfig(), {"lidar"})
    with pytest.raises(ValueError, match="not a device of this cell"):
        SafetyMachine(SafetyConfig(), {"mcu"}).device_up("plc", 0.0)


INPUTS = st.lists(
    st.one_of(
        st.tuples(st.just("device_up"), st.sampled_from(sorted(DEVICES))),
        st.tuples(st.just("device_lost"), st.sampled_from(sorted(DEVICES))),
        st.tuples(st.just("estop"), st.booleans()),
        st.tuples(st.just("belt"), st.booleans()),
        st.tuples(st.sampled_from(["start", "stop", "reset", "tick", "fault"]), st.none()),
    ),
    max_size=40,
)


def _apply(m: SafetyMachine, step: tuple[str, object], t: float) -> list[object]:
    name, arg = step
    if name == "device_up":
        return list(m.device_up(str(arg), t))
    if name == "device_lost":
        return list(m.device_lost(str(arg), "gone", t))
    if name == "estop":
        return list(m.estop(bool(arg), t))
    if name == "belt":
        return list(m.belt(bool(arg), t))
    if name == "fault":
        return list(m.fault("test fault", t))
    return list(getattr(m, name)(t))


@given(before=INPUTS, after=INPUTS)
def test_estop_wins_and_only_a_reset_leaves_estop_or_fault(before, after):
    m = SafetyMachine(SafetyConfig(), DEVICES)
    t = 0.0
    for step in before:
        t += 0.01
        _apply(m, step, t)
    t += 0.01
    out = m.estop(True, t)
    assert m.state is State.ESTOP
    if out:
        assert CancelAllStrokes("e-stop") in out and StopBelt(True, "e-stop") in out
    for step in after:
        t += 0.01
        state = m.state
        out = _apply(m, step, t)
        if state in (State.ESTOP, State.FAULT) and m.state is not state:
            assert step[0] == "reset" or (state is State.FAULT and step[0] == "estop")
        if m.state is State.ESTOP:
            assert not any(isinstance(a, (StartBelt, AllowDiverting)) for a in out)


@given(steps=INPUTS)
def test_every_state_change_is_one_transition_event(steps):
    m = SafetyMachine(SafetyConfig(), DEVICES)
    t, state = 0.0, m.state
    for step in steps:
        t += 0.01
        out = _apply(m, step, t)
        transitions = [a for a in out if isinstance(a, Transition)]
        chain = [state] + [tr.to_state for tr in transitions]
        assert chain[-1] is m.state
        for tr, prev in zip(transitions, chain, strict=False):
            assert tr.from_state is prev and tr.t == t and tr.cause
        state = m.state
    assert [h.to_state for h in m.history][-1:] in ([], [m.state])


@pytest.mark.parametrize("state", ["boot", "ready", "estop", "fault"])
def test_a_belt_found_moving_outside_running_is_stopped(state: str):
    """A restarted node meets a belt that runs on, or someone starts it from the panel."""
    m = SafetyMachine(SafetyConfig(), DEVICES)
    if state != "boot":
        for d in ("mcu", "plc"):
            m.device_up(d, 0.0)
    if state == "estop":
        m.estop(True, 0.1)
        m.belt(False, 0.2)
    elif state == "fault":
        m.fault("jam", 0.1)
        m.belt(False, 0.2)
    assert m.state.value == state
    out = m.belt(True, 1.0)
    assert [a for a in out if isinstance(a, StopBelt)], out
    assert m.belt(True, 1.1) == []  # once per edge: the node retries the write itself


def test_a_moving_belt_while_running_or_stopping_is_left_alone():
    m = running()
    assert not [a for a in m.belt(True, 1.0) if isinstance(a, StopBelt)]
