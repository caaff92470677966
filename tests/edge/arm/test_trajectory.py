"""Jerk-limited profiles: time-optimal (checked against ruckig where it is installed), within
every limit when sampled as the MCU runs them; the limit check catches what breaks one."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from edge.arm.kinematics import Limits, Scara
from edge.arm.trajectory import (
    DoubleS,
    Law,
    blend_shape,
    limit_violation,
    sample,
    sync_move,
    unit_s,
)
from tests.edge.arm.helpers import example_cfg

KIN_LIMITS: Limits = Scara(example_cfg()).limits

positive = st.floats(0.5, 5000.0)


@settings(max_examples=40, deadline=None)
@given(st.floats(-2000, 2000), positive, st.floats(10, 50_000), st.floats(100, 1e6))
def test_double_s_reaches_the_target_within_limits(d: float, v: float, a: float, j: float) -> None:
    p = DoubleS(d, v, a, j)
    assert p.eval(p.duration)[0] == d
    assert p.eval(-1)[0] == 0.0
    n = 100
    for i in range(n + 1):
        pos, vel, acc, jerk = p.eval(p.duration * i / n)
        assert abs(vel) <= v * (1 + 1e-9) + 1e-9
        assert abs(acc) <= a * (1 + 1e-9) + 1e-9
        assert abs(jerk) <= j * (1 + 1e-9)
        assert min(0.0, d) - 1e-9 <= pos <= max(0.0, d) + 1e-9  # no overshoot


@settings(max_examples=50, deadline=None)
@given(st.floats(0.1, 2000), positive, st.floats(10, 50_000), st.floats(100, 1e6))
def test_double_s_is_as_fast_as_ruckig(d: float, v: float, a: float, j: float) -> None:
    ruckig = pytest.importorskip("ruckig")
    otg = ruckig.Ruckig(1)
    inp = ruckig.InputParameter(1)
    inp.current_position, inp.current_velocity, inp.current_acceleration = [0.0], [0.0], [0.0]
    inp.target_position, inp.target_velocity, inp.target_acceleration = [d], [0.0], [0.0]
    inp.max_velocity, inp.max_acceleration, inp.max_jerk = [v], [a], [j]
    traj = ruckig.Trajectory(1)
    try:
        otg.calculate(inp, traj)
    except ruckig.RuckigError:  # ruckig's own step 1 fails on a few inputs (0.19.4)
        reject()
    ours = DoubleS(d, v, a, j).duration
    assert ours == pytest.approx(traj.duration, rel=1e-4, abs=1e-6)


joints = st.tuples(
    st.floats(-150, 150), st.floats(-145, 145), st.floats(-750, -330), st.floats(-360, 360)
)


@settings(max_examples=30, deadline=None)
@given(joints, joints, st.floats(0.1, 1.0))
def test_sync_move_sampled_stays_within_limits(q0, q1, speed: float) -> None:
    limits = KIN_LIMITS.scaled(speed)
    duration, at = sync_move(q0, q1, limits)
    q = sample(at, 0.0, duration, 0.008)
    assert q[0] == pytest.approx(q0) and q[-1] == pytest.approx(q1)
    assert limit_violation(q, 0.008, limits) is None
    # every joint starts and ends together (synchronised)
    for k in range(4):
        if abs(q1[k] - q0[k]) > 1e-6:
            mid = at(duration / 2)[k]
            assert min(q0[k], q1[k]) < mid < max(q0[k], q1[k])


def test_limit_violation_names_the_joint_and_what() -> None:
    lim = KIN_LIMITS
    fast = [(0.0, 0.0, -500.0, 0.0), (10.0, 0.0, -500.0, 0.0)]  # 10 deg in 8 ms: 1250 deg/s
    why = limit_violation(fast, 0.008, lim)
    assert why is not None and why.startswith("j1 velocity")
    out = [(0.0, 0.0, -800.0, 0.0)]
    why = limit_violation(out, 0.008, lim)
    assert why is not None and "j3 at -800.00 outside" in why
    # a step in acceleration alone (to just under j2's limit): jerk
    a = 0.98 * lim.acc[1]
    q = [(0.0, 30.0, -500.0, 0.0)] * 3 + [(0.0, 30.0 + 0.5 * a * (i * 0.008) ** 2,
                                           -500.0, 0.0) for i in range(1, 4)]  # fmt: skip
    why = limit_violation(q, 0.008, lim, rest_at_end=False)
    assert why is not None and "j2 jerk" in why


def test_unit_law_is_monotonic_and_smooth() -> None:
    xs = [unit_s(i / 200) for i in range(201)]
    assert xs[0] == 0.0 and xs[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(xs))
    assert unit_s(-1) == 0.0 and unit_s(2) == 1.0
    assert math.isclose(unit_s(0.5), 0.5, abs_tol=1e-9)


joint_delta = st.tuples(  # from the middle of each range to anywhere in it
    st.floats(-150, 150), st.floats(-145, 145), st.floats(-210, 210), st.floats(-360, 360)
)


@settings(max_examples=40, deadline=None)
@given(joint_delta, st.floats(1.0, 3.0))
def test_a_blend_on_its_shared_law_stays_within_every_joints_limits(delta, stretch) -> None:
    """blend_shape: one time law for all joints, as fast as the joint that binds allows; a
    move q0 + s(t) delta on it (or on it stretched) sampled at 8 ms breaks no limit, and is
    never faster than the synchronised time-optimal move."""
    q0 = (0.0, 0.0, -540.0, 0.0)
    q1 = tuple(q0[k] + delta[k] for k in range(4))
    shape = blend_shape(delta, KIN_LIMITS)
    law = Law(shape, shape.duration * stretch)
    assert law.s(-1) == 0.0 and law.s(law.duration) == 1.0
    q = sample(
        lambda t: tuple(q0[k] + law.s(t) * delta[k] for k in range(4)),  # type: ignore[misc]
        0.0,
        law.duration,
        0.008,
    )
    assert limit_violation(q, 0.008, KIN_LIMITS) is None
    assert shape.duration >= sync_move(q0, q1, KIN_LIMITS)[0] - 1e-9  # type: ignore[arg-type]
