"""The parcels beside a pick: the cup passes over them with its valve shut, never seals on
one, and a lifted parcel clears them before it moves sideways (grasp.neighbours, the core's
candidates, the valve's timing)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.events import Move, ParcelSeen, Suction
from edge.arm.grasp import GRID_MM, Footprint, footprint, neighbours
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


def test_a_parcel_whose_centre_a_neighbour_crowds_is_picked_off_centre_clear_of_it() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10", size=(300.0, 200.0, 150.0), across=-60.0)
    # an irregular parcel whose footprint, as the camera boxed it, reaches within 40 mm of
    # parcel 1's centre: the cup moves 20 mm away from it, still 40 mm inside the face
    b.see(2, 0.0, label=None, cls="irregular", size=(300.0, 160.0, 150.0), across=60.0)
    b.run(4.0)
    (rec,) = [r for r in b.records() if r.parcel_id == 1]
    assert rec.outcome == "placed"
    assert any(s.stage == "grasp" and "off the face's centre" in s.detail for s in rec.story)
    y_centre = CFG.belt.centre_y_mm + CFG.belt.sign * -60.0
    assert rec.contact is not None
    off = abs(rec.contact[1] - y_centre)
    assert 20.0 - 1e-6 <= off <= 20.0 + GRID_MM  # the nearest clear point, away from parcel 2
    assert abs(rec.contact[1] - (CFG.belt.centre_y_mm + CFG.belt.sign * 60.0)) > off


def test_a_parcel_whose_face_leaves_no_room_from_the_neighbour_is_skipped() -> None:
    b = Bench(CFG, brain=BRAIN)
    # 160 mm wide: the cup (100 + 2 x 10 mm) may move 20 mm across; the irregular parcel's
    # footprint reaches within 30 mm of the centre: it would need 30
    b.see(1, 0.0, label="DE-10", size=(300.0, 160.0, 150.0), across=-60.0)
    b.see(2, 0.0, label=None, cls="irregular", size=(300.0, 180.0, 150.0), across=60.0)
    b.run(4.0)
    (rec,) = [r for r in b.records() if r.parcel_id == 1]
    assert rec.outcome == "passed"
    assert "inside the cup's" in rec.reason and "parcel 2" in rec.reason
    assert "no point of its top face" in rec.reason
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


def _face_point(g, du: float, dy: float) -> tuple[float, float]:
    """(du, dy) in the face's own axes (along its length, across it)."""
    (e1u, e1y), (e2u, e2y) = g.axes
    return du * e1u + dy * e1y, du * e2u + dy * e2y


def _gap(du: float, dy: float, n: tuple[int, float, float, float, float]) -> float:
    _, ou, oy, hx, hy = n
    return math.hypot(max(0.0, abs(du - ou) - hx), max(0.0, abs(dy - oy) - hy))


crowder = st.tuples(
    st.floats(-400, 400),  # along, from the parcel's centre (camera mm)
    st.floats(-300, 300),  # across
    st.floats(60, 400),  # length
    st.floats(60, 300),  # width
    st.floats(-15, 15),  # angle
    st.sampled_from(["box", "irregular", "envelope", "polybag"]),
    st.one_of(st.none(), st.floats(10, 300)),  # height (None: the tallest the cell takes)
)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(120, 460),  # length
    st.floats(120, 320),  # width
    st.floats(-20, 20),  # angle, deg
    st.sampled_from(["box", "polybag", "envelope"]),
    st.floats(15, 200),  # height
    st.lists(crowder, max_size=4),
    st.floats(-1000, 1000),  # where the neighbours were seen (belt mm later)
    st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=8, max_size=8),
)
def test_clear_grasp_keeps_the_cup_on_the_face_and_clear_of_every_neighbour(
    length, width, angle, cls, height, crowd, shift, probes
):
    """Either a grasp whose cup lies on the usable face with the rim margin and at least its
    radius + margin from every neighbour it could reach, holding the load with the moment
    of its offset, nearest the centre (no probe point that is clear lies nearer by more than
    the grid's step); or a refusal with a reason, and then no probe point well inside the
    face is well clear."""
    from edge.arm.grasp import G_MM, LIFT_MARGIN, Grasp, _crowding, clear_grasp, grasp

    cpm = CFG.belt.counts_per_mm
    s = CFG.suction
    need = s.cup_diameter_mm / 2 + s.edge_margin_mm
    seen = ParcelSeen(1, 0, 0.0, 0.0, 0.0, length, width, angle, height, cls, "X")
    g = grasp(CFG, seen)
    if isinstance(g, str):
        return
    me = footprint(CFG, seen)
    others = []
    for i, (al, ac, ln, wd, an, oc, oh) in enumerate(crowd):
        o = ParcelSeen(i + 2, round(shift * cpm), 0.0, al + shift, ac, ln, wd, an, oh, oc, None)
        others.append((i + 2, footprint(CFG, o)))
    res = clear_grasp(CFG, g, me, others, cpm)
    near = _crowding(CFG, me, others, cpm)
    hp, hq = g.face_half_mm[0] - need, g.face_half_mm[1] - need
    r_eff = (s.effective_diameter_mm or s.cup_diameter_mm) / 2

    def clear_at(du: float, dy: float, extra: float) -> bool:
        return all(_gap(du, dy, n) >= need + extra for n in near)

    # probe points of the face (in its own axes), converted to (du, dy)
    pts = []
    for a, b in probes:
        p, q = a * max(hp - 3.0, 0.0), b * max(hq - 3.0, 0.0)
        (e1u, e1y), (e2u, e2y) = g.axes
        pts.append((p * e1u + q * e2u, p * e1y + q * e2y))
    if isinstance(res, str):
        assert res
        for du, dy in pts:  # none of the points well inside the face is well clear...
            d = math.hypot(du, dy)
            limit = g.hold.limit / (1 + d / r_eff)
            assert not clear_at(du, dy, 3.0) or limit < G_MM * LIFT_MARGIN * 1.01
        return
    assert isinstance(res, Grasp) and res.centred is g
    du, dy = res.offset_mm
    assert res.target.u_ref == pytest.approx(g.target.u_ref + du)
    assert res.target.y == pytest.approx(g.target.y + dy)
    assert res.target.z == g.target.z
    p, q = _face_point(g, du, dy)
    assert abs(p) + need <= g.face_half_mm[0] + 1e-6  # the cup on the usable face
    assert abs(q) + need <= g.face_half_mm[1] + 1e-6
    assert clear_at(du, dy, -1e-6)  # clear of every neighbour it could reach
    d = math.hypot(du, dy)
    assert res.hold.limit == pytest.approx(g.hold.limit / (1 + d / r_eff))
    assert res.hold.limit >= G_MM * LIFT_MARGIN
    if not near or clear_at(0.0, 0.0, 0.0):
        assert res is g and d == 0.0  # a clear centre is kept
    for pu, py in pts:  # nearest the centre, to the grid's step
        if clear_at(pu, py, 0.0):
            assert d <= math.hypot(pu, py) + GRID_MM * math.sqrt(2) + 1e-6
