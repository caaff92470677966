"""The parcels beside a pick: the cup passes over them with its valve shut, never seals on
one, and a lifted parcel clears them before it moves sideways (grasp.neighbours, the core's
candidates, the valve's timing)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.events import Move, ParcelSeen, Suction
from edge.arm.grasp import Footprint, footprint, neighbours
from edge.arm.tracking import Target
from tests.edge.arm.helpers import Bench, example_cfg

CFG = example_cfg()
BRAIN = {"DE-10": "c2", "DE-20": "c1"}
R = CFG.suction.cup_diameter_mm / 2
SURFACE = CFG.belt.surface_z_mm


def _fp(u: float, y: float, h: float, hx: float, hy: float, count: float = 0.0) -> Footprint:
    return Footprint(Target(u, count, y, SURFACE + h), hx, hy)


box = st.tuples(
    st.floats(-300, 300),  # u
    st.floats(400, 800),  # y
    st.floats(20, 300),  # height
    st.floats(60, 250),  # half extents
    st.floats(60, 200),
)


@settings(max_examples=60, deadline=None)
@given(box, st.lists(box, max_size=5), st.floats(-2000, 2000))
def test_neighbours_are_judged_by_their_footprints_wherever_the_belt_is(me, others, shift):
    m = _fp(*me)
    # the others seen at another encoder count: the offsets are what count, not the frame
    cpm = CFG.belt.counts_per_mm
    os = [(i + 2, _fp(u + shift, y, h, hx, hy, shift * cpm)) for i, (u, y, h, hx, hy) in
          enumerate(others)]  # fmt: skip
    nb = neighbours(CFG, m, os, cpm)
    tops = []
    for pid, o in os:
        du, dy = o.target.u_ref - shift - m.target.u_ref, o.target.y - m.target.y
        same = (abs(du) < m.hx and abs(dy) < m.hy) or (abs(du) < o.hx and abs(dy) < o.hy)
        if same:
            assert nb.conflict is None or nb.conflict[0] != pid  # a split track, not a neighbour
            continue
        if abs(du) - o.hx < R + 100:
            tops.append(o.target.z)
        gap = math.hypot(max(0.0, abs(du) - o.hx), max(0.0, abs(dy) - o.hy))
        if nb.conflict is not None and nb.conflict[0] == pid:
            assert gap < R + CFG.suction.edge_margin_mm
            assert o.target.z > m.target.z - CFG.suction.press_mm - 5
    assert nb.clear_z == (max(tops) if tops else None)


def test_a_neighbour_under_the_cups_lip_is_a_conflict_a_far_one_is_not() -> None:
    me = _fp(0, 600, 150, 150, 100)
    beside = _fp(0, 600 + 100 + 40, 150, 150, 100)  # its edge 40 mm from the grasp point
    far = _fp(0, 600 + 100 + 150, 150, 150, 100)
    low = _fp(0, 600 + 100 + 40, 30, 150, 100)  # under the pressed cup's reach
    assert neighbours(CFG, me, [(2, beside)], 2.0).conflict is not None
    assert neighbours(CFG, me, [(2, far)], 2.0).conflict is None
    assert neighbours(CFG, me, [(2, low)], 2.0).conflict is None
    assert neighbours(CFG, me, [(2, far)], 2.0).clear_z == far.target.z


def test_footprint_of_a_parcel_of_unknown_height_is_the_tallest_the_cell_takes() -> None:
    seen = ParcelSeen(1, 0, 0.0, 0.0, 0.0, 300.0, 200.0, 0.0, None, "irregular", None)
    fp = footprint(CFG, seen)
    assert fp.target.z == SURFACE + CFG.suction.max_height_mm
    assert (fp.hx, fp.hy) == (150.0, 100.0)


def _pick_of(b: Bench, pid: int) -> Move:
    return next(m for m in b.moves("pick") if m.parcel_id == pid)


def test_the_cup_comes_in_over_a_taller_neighbour_with_its_valve_shut_till_the_end() -> None:
    b = Bench(CFG, brain=BRAIN)
    # a low parcel (60 mm) with a 250 mm box beside it across the belt, neither touching
    b.see(1, 0.0, label="DE-10", size=(300.0, 200.0, 60.0), across=-110.0)
    b.see(2, 0.0, label=None, cls="irregular", size=(300.0, 160.0, 250.0), across=110.0)
    b.run(4.0)
    (rec,) = [r for r in b.records() if r.parcel_id == 1]
    assert rec.outcome == "placed"
    pick = _pick_of(b, 1).trajectory
    top_tall = SURFACE + 250
    mover = b.core.mover
    t_descend = pick.marks["descend"]
    # until the descent the cup stays hover_mm over the tall neighbour's top
    for i in range(len(pick.q)):
        t = pick.t0 + i * pick.dt
        if t >= t_descend:
            break
        assert mover.kin.fk(pick.q[i])[2] >= top_tall + CFG.tracking.hover_mm - 1e-6
    # the valve opened only for the end of the approach and the descent (150 ms ahead)
    (on_t,) = [t for t, a in b.log if isinstance(a, Suction) and a.on]
    assert t_descend - 0.15 - b.dt <= on_t < t_descend - 0.1
    # the lifted parcel went sideways only with its bottom over the tall one's top
    carry = next(m for m in b.moves("carry") if m.parcel_id == 1).trajectory
    x0, y0, _, _ = mover.kin.fk(carry.q[0])
    for q in carry.q:
        x, y, z, _ = mover.kin.fk(q)
        if abs(y - y0) > 20 and abs(x - x0) < 400:  # moving across, still near the belt
            assert z - 60 >= top_tall + 20 - 1e-6
            break


def test_a_parcel_whose_grasp_point_an_unpickable_neighbour_crowds_is_skipped() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10", size=(300.0, 200.0, 150.0), across=-60.0)
    # an irregular parcel whose footprint, as the camera boxed it, reaches within 40 mm of
    # parcel 1's centre (the two boxes overlap: which one is under the cup is not sure)
    b.see(2, 0.0, label=None, cls="irregular", size=(300.0, 160.0, 150.0), across=60.0)
    b.run(4.0)
    (rec,) = [r for r in b.records() if r.parcel_id == 1]
    assert rec.outcome == "passed"
    assert "inside the cup's" in rec.reason and "parcel 2" in rec.reason
    assert not [m for m in b.moves("pick") if m.parcel_id == 1]


def _belt(speed: float, t_now: float):
    from edge.arm.tracking import BeltTracker

    tr = BeltTracker(CFG.belt)
    t = t_now - 0.3
    while t <= t_now + 1e-9:
        tr.update(math.floor(t * speed * CFG.belt.counts_per_mm), t)
        t += 0.01
    return tr


other = st.tuples(
    st.floats(-900, 600),  # u at t = 5 s
    st.floats(-150, 150),  # across
    st.floats(20, 300),  # height
)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(CFG.belt.min_speed_mm_s, CFG.belt.max_speed_mm_s),
    st.floats(-400, 0),  # the target's u at t = 5 s
    st.floats(20, 80),  # its height: lower than most of the others
    st.lists(other, max_size=4),
    st.sampled_from(["c1", "c2", "c3", "c4"]),  # where the arm starts (after a place)
)
def test_no_approach_or_carry_passes_low_over_another_parcel(speed, u, h, others, start):
    from edge.arm.grasp import Footprint
    from edge.arm.moves import NEIGHBOUR_CLEAR_MM, Mover, PickPlan

    mover = Mover(CFG)
    belt = _belt(speed, 5.0)
    count = belt.count_at(5.0)
    c = CFG.belt.centre_y_mm
    me = _fp(u, c, h, 150, 100, count)
    fps = [_fp(uo, c + dy, ho, 120, 90, count) for uo, dy, ho in others]
    nb = neighbours(CFG, me, list(enumerate(fps, start=2)), CFG.belt.counts_per_mm)
    if nb.conflict is not None:
        return  # not picked at all
    d = CFG.destination(start)
    assert d is not None
    q0 = mover.kin.ik_xyz(d.place.x_mm, d.place.y_mm, d.place.z_mm, 0.0)
    plan = mover.pick(q0, 5.06, me.target, belt, nb.clear_z, nb.others)
    if not isinstance(plan, PickPlan):
        return  # refused with a reason: nothing was sent
    tr = plan.trajectory
    r = CFG.suction.cup_diameter_mm / 2
    for i, q in enumerate(tr.q):
        t = tr.t0 + i * tr.dt
        if t >= plan.t_descend:
            break
        x, y, z, _ = mover.kin.fk(q)
        for o in nb.others:
            assert isinstance(o, Footprint)
            xo = o.target.u_at_count(belt.count_at(t), belt.cpm) * CFG.belt.sign
            if abs(x - xo) < o.hx + r and abs(y - o.target.y) < o.hy + r:
                assert z >= o.target.z + NEIGHBOUR_CLEAR_MM - 1e-6, (t, z, o.target.z)
    # the carry: once the lifted parcel moves sideways, its bottom clears every other top
    load = (h, me.hx, me.hy)
    carry = mover.carry(plan, plan.t_contact + 0.05, me.target, belt, d, load, None, nb.others)
    if isinstance(carry, str):
        return
    for i, q in enumerate(carry.q):
        t = carry.t0 + i * carry.dt
        if not carry.marks["off"] <= t <= carry.marks["over"]:
            continue
        x, y, z, _ = mover.kin.fk(q)
        for o in nb.others:
            xo = o.target.u_at_count(belt.count_at(t), belt.cpm) * CFG.belt.sign
            if abs(x - xo) < o.hx + me.hx and abs(y - o.target.y) < o.hy + me.hy:
                assert z - h >= o.target.z + NEIGHBOUR_CLEAR_MM - 1e-6, (t, z - h, o.target.z)
