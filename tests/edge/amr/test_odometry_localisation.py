"""Odometry against exact arcs, and localisation by floor codes with a growing bound."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.amr.localisation import FloorCodeReading, Localiser, UncertaintyModel
from edge.amr.odometry import Odometry, Pose, WheelGeometry, arc_step
from edge.amr.path import wrap_angle

TRACK = 0.5
M_PER_COUNT = 1e-6  # fine counts: the test is about integration, not quantisation
angle = st.floats(-math.pi, math.pi)
pose_st = st.builds(Pose, st.floats(-50, 50), st.floats(-50, 50), angle)


def exact_arc(start: Pose, vl: float, vr: float, t: float) -> Pose:
    """Closed form: constant wheel speeds drive a circle of radius v / w (or a line)."""
    v, w = (vl + vr) / 2, (vr - vl) / TRACK
    if abs(w) < 1e-12:
        return Pose(start.x + v * t * math.cos(start.theta),
                    start.y + v * t * math.sin(start.theta), start.theta)  # fmt: skip
    r = v / w
    th = start.theta + w * t
    return Pose(
        start.x + r * (math.sin(th) - math.sin(start.theta)),
        start.y - r * (math.cos(th) - math.cos(start.theta)),
        wrap_angle(th),
    )


def close(a: Pose, b: Pose, tol: float) -> bool:
    return a.distance(b) <= tol and abs(wrap_angle(a.theta - b.theta)) <= tol


@given(
    pose_st, st.floats(-2, 2), st.floats(-2, 2), st.floats(0.1, 10),
    st.lists(st.floats(0.01, 1.0), min_size=1, max_size=40),
)  # fmt: skip
def test_odometry_matches_the_exact_arc_however_the_counts_are_sampled(
    start, vl, vr, duration, cuts
):
    geom = WheelGeometry(TRACK, M_PER_COUNT, M_PER_COUNT)
    odo = Odometry(geom, start, max_step_m=100.0)
    odo.update(0, 0)
    total = sum(cuts)
    t = 0.0
    for c in cuts:
        t += c / total * duration
        odo.update(round(vl * t / M_PER_COUNT), round(vr * t / M_PER_COUNT))
    expected = exact_arc(start, vl, vr, duration)
    # counts are rounded to 1 um: a few um of position, micro-radians of heading
    assert close(odo.pose, expected, 1e-4 + 1e-5 * duration)


@given(pose_st, st.floats(-3, 3), st.floats(-3, 3))
def test_one_arc_step_equals_two_half_steps(start, dl, dr):
    whole = arc_step(start, dl, dr, TRACK)
    half = arc_step(arc_step(start, dl / 2, dr / 2, TRACK), dl / 2, dr / 2, TRACK)
    assert close(whole, half, 1e-9)


@given(pose_st, pose_st)
def test_pose_algebra(a, b):
    assert close(a.compose(b).relative_to(a), b, 1e-7)
    assert close(a.compose(a.inverse()), Pose(0, 0, 0), 1e-9)


def test_odometry_refuses_a_jump_and_re_references():
    odo = Odometry(WheelGeometry.from_wheels(TRACK, 0.1, 4096))
    odo.update(1000, 1000)
    with pytest.raises(ValueError, match="jumped"):
        odo.update(10_000_000, 0)
    p = odo.update(10_000_000 + 2048, 2048)  # half a wheel turn each, from the new reference
    assert math.isclose(p.x, math.pi * 0.1, rel_tol=1e-9)


CODES = {"A": Pose(0.0, 0.0, 0.0), "B": Pose(5.0, 0.0, math.pi / 2)}


@given(pose_st, st.floats(-0.03, 0.03), st.floats(-0.03, 0.03), angle)
def test_a_floor_code_reading_fixes_the_pose_exactly(truth, dx, dy, dth):
    # the code is placed so the vehicle (truth) sees it at (dx, dy, dth)
    code_pose = truth.compose(Pose(dx, dy, dth))
    loc = Localiser({"C": code_pose}, Pose(0.0, 0.0, 0.0), start_xy_bound=1.0)
    loc.on_odometry(0, Pose(3.0, -1.0, 0.4))  # whatever the odometry thinks
    assert loc.on_code(FloorCodeReading("C", dx, dy, dth, clock=0)) is None
    assert close(loc.pose, truth, 1e-7)
    assert loc.state.xy_bound == pytest.approx(UncertaintyModel().code_xy)


def test_a_late_reading_is_placed_at_its_frame_time():
    loc = Localiser(CODES, Pose(0.0, 0.0, 0.0))
    # odometry drifted: it believes 2 % less distance than driven; the frame at clock 100
    # saw code B under the centre, read after 0.5 m more driving
    for i in range(0, 101):
        loc.on_odometry(i, Pose(0.049 * i, 0.0, math.pi / 2 * 0))
    later = [(101 + i, Pose(4.9 + 0.01 * (i + 1), 0.0, 0.0)) for i in range(50)]
    for c, p in later:
        loc.on_odometry(c, p)
    # vehicle at the frame time was exactly on code B, heading along +x (code rotated +90)
    assert loc.on_code(FloorCodeReading("B", 0.0, 0.0, math.pi / 2, clock=100)) is None
    assert loc.pose.x == pytest.approx(5.5, abs=1e-9)
    assert loc.pose.y == pytest.approx(0.0, abs=1e-9)


def test_uncertainty_grows_with_distance_and_raises_once_beyond_the_allowed_deviation():
    loc = Localiser(CODES, Pose(0.0, 0.0, 0.0))
    bounds = []
    raised = []
    for i in range(1, 1001):  # 10 m straight, 1 cm per report
        loc.on_odometry(i, Pose(0.01 * i, 0.0, 0.0))
        bounds.append(loc.state.xy_bound)
        err = loc.check(0.05, 0.1)
        if err:
            raised.append((i, err))
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(bounds))
    assert len(raised) == 1
    i, err = raised[0]
    assert err.kind == "uncertainty"
    assert "without a floor code (allowed 50 mm" in err.message
    assert 2.0 < i * 0.01 < 5.0  # 1 %/m plus heading drift: past 50 mm after a few metres
    # a code read brings it back within, and a later excursion raises again
    loc.on_code(FloorCodeReading("A", 0.0, 0.0, 0.0, clock=1000))
    assert loc.check(0.05, 0.1) is None and loc.within(0.05, 0.1)


def test_an_unknown_code_is_reported_not_used():
    loc = Localiser(CODES, Pose(1.0, 1.0, 0.0))
    err = loc.on_code(FloorCodeReading("ZZ", 0.0, 0.0, 0.0, clock=0))
    assert err is not None and err.kind == "unknown_code" and "'ZZ'" in err.message
    assert loc.pose == Pose(1.0, 1.0, 0.0)


def test_init_position_sets_the_pose_over_any_odometry():
    loc = Localiser(CODES, Pose(0.0, 0.0, 0.0))
    loc.on_odometry(1, Pose(2.0, 0.0, 0.0))
    loc.init_position(Pose(10.0, 10.0, math.pi))
    assert close(loc.pose, Pose(10.0, 10.0, math.pi), 1e-9)
    loc.on_odometry(2, Pose(3.0, 0.0, 0.0))  # 1 m forward in the odometry frame
    assert close(loc.pose, Pose(9.0, 10.0, math.pi), 1e-9)
