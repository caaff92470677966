"""The world's safety truth: every stroke's start and every e-stop edge kept whole, and the
time the belt came to rest after any instant (what the sim's belt_stop_ms is made of)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.world.belt import Belt
from tests.sim_hardware.world.helpers import SPEED, running_world, small_config


def test_an_estop_brings_the_belt_to_rest_at_its_brake_deceleration() -> None:
    belt = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000)
    belt.command(0.0, run=True, setpoint_mm_s=2500, ramp_mm_s2=1e9)
    assert belt.standstill_after(1.0) is None  # running, nothing planned to stop it
    belt.set_estop(3.0, True)
    assert belt.standstill_after(3.0) == pytest.approx(3.5)  # 2500 / 5000
    assert belt.standstill_after(3.2) == pytest.approx(3.5)
    assert belt.standstill_after(4.0) == 4.0  # at rest already
    assert belt.standstill_after(1.0) == pytest.approx(3.5)  # the first rest after 1 s


def test_a_restart_before_standstill_is_not_a_standstill() -> None:
    belt = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000)
    belt.command(0.0, run=True, setpoint_mm_s=2500, ramp_mm_s2=1e9)
    belt.command(1.0, run=False, setpoint_mm_s=2500, ramp_mm_s2=1000)  # 2.5 s ramp down
    belt.command(2.0, run=True, setpoint_mm_s=2500, ramp_mm_s2=1000)  # back up at 1.5 m/s
    assert belt.standstill_after(1.0) is None
    belt.set_estop(5.0, True)
    assert belt.standstill_after(1.0) == pytest.approx(5.5)


def test_a_belt_at_rest_from_the_start_is_at_rest() -> None:
    belt = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000, t0=10.0)
    assert belt.standstill_after(12.0) == 12.0
    assert belt.standstill_after(5.0) == 10.0  # before the first motion: from its start


@given(
    st.lists(
        st.tuples(st.floats(0.001, 2), st.booleans(), st.floats(0, 3000), st.floats(10, 1e4)),
        max_size=12,
    ),
    st.floats(0, 30),
)
def test_standstill_after_is_at_rest_and_the_first_rest(cmds, t) -> None:
    belt = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000)
    now = 0.0
    for dt, run, setpoint, ramp in cmds:
        now += dt
        belt.command(now, run, setpoint, ramp)
    rest = belt.standstill_after(t)
    motion = belt.motion
    if rest is None:
        assert motion.target > 0  # still moving by the plan
        return
    assert rest >= t
    # at rest then, by the motion in force at that time: replay the history
    probe = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000)
    now = 0.0
    for dt, run, setpoint, ramp in cmds:
        if now + dt > rest:
            break
        now += dt
        probe.command(now, run, setpoint, ramp)
    assert probe.speed_at(rest) == pytest.approx(0.0, abs=1e-6)


def test_the_world_logs_each_stroke_start_and_estop_edge_in_full() -> None:
    world = running_world(small_config(), arrivals=False)
    world.stroke(0, at=0.5)
    world.set_diverter(1, True, at=0.7, source="plc")
    world.set_diverter(1, True, at=0.8, source="mcu")  # already on: not a new stroke
    world.set_diverter(1, False, at=0.9, source="plc")
    world.set_diverter(1, False, at=0.9, source="mcu")
    world.set_estop(True, at=1.0)
    world.set_estop(True, at=1.1)  # held: no new edge
    world.set_estop(False, at=2.0)
    world.advance_to(3.0)
    log = world.safety_log()
    assert log["strokes"] == [(0.5, 0, "direct"), (0.7, 1, "plc")]
    assert log["estop_edges"] == [(1.0, True), (2.0, False)]
    assert world.safety_log(since_s=0.6)["strokes"] == [(0.7, 1, "plc")]
    rest = world.standstill_after(1.0)
    assert rest == pytest.approx(1.0 + SPEED / small_config().belt.estop_decel_mm_s2)
    assert world.standstills_after([1.0, 1.6, 2.5]) == [rest, 1.6, None]  # released: runs
