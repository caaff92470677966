"""The drive firmware's pure core (sim_hardware/mcu/drive.py WheelDrive): ramps within the
limits, travel is the integral of speed, setpoints in order, underrun and stops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import messages as m
from sim_hardware.mcu.drive import DriveLimits, DriveRefused, Ramp, Setpoint, WheelDrive

LIMITS = DriveLimits(max_speed=2.0, max_accel=1.5, stop_decel=3.0)
speed = st.floats(-2.0, 2.0)


@settings(max_examples=30)
@given(st.lists(st.tuples(st.floats(0.01, 0.5), speed, speed), min_size=1, max_size=12))
def test_wheel_speeds_ramp_within_the_limit_and_travel_is_their_integral(plan):
    drive = WheelDrive(LIMITS)
    t = 0.0
    for gap, left, right in plan:  # all queued at time 0, as a host queues ahead
        t += gap
        drive.push(Setpoint(t, left, right, 0.6), 0.0)
    end = t + 1.0
    dt = 0.004
    prev_v = drive.speeds(0.0)
    integral = [0.0, 0.0]
    k = 1
    while k * dt <= end:
        now = k * dt
        drive.advance(now)
        v = drive.speeds(now)
        for w in range(2):
            # per-step change within the service ramp, or the stop ramp of an underrun
            assert abs(v[w] - prev_v[w]) <= max(LIMITS.max_accel, LIMITS.stop_decel) * dt + 1e-9
            integral[w] += (v[w] + prev_v[w]) / 2 * dt
        prev_v = v
        k += 1
    travel = drive.travel(k * dt - dt)
    # the trapezoid rule errs by at most accel * dt^2 / 8 at each kink of a ramp
    kinks = 4 * len(plan) + 4
    assert travel[0] == pytest.approx(integral[0], abs=kinks * 3.0 * dt * dt / 8 + 1e-9)
    assert travel[1] == pytest.approx(integral[1], abs=kinks * 3.0 * dt * dt / 8 + 1e-9)


@given(speed, speed, st.floats(0.0, 3.0))
def test_a_ramp_never_overshoots_its_target(v0, target, t):
    r = Ramp(0.0, v0, 0.0, target, 1.5)
    v = r.speed(t)
    assert min(v0, target) - 1e-12 <= v <= max(v0, target) + 1e-12


def test_setpoints_must_come_in_order_in_the_future_within_limits_and_room():
    drive = WheelDrive(LIMITS, depth=2)
    drive.push(Setpoint(1.0, 0.5, 0.5, 0.1), 0.0)
    with pytest.raises(DriveRefused, match="not after the last queued") as exc:
        drive.push(Setpoint(1.0, 0.5, 0.5, 0.1), 0.0)
    assert exc.value.code == m.ERR_BAD_ARGUMENT
    with pytest.raises(DriveRefused, match="beyond max_speed"):
        drive.push(Setpoint(2.0, 2.5, 0.5, 0.1), 0.0)
    with pytest.raises(DriveRefused, match="in the past") as exc:
        WheelDrive(LIMITS).push(Setpoint(0.5, 0.5, 0.5, 0.1), 0.6)
    assert exc.value.code == m.ERR_IN_PAST
    drive.push(Setpoint(1.1, 0.5, 0.5, 0.1), 0.0)
    with pytest.raises(DriveRefused, match="queue full") as exc:
        drive.push(Setpoint(1.2, 0.5, 0.5, 0.1), 0.0)
    assert exc.value.code == m.ERR_QUEUE_FULL


def test_a_setpoint_that_runs_out_moving_is_an_underrun_stop_and_a_halt():
    drive = WheelDrive(LIMITS)
    drive.push(Setpoint(1.0, 1.0, 1.0, 0.2), 0.0)
    assert drive.advance(1.1) == []
    stops = drive.advance(1.25)
    assert [(s.reason, s.t) for s in stops] == [(m.DRIVE_STOP_UNDERRUN, pytest.approx(1.2))]
    # 0.2 s at 1.5 m/s2 reached 0.3 m/s; to 0 at 3 m/s2 takes 0.1 s
    assert drive.halted and drive.state(1.25) == m.DRIVE_STOPPING
    assert drive.speeds(1.25) == pytest.approx((0.15, 0.15))
    drive.advance(1.3)
    assert drive.speeds(1.3) == (0.0, 0.0) and drive.state(1.3) == m.DRIVE_HALTED
    with pytest.raises(DriveRefused, match="halted") as exc:
        drive.push(Setpoint(2.0, 0.1, 0.1, 0.1), 1.5)
    assert exc.value.code == m.ERR_HALTED
    drive.resume()
    drive.push(Setpoint(2.0, 0.1, 0.1, 0.1), 1.5)


def test_a_zero_setpoint_that_runs_out_is_idle_not_an_underrun():
    drive = WheelDrive(LIMITS)
    drive.push(Setpoint(1.0, 0.3, 0.3, 0.1), 0.0)
    drive.push(Setpoint(1.05, 0.0, 0.0, 0.1), 0.0)
    assert drive.advance(2.0) == []
    assert drive.state(2.0) == m.DRIVE_IDLE and not drive.halted


def test_a_stop_command_stops_at_stop_decel_and_does_not_halt():
    drive = WheelDrive(LIMITS)
    drive.push(Setpoint(0.001, 1.5, 1.5, 1.0), 0.0)
    drive.push(Setpoint(0.9, 1.5, 1.5, 1.0), 0.0)
    drive.advance(1.5)
    assert drive.speeds(1.5) == (1.5, 1.5)
    drive.stop(1.5, m.DRIVE_STOP_COMMAND)
    assert drive.speeds(1.75) == pytest.approx((0.75, 0.75))
    assert drive.speeds(2.0) == (0.0, 0.0)
    drive.advance(2.0)
    assert not drive.halted and drive.state(2.0) == m.DRIVE_IDLE
