"""Grasp refusals, zone sweeps and the pick order, as properties."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.config import ForbiddenZone
from edge.arm.events import ParcelSeen
from edge.arm.grasp import Grasp, grasp
from edge.arm.moves import Mover
from edge.arm.planner import Candidate, choose, order
from edge.arm.tracking import BeltTracker, Target
from edge.arm.zones import first_hit, point_in_zones, segment_hits_box
from tests.edge.arm.helpers import example_cfg

CFG = example_cfg()
S = CFG.suction


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["box", "envelope", "polybag", "irregular", "pallet", None]),
    st.floats(20, 900),
    st.floats(20, 900),
    st.one_of(st.none(), st.floats(5, 800)),
)
def test_grasp_refuses_exactly_what_the_cup_cannot_hold(cls, a: float, b: float, h) -> None:
    seen = ParcelSeen(1, 0, 0.0, 100.0, 20.0, a, b, 5.0, h, cls, "L")
    g = grasp(CFG, seen)
    rule = S.classes.get(cls) if cls else None
    height = h if h is not None else (rule.default_height_mm if rule else None)
    ok = (
        rule is not None
        and rule.pickable
        and height is not None
        and S.min_top_mm <= height <= S.max_height_mm
        and min(a, b) * rule.face_flatness >= S.cup_diameter_mm + 2 * S.edge_margin_mm
        and a * b * height / 1e6 * rule.kg_per_litre <= S.max_load_kg
    )
    assert isinstance(g, Grasp) == ok, g
    if isinstance(g, Grasp):
        assert g.target.z == CFG.belt.surface_z_mm + height
        assert g.size_mm == (max(a, b), min(a, b), height)
    else:
        assert isinstance(g, str) and g  # a reason, never empty


coord = st.integers(-500, 500).map(float)  # mm; sub-micron ends are rounding, not geometry
point = st.tuples(coord, coord, coord)


@settings(max_examples=200, deadline=None)
@given(point, point, point, st.tuples(st.floats(1, 300), st.floats(1, 300), st.floats(1, 300)))
def test_segment_box_test_agrees_with_dense_sampling(a, b, lo, size) -> None:
    hi = (lo[0] + size[0], lo[1] + size[1], lo[2] + size[2])
    hit = segment_hits_box(a, b, lo, hi)
    inside = any(
        all(lo[k] <= a[k] + (b[k] - a[k]) * i / 400 <= hi[k] for k in range(3)) for i in range(401)
    )
    if inside:
        assert hit  # the swept test never misses what sampling finds


def test_a_fast_move_cannot_jump_over_a_thin_zone() -> None:
    wall = ForbiddenZone(id="wall", min_mm=(0.0, -500.0, -800.0), max_mm=(2.0, 500.0, 0.0))
    path = [(-100.0, 0.0, -500.0), (100.0, 0.0, -500.0)]  # both setpoints clear of it
    assert all(point_in_zones(p, [wall]) is None for p in path)
    hit = first_hit(path, [wall], 0.0)
    assert hit is not None and hit.zone == "wall" and hit.index == 1


def test_a_tall_zone_hits_the_links_not_only_the_cup() -> None:
    post = ForbiddenZone(id="post", min_mm=(290.0, -10.0, -800.0), max_mm=(310.0, 10.0, 500.0))
    cup = [(700.0, 300.0, -500.0)]
    elbows = [(600.0, 0.0)]  # the upper arm passes over the post
    assert first_hit(cup, [post], 0.0) is None
    hit = first_hit(cup, [post], 0.0, elbows, CFG.link_z_mm)
    assert hit is not None and hit.what == "upper arm"


def _belt(speed: float) -> BeltTracker:
    b = BeltTracker(CFG.belt)
    for i in range(30):
        b.update(round(i * 0.01 * speed * CFG.belt.counts_per_mm), i * 0.01)
    return b


@settings(max_examples=15, deadline=None)
@given(st.floats(300, 1200), st.lists(st.floats(-1500, 600), min_size=1, max_size=4))
def test_the_planner_takes_the_first_to_leave_and_never_chases(speed, us) -> None:
    belt = _belt(speed)
    t0 = 0.35
    cands = [
        Candidate(i + 1, Target(u, belt.last[1], CFG.belt.centre_y_mm, CFG.belt.surface_z_mm + 120))
        for i, u in enumerate(us)
    ]
    mover = Mover(CFG)
    h = CFG.home
    q0 = mover.kin.ik_xyz(h.x_mm, h.y_mm, h.z_mm, 0.0)
    choice = choose(mover, q0, t0, cands, belt)
    down = CFG.tracking.downstream_mm
    now = belt.count_at(t0)
    for pid, why in choice.skipped:
        c = cands[pid - 1]
        assert "window" in why
        assert c.target.u_at_count(now, belt.cpm) > -math.inf
    if choice.pick is not None:
        pid, plan = choice.pick
        c = cands[pid - 1]
        lift_u = c.target.u_at_count(plan.belt.count_at(plan.t_lift), belt.cpm)
        assert lift_u <= down + 1e-6  # never a ride past the window
        # earliest deadline first: every parcel further downstream was skipped or waits
        ordered = [x.parcel_id for x in order(cands, belt, t0)]
        ahead = ordered[: ordered.index(pid)]
        decided = {p for p, _ in choice.skipped} | {p for p, _ in choice.waiting}
        assert set(ahead) <= decided
