"""NURBS evaluation (de Boor vs the basis definition, partition of unity, endpoints) and the
arc-length segment the drive follows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.amr.path import Nurbs, PathError, PathSegment, wrap_angle

coord = st.floats(-5, 5, allow_nan=False)


@st.composite
def nurbs(draw: st.DrawFn) -> Nurbs:
    degree = draw(st.integers(1, 4))
    n = draw(st.integers(degree + 1, degree + 5))
    points = tuple((draw(coord), draw(coord)) for _ in range(n))
    weights = tuple(draw(st.floats(0.1, 10)) for _ in range(n))
    inner = sorted(
        draw(
            st.lists(
                st.floats(0.02, 0.98),
                min_size=n - degree - 1,
                max_size=n - degree - 1,
                unique=True,
            )
        )
    )
    knots = (0.0,) * (degree + 1) + tuple(inner) + (1.0,) * (degree + 1)
    return Nurbs(degree, points, weights, knots)


@given(nurbs(), st.floats(0, 1))
def test_basis_is_a_partition_of_unity(curve: Nurbs, u: float):
    basis = curve.basis(u)
    assert all(b >= -1e-12 for b in basis)
    assert math.isclose(sum(basis), 1.0, abs_tol=1e-9)


@given(nurbs(), st.floats(0, 1))
def test_de_boor_equals_the_rational_basis_definition(curve: Nurbs, u: float):
    x, y = curve.point(u)
    bx, by = curve.point_by_basis(u)
    scale = 1 + max(abs(c) for p in curve.points for c in p)
    assert math.isclose(x, bx, abs_tol=1e-9 * scale)
    assert math.isclose(y, by, abs_tol=1e-9 * scale)


@given(nurbs())
def test_clamped_curve_starts_and_ends_at_its_end_control_points(curve: Nurbs):
    for u, expected in ((0.0, curve.points[0]), (1.0, curve.points[-1])):
        x, y = curve.point(u)
        assert math.isclose(x, expected[0], abs_tol=1e-9)
        assert math.isclose(y, expected[1], abs_tol=1e-9)


@given(nurbs(), st.floats(0, 1))
def test_curve_stays_in_the_convex_hull_box(curve: Nurbs, u: float):
    x, y = curve.point(u)
    xs = [p[0] for p in curve.points]
    ys = [p[1] for p in curve.points]
    assert min(xs) - 1e-9 <= x <= max(xs) + 1e-9
    assert min(ys) - 1e-9 <= y <= max(ys) + 1e-9


def test_quarter_circle_as_a_rational_quadratic_is_exact():
    w = math.sqrt(0.5)
    curve = Nurbs(2, ((1, 0), (1, 1), (0, 1)), (1, w, 1), (0, 0, 0, 1, 1, 1))
    for i in range(11):
        x, y = curve.point(i / 10)
        assert math.isclose(math.hypot(x, y), 1.0, abs_tol=1e-12)
    seg = PathSegment((1, 0), (0, 1), curve)
    assert math.isclose(seg.length, math.pi / 2, rel_tol=1e-5)
    assert math.isclose(seg.curvature_at(seg.length / 2), 1.0, rel_tol=0.01)
    assert math.isclose(seg.heading_at(seg.length / 2), 3 * math.pi / 4, abs_tol=0.01)


def test_vda_trajectory_is_read_and_bad_ones_are_refused_with_the_field():
    traj = {
        "degree": 2,
        "knotVector": [0, 0, 0, 1, 1, 1],
        "controlPoints": [{"x": 0, "y": 0}, {"x": 1, "y": 1, "weight": 2}, {"x": 2, "y": 0}],
    }
    seg = PathSegment.from_vda((0, 0), (2, 0), traj)
    assert seg.start == (0.0, 0.0) and seg.end == (2.0, 0.0)
    assert 2.0 < seg.length < 2 * math.sqrt(2)
    with pytest.raises(PathError, match="knotVector has 5 knots"):
        PathSegment.from_vda((0, 0), (2, 0), {**traj, "knotVector": [0, 0, 1, 1, 1]})
    with pytest.raises(PathError, match="knotVector decreases"):
        PathSegment.from_vda((0, 0), (2, 0), {**traj, "knotVector": [0, 0, 1, 0.5, 1, 1]})
    bad_w = [{"x": 0, "y": 0}, {"x": 1, "y": 1, "weight": 0}, {"x": 2, "y": 0}]
    with pytest.raises(PathError, match="weight"):
        PathSegment.from_vda((0, 0), (2, 0), {**traj, "controlPoints": bad_w})
    five = [{"x": float(i), "y": 0.0} for i in range(5)]
    with pytest.raises(PathError, match=r"knot 0\.5 repeated 3 times"):
        PathSegment.from_vda(
            (0, 0),
            (4, 0),
            {**traj, "controlPoints": five, "knotVector": [0, 0, 0, 0.5, 0.5, 0.5, 1, 1]},
        )
    with pytest.raises(PathError, match=r"its end is 1\.000 m from the edge.s end node"):
        PathSegment.from_vda((0, 0), (3, 0), traj)
    with pytest.raises(PathError, match="missing or malformed field 'degree'"):
        PathSegment.from_vda((0, 0), (2, 0), {"knotVector": [], "controlPoints": []})


@settings(max_examples=60)  # each example builds a table of up to 4000 rows
@given(nurbs(), st.floats(0, 1))
def test_arc_length_table_is_consistent(curve: Nurbs, f: float):
    seg = PathSegment(curve.points[0], curve.points[-1], curve)
    if seg.length < 1e-3:
        return
    s = f * seg.length
    p = seg.point_at(s)
    # the point at s is on the curve: projecting it back onto the table's chords (1 cm)
    # finds it within half a chord (the worst case is a cusp)
    _, d = seg.project(p, s, window=0.05)
    assert d < 0.005
    # distance from the start along the curve is at least the straight distance (within the
    # table's resolution: u is interpolated linearly between rows)
    assert math.dist(seg.start, p) <= s + 1e-3 * seg.length + 1e-6


@given(st.tuples(coord, coord), st.tuples(coord, coord), st.floats(-1, 2), st.tuples(coord, coord))
def test_straight_segment_geometry(a, b, f, q):
    seg = PathSegment(a, b)
    if seg.length < 1e-6:
        return
    x, y = seg.point_at(f * seg.length)
    assert math.isclose(x, a[0] + f * (b[0] - a[0]), abs_tol=1e-9)
    assert math.isclose(y, a[1] + f * (b[1] - a[1]), abs_tol=1e-9)
    s, d = seg.project(q, 0.0)
    assert 0 <= s <= seg.length
    # no point of the segment is nearer than the projection
    for i in range(11):
        assert math.dist(q, seg.point_at(seg.length * i / 10)) >= d - 1e-9


@given(st.floats(-100, 100))
def test_wrap_angle(a: float):
    w = wrap_angle(a)
    assert -math.pi < w <= math.pi
    assert math.isclose(math.cos(w), math.cos(a), abs_tol=1e-9)
    assert math.isclose(math.sin(w), math.sin(a), abs_tol=1e-9)
