"""Conveyor tracking and the moves built on it, as properties over belt speeds, parcels and
forbidden zones: the cup rides on the parcel's grasp point within the pick tolerance at any
allowed belt speed; no move leaves the core that breaks a joint limit or enters a zone."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge.arm.config import ArmConfig, ForbiddenZone
from edge.arm.events import ParcelSeen
from edge.arm.grasp import Grasp, grasp
from edge.arm.kinematics import Joints, Unreachable
from edge.arm.moves import Mover, PickPlan
from edge.arm.tracking import BeltTracker, LeftWindow, Target, camera_to_belt
from edge.arm.trajectory import Trajectory, limit_violation
from edge.arm.zones import point_in_zones
from tests.edge.arm.helpers import example_cfg

CFG = example_cfg()
B = CFG.belt
HOME = CFG.home


def _belt(speed: float, t_now: float, cfg: ArmConfig = CFG) -> BeltTracker:
    """Encoder reports every 10 ms up to ``t_now``, quantised to whole counts."""
    tr = BeltTracker(cfg.belt)
    t = t_now - 0.3
    while t <= t_now + 1e-9:
        tr.update(math.floor(t * speed * cfg.belt.counts_per_mm), t)
        t += 0.01
    return tr


def _seen(speed: float, t: float, along: float, across: float, h: float) -> ParcelSeen:
    count = math.floor(t * speed * B.counts_per_mm)
    return ParcelSeen(1, count, t, along, across, 300.0, 220.0, 10.0, h, "box", "DE-1")


def _home(mover: Mover) -> Joints:
    return mover.kin.ik_xyz(HOME.x_mm, HOME.y_mm, HOME.z_mm, 0.0)


def _truth_xy(seen: ParcelSeen, speed: float, t: float) -> tuple[float, float]:
    """Where the parcel's grasp point really is at ``t`` (the belt ran at ``speed``)."""
    u, y = camera_to_belt(CFG.camera, B.centre_y_mm, B.sign, seen.along_mm, seen.across_mm)
    u_true = u + speed * (t - seen.t) - (seen.count / B.counts_per_mm - speed * seen.t)
    return (u_true * B.sign, y)


half = B.width_mm / 2 - CFG.suction.cup_diameter_mm / 2 - 60
scenario = st.tuples(
    st.floats(B.min_speed_mm_s, B.max_speed_mm_s),  # belt speed
    st.floats(0.0, 300.0),  # along at the first frame (u -1500 .. -1200)
    st.floats(-half, half),  # across
    st.floats(CFG.suction.min_top_mm, CFG.suction.max_height_mm),  # height
    st.floats(0.0, 0.15),  # how long ago the frame was
)


Planned = tuple[PickPlan | str | LeftWindow, ParcelSeen, Mover, BeltTracker]


def _plan(s: tuple[float, float, float, float, float]) -> Planned:
    speed, along, across, h, ago = s
    t_now = 5.0
    seen = _seen(speed, t_now - ago, along, across, h)
    g = grasp(CFG, seen)
    assert isinstance(g, Grasp)
    mover = Mover(CFG)
    belt = _belt(speed, t_now)
    return mover.pick(_home(mover), t_now + 0.06, g.target, belt), seen, mover, belt


@settings(max_examples=25, deadline=None)
@given(scenario)
def test_tracking_meets_the_parcel_within_the_pick_tolerance(s) -> None:
    plan, seen, mover, _ = _plan(s)
    assert isinstance(plan, PickPlan), plan  # any allowed belt speed is trackable
    tol = CFG.tracking.pick_tolerance_mm
    tr = plan.trajectory
    t = plan.t_contact
    while t <= plan.t_lift:
        x, y, z, _ = mover.kin.fk(tr.at(t))
        tx, ty = _truth_xy(seen, s[0], t)
        assert math.hypot(x - tx, y - ty) <= tol, (t, x, tx, y, ty)
        assert abs(z - plan.z_contact) < 0.1  # the setpoint grid vs the descent's end
        t += tr.dt / 3
    # contact inside the tracking window, lift-off no later than its downstream limit
    assert CFG.tracking.upstream_mm - 1 <= plan.contact_u <= CFG.tracking.downstream_mm


def _dense_zone_hit(
    mover: Mover,
    traj: Trajectory,
    zones: list[ForbiddenZone],
    load: tuple[float, float, float] | None,
    load_from: float,
) -> str | None:
    r = CFG.zone_clearance_mm + CFG.suction.cup_diameter_mm / 2 - 1.0
    for i in range(len(traj.q) * 4):
        t = traj.t0 + i * traj.dt / 4
        x, y, z, _ = mover.kin.fk(traj.at(t))
        hit = point_in_zones((x, y, z), zones, r)
        if hit:
            return f"cup in {hit} at {t:.3f}"
        if load is not None and t >= load_from:
            height, hx, hy = load
            c = CFG.zone_clearance_mm - 1.0
            for zn in zones:  # the parcel's bottom face, as a box, against each zone
                lo, hi = zn.min_mm, zn.max_mm
                if (lo[0] - hx - c <= x <= hi[0] + hx + c and lo[1] - hy - c <= y <= hi[1] + hy + c
                        and lo[2] - c <= z - height <= hi[2] + c):  # fmt: skip
                    return f"load in {zn.id} at {t:.3f}"
    return None


zone = st.tuples(
    st.floats(-900, 900), st.floats(-600, 900), st.floats(30, 400), st.floats(30, 400),
    st.floats(-760, -300),
)  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(scenario, st.lists(zone, max_size=3), st.sampled_from(["c1", "c2", "c3", "c4"]))
def test_no_move_breaks_a_limit_or_enters_a_zone(s, boxes, dest_id: str) -> None:
    zones = [
        ForbiddenZone(id=f"z{i}", min_mm=(x, y, -800.0), max_mm=(x + w, y + d, top))
        for i, (x, y, w, d, top) in enumerate(boxes)
    ]
    cfg = CFG.model_copy(update={"forbidden_zones": zones})
    speed, along, across, h, ago = s
    seen = _seen(speed, 5.0 - ago, along, across, h)
    g = grasp(cfg, seen)
    assert isinstance(g, Grasp)
    mover = Mover(cfg)
    belt = _belt(speed, 5.0)
    q0 = _home(mover)
    assume(point_in_zones(mover.kin.fk(q0)[:3], zones, mover.cup_radius) is None)
    plan = mover.pick(q0, 5.06, g.target, belt)
    if not isinstance(plan, PickPlan):
        return  # refused, with a reason: nothing was sent
    tr = plan.trajectory
    assert limit_violation(tr.q, tr.dt, mover.limits) is None
    assert _dense_zone_hit(mover, tr, zones, None, math.inf) is None
    dest = cfg.destination(dest_id)
    assert dest is not None
    load = g.load
    carry = mover.carry(plan, plan.t_contact + 0.05, g.target, belt, dest, load)
    if isinstance(carry, str):
        return
    i_b = tr.index_at(carry.t0)
    assert carry.q[0] == tr.q[i_b]  # continues the pick move exactly
    assert limit_violation(carry.q, carry.dt, mover.limits, before=tr.q[i_b - 3 : i_b]) is None
    lift_end = carry.t0 + 0.2
    assert _dense_zone_hit(mover, carry, zones, load, lift_end) is None
    x, y, z, _ = mover.kin.fk(carry.q[-1])
    assert math.dist((x, y, z), (dest.place.x_mm, dest.place.y_mm, dest.place.z_mm)) < 1e-6


@settings(max_examples=20, deadline=None)
@given(st.floats(B.min_speed_mm_s, B.max_speed_mm_s), st.floats(-200, 450))
def test_a_parcel_that_would_leave_the_window_is_skipped_not_chased(speed: float, u: float):
    mover = Mover(CFG)
    belt = _belt(speed, 5.0)

    target = Target(u, belt.last[1], B.centre_y_mm, B.surface_z_mm + 150)
    plan = mover.pick(_home(mover), 5.06, target, belt)
    if isinstance(plan, PickPlan):
        # never a contact or a ride past the downstream limit
        lift_u = target.u_at_count(belt.count_at(plan.t_lift), belt.cpm)
        assert lift_u <= CFG.tracking.downstream_mm + 1e-6
    else:
        assert isinstance(plan, LeftWindow | str)


reach_pt = st.tuples(st.floats(-900, 900), st.floats(-300, 900), st.floats(-700, -340))


@settings(max_examples=25, deadline=None)
@given(reach_pt, reach_pt, st.booleans())
def test_rest_to_rest_moves_stay_within_limits_and_out_of_zones(a, b, reduced: bool) -> None:
    mover = Mover(CFG, reduced=reduced)
    try:
        q0 = mover.kin.ik((*a, 0.0))
    except Unreachable:
        assume(False)
        return
    traj = mover.to_pose(q0, 1.0, b, (150.0, 150.0, 100.0))
    if isinstance(traj, str):
        assert traj  # refused with a reason (unreachable, a zone)
        return
    assert limit_violation(traj.q, traj.dt, mover.limits) is None
    assert _dense_zone_hit(mover, traj, CFG.forbidden_zones, None, math.inf) is None
    assert math.dist(mover.kin.fk(traj.q[-1])[:3], b) < 1e-6
    if reduced:
        for i in range(1, len(traj.q)):
            p, r = mover.kin.fk(traj.q[i - 1]), mover.kin.fk(traj.q[i])
            assert math.dist(p[:3], r[:3]) / traj.dt <= CFG.safety.reduced_speed_mm_s * 1.001


def _need(mover: Mover, q: list[Joints], shear: float) -> float:
    """The cup's largest need (mm/s^2) along setpoints ``q``, from the kinematics alone:
    g + upward acceleration, plus the sideways acceleration times ``shear``."""
    p = [mover.kin.fk(x)[:3] for x in q]
    worst = 0.0
    dt2 = mover.dt**2
    for i in range(1, len(p) - 1):
        a = [(p[i + 1][k] - 2 * p[i][k] + p[i - 1][k]) / dt2 for k in range(3)]
        worst = max(worst, max(0.0, 9806.65 + a[2]) + math.hypot(a[0], a[1]) * shear)
    return worst


@settings(max_examples=15, deadline=None)
@given(
    st.floats(B.min_speed_mm_s, B.max_speed_mm_s),
    st.floats(-half, half),
    st.floats(200, 450),  # length
    st.floats(150, 300),  # width
    st.floats(40, 250),  # height
    st.floats(0.05, 0.8),  # kg per litre
    st.sampled_from(["c1", "c2", "c3", "c4"]),
)
def test_a_carry_never_asks_more_of_the_cup_than_it_holds(
    speed: float, across: float, length: float, width: float, h: float, rho: float, dest_id: str
) -> None:
    rules = dict(CFG.suction.classes)
    rules["box"] = rules["box"].model_copy(update={"kg_per_litre": rho})
    cfg = CFG.model_copy(
        update={"suction": CFG.suction.model_copy(update={"classes": rules, "max_load_kg": 30})}
    )
    count = math.floor(4.9 * speed * B.counts_per_mm)
    seen = ParcelSeen(1, count, 4.9, 100.0, across, length, width, 0.0, h, "box", "DE-1")
    g = grasp(cfg, seen)
    if isinstance(g, str):
        assert "too little to lift it" in g or "cup needs" in g
        return
    mover = Mover(cfg)
    belt = _belt(speed, 5.0)
    plan = mover.pick(_home(mover), 5.06, g.target, belt)
    assume(isinstance(plan, PickPlan))
    assert isinstance(plan, PickPlan)
    dest = cfg.destination(dest_id)
    assert dest is not None
    carry = mover.carry(plan, plan.t_contact + 0.05, g.target, belt, dest, g.load, g.hold)
    if isinstance(carry, str):
        assert carry.startswith(f"to {dest_id}: ")  # refused with the reason: nothing sent
        return
    tr = plan.trajectory
    i_b = tr.index_at(carry.t0)
    upto = carry.index_at(carry.marks["release"])
    q = list(tr.q[i_b - 1 : i_b]) + list(carry.q[: upto + 1])
    assert _need(mover, q, g.hold.shear) <= g.hold.limit * (1 + 1e-6)
    assert limit_violation(carry.q, carry.dt, mover.limits, before=tr.q[i_b - 3 : i_b]) is None
    # the same carry with no hold to respect is never slower
    free = mover.carry(plan, plan.t_contact + 0.05, g.target, belt, dest, g.load)
    assert isinstance(free, Trajectory)
    assert free.marks["release"] <= carry.marks["release"] + 1e-9


def test_the_cups_hold_is_vacuum_times_area_over_the_safety_factor() -> None:
    s = CFG.suction
    d = s.effective_diameter_mm or s.cup_diameter_mm
    assert math.isclose(s.hold_n, s.vacuum_kpa * 1000 * math.pi * (d / 2000) ** 2 / s.safety_factor)
    # a parcel the cup could hold at rest but not lift with 25 % to spare is refused
    heavy = s.hold_n / 9.80665 / 1.2  # kg
    rules = dict(s.classes)
    rules["box"] = rules["box"].model_copy(update={"kg_per_litre": heavy / 9.0})
    cfg = CFG.model_copy(
        update={"suction": s.model_copy(update={"classes": rules, "max_load_kg": 100})}
    )
    seen = ParcelSeen(1, 0, 0.0, 0.0, 0.0, 300.0, 200.0, 0.0, 150.0, "box", "DE-1")
    why = grasp(cfg, seen)
    assert isinstance(why, str) and "too little to lift it" in why
