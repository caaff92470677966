"""Belt kinematics: exact ramps, the time a position is reached, the e-stop brake."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.world.belt import Belt, Motion

speeds = st.floats(0, 3000)
accels = st.floats(10, 20_000)


@given(v0=speeds, target=speeds, accel=accels, dts=st.lists(st.floats(0, 5), min_size=2))
def test_position_never_goes_back_and_speed_stays_between_start_and_target(v0, target, accel, dts):
    m = Motion(0.0, 100.0, v0, target, accel)
    times = sorted(dts)
    positions = [m.position_at(t) for t in times]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(positions))
    for t in times:
        assert min(v0, target) - 1e-9 <= m.speed_at(t) <= max(v0, target) + 1e-9


@given(v0=speeds, target=st.floats(1, 3000), accel=accels, t=st.floats(0, 5))
def test_time_of_inverts_position_at(v0, target, accel, t):
    m = Motion(0.0, 0.0, v0, target, accel)
    p = m.position_at(t)
    when = m.time_of(p)
    assert when is not None
    assert m.position_at(when) == pytest.approx(p, abs=1e-6)


@given(v0=st.floats(1, 3000), decel=accels)
def test_a_stopping_belt_never_reaches_past_its_stopping_distance(v0, decel):
    m = Motion(0.0, 0.0, v0, 0.0, decel)
    stop_mm = v0 * v0 / (2 * decel)
    assert m.position_at(1e6) == pytest.approx(stop_mm, rel=1e-9)
    assert m.time_of(stop_mm * 1.001 + 1e-6) is None


def test_estop_brakes_at_the_modelled_deceleration_and_holds():
    belt = Belt(max_speed_mm_s=3000, estop_decel_mm_s2=5000)
    belt.command(0.0, run=True, setpoint_mm_s=2500, ramp_mm_s2=1000)
    assert belt.speed_at(2.5) == pytest.approx(2500)  # ramp: 2.5 s to 2.5 m/s
    assert belt.position_at(2.5) == pytest.approx(0.5 * 1000 * 2.5**2)
    belt.set_estop(3.0, True)
    p0 = belt.position_at(3.0)
    assert belt.speed_at(3.0 + 0.5) == pytest.approx(0.0)  # 2500 / 5000 = 0.5 s
    assert belt.speed_at(3.25) == pytest.approx(1250)
    assert belt.position_at(10.0) - p0 == pytest.approx(2500**2 / (2 * 5000))  # 625 mm
    # the run command is still there, but the e-stop wins until it is released
    belt.command(4.0, run=True, setpoint_mm_s=2000, ramp_mm_s2=1000)
    assert belt.speed_at(6.0) == 0.0


def test_setpoint_is_capped_at_the_vfd_top_speed():
    belt = Belt(max_speed_mm_s=2000, estop_decel_mm_s2=5000)
    belt.command(0.0, run=True, setpoint_mm_s=9000, ramp_mm_s2=1e6)
    assert belt.speed_at(1.0) == 2000
    assert math.isclose(belt.position_at(1.0), 2000, rel_tol=1e-3)
