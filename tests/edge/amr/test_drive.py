"""The drive core against exact diff-drive kinematics: it converges on random feasible paths
(straight chains and NURBS), arrives within the deviation, never exceeds its limits, stops
for the protective field and resumes after it."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.amr.drive import (
    Arrived,
    DriveController,
    DriveParams,
    FieldViolation,
    Leg,
    NodeReached,
    PathDeviation,
)
from edge.amr.odometry import Pose, arc_step
from edge.amr.path import PathSegment, wrap_angle

DT = 0.02
PARAMS = DriveParams(track_m=0.5, max_speed=1.2, max_accel=0.6, max_decel=1.0)


class Run:
    """Drives the controller against a vehicle that executes every setpoint exactly (for
    the setpoint's whole period), recording what the limits are checked on."""

    def __init__(self, params: DriveParams, pose: Pose) -> None:
        self.c = DriveController(params)
        self.p = params
        self.pose = pose
        self.t = 0.0
        self.events: list = []
        self.cmds: list[tuple[float, float, float, float]] = []  # v, w, left, right
        self.max_cross_track = 0.0
        self.edge_speed_violations: list[str] = []

    def step(self, field: bool = False) -> None:
        out = self.c.step(self.t, self.pose, field_violated=field)
        leg = self.c.legs[0] if self.c.legs else None  # the leg this setpoint drives on
        self.events += out.events
        sp = out.setpoint
        self.cmds.append((out.v, out.omega, sp.left, sp.right))
        if leg is not None and leg.max_speed is not None and out.v > leg.max_speed + 1e-9:
            self.edge_speed_violations.append(f"{out.v:.3f} on {leg.edge_id}")
        self.pose = arc_step(self.pose, sp.left * DT, sp.right * DT, self.p.track_m)
        self.max_cross_track = max(self.max_cross_track, self.c.cross_track)
        self.t += DT

    def until_arrived(self, limit_s: float = 120.0) -> bool:
        while self.t < limit_s:
            self.step()
            if any(isinstance(e, Arrived) for e in self.events):
                return True
        return False

    def check_limits(self, stop_ramp: bool = False) -> None:
        p = self.p
        decel = p.stop_decel if stop_ramp else p.max_decel
        prev = (0.0, 0.0, 0.0, 0.0)
        for v, w, left, right in self.cmds:
            assert 0.0 <= v <= p.max_speed + 1e-9
            assert abs(w) <= p.max_angular_speed + 1e-9
            assert abs(left) <= p.max_wheel_speed + 1e-9
            assert abs(right) <= p.max_wheel_speed + 1e-9
            dv = v - prev[0]
            assert dv <= p.max_accel * DT + 1e-9, f"accelerated {dv / DT:.3f} m/s2"
            assert -dv <= decel * DT + 1e-9, f"braked {-dv / DT:.3f} m/s2"
            if not stop_ramp:
                assert abs(w - prev[1]) <= p.max_angular_accel * DT + 1e-9
                wheel = p.max_wheel_accel * DT + 1e-9
                assert abs(left - prev[2]) <= wheel and abs(right - prev[3]) <= wheel
            prev = (v, w, left, right)


def straight_legs(points: list[tuple[float, float]], theta: float | None, speeds: list) -> list:
    legs = []
    for i, (a, b) in enumerate(itertools.pairwise(points)):
        last = i == len(points) - 2
        node = NodeTarget(f"n{i + 1}", b[0], b[1], theta if last else None, 0.05, 0.05)
        legs.append(Leg(f"e{i + 1}", PathSegment(a, b), node, speeds[i]))
    return legs


from edge.amr.drive import NodeTarget  # noqa: E402


@st.composite
def straight_chain(draw: st.DrawFn) -> tuple[list, Pose]:
    n = draw(st.integers(1, 3))
    pts = [(0.0, 0.0)]
    heading = draw(st.floats(-math.pi, math.pi))
    for _ in range(n):
        heading += draw(st.floats(-2.5, 2.5))
        length = draw(st.floats(0.4, 4.0))
        x, y = pts[-1]
        pts.append((x + length * math.cos(heading), y + length * math.sin(heading)))
    theta = draw(st.none() | st.floats(-math.pi, math.pi))
    speeds = [draw(st.none() | st.floats(0.2, 2.0)) for _ in range(n)]
    first = math.atan2(pts[1][1], pts[1][0])
    start = Pose(
        draw(st.floats(-0.02, 0.02)), draw(st.floats(-0.02, 0.02)),
        wrap_angle(first + draw(st.floats(-0.5, 0.5))),
    )  # fmt: skip
    return straight_legs(pts, theta, speeds), start


@settings(max_examples=100)
@given(straight_chain())
def test_straight_chains_arrive_within_deviation_and_limits(case):
    legs, start = case
    run = Run(PARAMS, start)
    run.c.add_legs(legs)
    assert run.until_arrived(), f"not arrived after {run.t:.0f} s, at {run.pose}"
    end = legs[-1].end
    assert math.hypot(run.pose.x - end.x, run.pose.y - end.y) <= end.allowed_xy
    if end.theta is not None:
        assert abs(wrap_angle(run.pose.theta - end.theta)) <= end.allowed_theta
    reached = [e.node_id for e in run.events if isinstance(e, NodeReached)]
    assert reached == [leg.end.node_id for leg in legs]
    assert all(e.error_xy <= 0.05 for e in run.events if isinstance(e, NodeReached))
    assert not [e for e in run.events if isinstance(e, PathDeviation)]
    assert not run.edge_speed_violations
    run.check_limits()
    assert run.c.standing and run.c.legs == []


@st.composite
def nurbs_edge(draw: st.DrawFn) -> tuple[dict, tuple[float, float]]:
    """A smooth feasible trajectory: a control polygon turning at most 40 deg per corner."""
    degree = draw(st.integers(2, 3))
    n = draw(st.integers(degree + 1, 6))
    pts = [(0.0, 0.0)]
    heading = 0.0
    for _ in range(n - 1):
        heading += draw(st.floats(-0.7, 0.7))
        step = draw(st.floats(0.5, 1.5))
        x, y = pts[-1]
        pts.append((x + step * math.cos(heading), y + step * math.sin(heading)))
    inner = [(i + 1) / (n - degree) for i in range(n - degree - 1)]
    knots = [0.0] * (degree + 1) + inner + [1.0] * (degree + 1)
    cps = [{"x": x, "y": y, "weight": draw(st.floats(0.5, 2.0))} for x, y in pts]
    return {"degree": degree, "knotVector": knots, "controlPoints": cps}, pts[-1]


@settings(max_examples=100)
@given(nurbs_edge(), st.none() | st.floats(0.3, 1.5))
def test_nurbs_edges_are_followed_and_the_end_node_reached(case, max_speed):
    traj, end = case
    seg = PathSegment.from_vda((0.0, 0.0), end, traj)
    leg = Leg("curve", seg, NodeTarget("end", end[0], end[1], None, 0.05, 0.05), max_speed)
    run = Run(PARAMS, Pose(0.0, 0.0, seg.heading_at(0.0)))
    run.c.add_legs([leg])
    assert run.until_arrived(), f"not arrived after {run.t:.0f} s, at {run.pose}"
    assert math.hypot(run.pose.x - end[0], run.pose.y - end[1]) <= 0.05
    assert run.max_cross_track <= 0.1, f"{run.max_cross_track:.3f} m off the curve"
    assert not run.edge_speed_violations
    run.check_limits()


def test_protective_field_stops_and_the_drive_resumes_after_it():
    legs = straight_legs([(0.0, 0.0), (6.0, 0.0)], None, [1.0])
    run = Run(PARAMS, Pose(0.0, 0.0, 0.0))
    run.c.add_legs(legs)
    for _ in range(150):  # 3 s: up to speed
        run.step()
    assert run.c.v == 1.0
    stopped_at = None
    for i in range(100):
        run.step(field=True)
        if run.c.v == 0.0 and stopped_at is None:
            stopped_at = i
    assert run.events.count(FieldViolation(True)) == 1
    # from 1 m/s at stop_decel 2 m/s2: standing within 0.5 s (25 steps)
    assert stopped_at is not None and stopped_at <= 26
    assert run.cmds[-1][2:] == (0.0, 0.0)
    assert run.until_arrived()
    assert FieldViolation(False) in run.events
    assert math.hypot(run.pose.x - 6.0, run.pose.y) <= 0.05
    run.check_limits(stop_ramp=True)


def test_hold_brakes_at_service_decel_and_release_continues():
    legs = straight_legs([(0.0, 0.0), (5.0, 0.0)], math.pi / 2, [None])
    run = Run(PARAMS, Pose(0.0, 0.0, 0.0))
    run.c.add_legs(legs)
    for _ in range(100):
        run.step()
    run.c.hold("paused")
    for _ in range(100):
        run.step()
    assert run.c.standing
    x_paused = run.pose.x
    for _ in range(20):
        run.step()
    assert run.pose.x == x_paused
    run.c.release()
    assert run.until_arrived()
    assert abs(wrap_angle(run.pose.theta - math.pi / 2)) <= 0.05
    run.check_limits()


def test_a_slower_next_edge_is_entered_at_its_speed_and_a_corner_is_turned_in_place():
    pts = [(0.0, 0.0), (4.0, 0.0), (8.0, 0.0), (8.0, 3.0)]
    legs = straight_legs(pts, None, [1.2, 0.3, None])
    run = Run(PARAMS, Pose(0.0, 0.0, 0.0))
    run.c.add_legs(legs)
    speed_at_node = None
    while run.c.legs and run.c.legs[0].edge_id == "e1":
        run.step()
        speed_at_node = run.c.v
    assert speed_at_node is not None and speed_at_node <= 0.3 + 1e-9
    passing = [e for e in run.events if isinstance(e, NodeReached)]
    assert passing and passing[0].node_id == "n1" and not passing[0].stopped
    assert run.until_arrived()
    stops = {e.node_id: e.stopped for e in run.events if isinstance(e, NodeReached)}
    assert stops == {"n1": False, "n2": True, "n3": True}  # n2: a 90 deg corner
    assert not run.edge_speed_violations
    run.check_limits()


def test_off_the_path_is_a_path_deviation_and_a_hold():
    legs = straight_legs([(0.0, 0.0), (5.0, 0.0)], None, [None])
    c = DriveController(PARAMS)
    c.add_legs(legs)
    c.step(0.0, Pose(0.0, 0.0, 0.0))
    out = c.step(0.02, Pose(1.0, 0.5, 0.0))
    dev = [e for e in out.events if isinstance(e, PathDeviation)]
    assert dev and "0.50 m off edge e1" in dev[0].message
    assert c.held_reason == "path deviation"


def test_replacing_the_legs_keeps_progress_on_the_current_edge():
    legs = straight_legs([(0.0, 0.0), (4.0, 0.0), (4.0, 4.0)], None, [None, None])
    run = Run(PARAMS, Pose(0.0, 0.0, 0.0))
    run.c.replace_legs(legs[:1])
    for _ in range(100):
        run.step()
    s_before = run.c.s
    run.c.replace_legs(legs)  # the horizon released one more edge
    run.step()
    assert run.c.s >= s_before
    assert run.until_arrived()
    assert math.hypot(run.pose.x - 4.0, run.pose.y - 4.0) <= 0.05


def test_setpoints_are_for_the_future_and_hold_briefly():
    c = DriveController(PARAMS)
    c.add_legs(straight_legs([(0.0, 0.0), (2.0, 0.0)], None, [None]))
    out = c.step(10.0, Pose(0.0, 0.0, 0.0))
    assert out.setpoint.at == 10.0 + PARAMS.setpoint_lead_s
    assert out.setpoint.hold_s == PARAMS.setpoint_hold_s


def test_a_zero_length_edge_is_reached_without_turning():
    c = DriveController(PARAMS)
    c.add_legs([Leg("e0", PathSegment((1.0, 1.0), (1.0, 1.0)), NodeTarget("n", 1.0, 1.0))])
    events = []
    for k in range(20):
        out = c.step(k * DT, Pose(1.0, 1.0, 2.0))
        events += out.events
        assert out.omega == 0.0 and out.v == 0.0
    assert Arrived("n") in events
