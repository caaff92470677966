"""Edge geometry for the drive: straight edges and VDA 5050 NURBS trajectories, by arc length.

VDA 5050 2.1 lets an edge carry ``trajectory = {degree, knotVector, controlPoints: [{x, y,
weight}]}``: a NURBS curve in map coordinates (metres). It is evaluated exactly with de Boor's
algorithm on homogeneous coordinates (a rational curve is a polynomial one in (w x, w y, w)).
The drive needs the curve by arc length (speed limits are per metre travelled), so each
``PathSegment`` keeps a dense table u -> s built once, and answers point, heading and
curvature at any s by inverting the table and evaluating the curve exactly at that u.

Pure geometry: no I/O, no clock. Units: metres, radians, map frame (x right, y up, theta
counter-clockwise from +x).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Point = tuple[float, float]

SAMPLES_PER_METRE = 100  # arc-length table density of a NURBS edge (1 cm chords)
MIN_SAMPLES = 64
MAX_SAMPLES = 4000
END_TOLERANCE_M = 0.1  # a trajectory must start and end this close to its edge's nodes


class PathError(ValueError):
    """An edge geometry that cannot be driven: names the field and why."""


def wrap_angle(a: float) -> float:
    """``a`` in (-pi, pi]."""
    a = math.fmod(a + math.pi, 2 * math.pi)
    if a <= 0:
        a += 2 * math.pi
    return a - math.pi


# ---- NURBS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nurbs:
    """A planar NURBS curve: degree p, control points (x, y), weights, knot vector.

    Valid when ``len(knots) == len(points) + degree + 1``, the knots never decrease, every
    weight is > 0 and the parameter range ``[knots[p], knots[-p-1]]`` is not empty. VDA 5050
    uses clamped knot vectors on [0, 1], so the curve starts at the first control point and
    ends at the last.
    """

    degree: int
    points: tuple[Point, ...]
    weights: tuple[float, ...]
    knots: tuple[float, ...]

    def __post_init__(self) -> None:
        p, n = self.degree, len(self.points)
        if p < 1:
            raise PathError(f"trajectory.degree {p}: must be >= 1")
        if n < p + 1:
            raise PathError(f"trajectory: {n} control points, degree {p} needs >= {p + 1}")
        if len(self.weights) != n:
            raise PathError(f"trajectory: {len(self.weights)} weights for {n} control points")
        if len(self.knots) != n + p + 1:
            raise PathError(
                f"trajectory.knotVector has {len(self.knots)} knots; {n} control points of "
                f"degree {p} need {n + p + 1}"
            )
        if any(b < a for a, b in zip(self.knots, self.knots[1:], strict=False)):
            raise PathError("trajectory.knotVector decreases somewhere; it must not")
        if any(not w > 0 or not math.isfinite(w) for w in self.weights):
            raise PathError("trajectory.controlPoints: every weight must be a finite number > 0")
        if not self.u_max > self.u_min:
            raise PathError("trajectory.knotVector: the parameter range is empty")
        for k in set(self.knots):
            mult = self.knots.count(k)
            limit = p + 1 if k in (self.knots[0], self.knots[-1]) else p
            if mult > limit:
                raise PathError(
                    f"trajectory.knotVector: knot {k} repeated {mult} times (at most {limit}: "
                    "the curve would break apart there)"
                )

    @classmethod
    def from_vda(cls, trajectory: Mapping[str, Any]) -> Nurbs:
        """From a VDA 5050 ``trajectory`` object (weight defaults to 1.0)."""
        try:
            cps = trajectory["controlPoints"]
            return cls(
                degree=int(trajectory["degree"]),
                points=tuple((float(c["x"]), float(c["y"])) for c in cps),
                weights=tuple(float(c.get("weight", 1.0)) for c in cps),
                knots=tuple(float(k) for k in trajectory["knotVector"]),
            )
        except (KeyError, TypeError) as exc:
            raise PathError(f"trajectory: missing or malformed field {exc}") from None

    @property
    def u_min(self) -> float:
        return self.knots[self.degree]

    @property
    def u_max(self) -> float:
        return self.knots[len(self.knots) - self.degree - 1]

    def span(self, u: float) -> int:
        """The knot span k with knots[k] <= u < knots[k+1] (the last non-empty one at u_max)."""
        p, n = self.degree, len(self.points)
        if u >= self.u_max:
            k = n - 1
            while k > p and self.knots[k] >= self.u_max:
                k -= 1
            return k
        u = max(u, self.u_min)
        k = bisect.bisect_right(self.knots, u) - 1
        return min(max(k, p), n - 1)

    def point(self, u: float) -> Point:
        """C(u) by de Boor's algorithm in homogeneous coordinates."""
        p = self.degree
        k = self.span(u)
        t = self.knots
        d = []
        for j in range(p + 1):
            (x, y), w = self.points[j + k - p], self.weights[j + k - p]
            d.append([x * w, y * w, w])
        for r in range(1, p + 1):
            for j in range(p, r - 1, -1):
                lo, hi = t[j + k - p], t[j + 1 + k - r]
                alpha = 0.0 if hi == lo else (u - lo) / (hi - lo)
                a, b = d[j - 1], d[j]
                d[j] = [(1 - alpha) * a[i] + alpha * b[i] for i in range(3)]
        x, y, w = d[p]
        return (x / w, y / w)

    def basis(self, u: float) -> list[float]:
        """All B-spline basis values N_{i,p}(u) (Cox-de Boor); they sum to 1 on the range."""
        p, n, t = self.degree, len(self.points), self.knots
        k = self.span(u)
        values = [0.0] * (len(t) - 1)
        values[k] = 1.0
        for q in range(1, p + 1):
            nxt = [0.0] * (len(t) - 1 - q)
            for i in range(len(nxt)):
                left = t[i + q] - t[i]
                right = t[i + q + 1] - t[i + 1]
                a = (u - t[i]) / left * values[i] if left > 0 else 0.0
                b = (t[i + q + 1] - u) / right * values[i + 1] if right > 0 else 0.0
                nxt[i] = a + b
            values = nxt
        return values[:n]

    def point_by_basis(self, u: float) -> Point:
        """C(u) = sum N_i w_i P_i / sum N_i w_i: the definition, to cross-check de Boor."""
        basis = self.basis(u)
        sw = sx = sy = 0.0
        for b, (x, y), w in zip(basis, self.points, self.weights, strict=True):
            sw += b * w
            sx += b * w * x
            sy += b * w * y
        return (sx / sw, sy / sw)


# ---- segments by arc length -----------------------------------------------------------------


class PathSegment:
    """One edge's geometry by arc length s in [0, length]: a straight line or a NURBS curve."""

    def __init__(self, start: Point, end: Point, curve: Nurbs | None = None) -> None:
        self.curve = curve
        if curve is None:
            self.start, self.end = start, end
            self.length = math.dist(start, end)
            self._heading = math.atan2(end[1] - start[1], end[0] - start[0])
            self._u: list[float] = []
            self._s: list[float] = []
        else:
            self.start, self.end = curve.point(curve.u_min), curve.point(curve.u_max)
            self._build_table(curve)

    @classmethod
    def from_vda(
        cls, start: Point, end: Point, trajectory: Mapping[str, Any] | None = None
    ) -> PathSegment:
        """An edge from its start and end node positions and optional VDA 5050 trajectory."""
        if trajectory is None:
            return cls(start, end)
        seg = cls(start, end, Nurbs.from_vda(trajectory))
        for name, node, tip in (("start", start, seg.start), ("end", end, seg.end)):
            gap = math.dist(node, tip)
            if gap > END_TOLERANCE_M:
                raise PathError(
                    f"trajectory: its {name} is {gap:.3f} m from the edge's {name} node "
                    f"(at most {END_TOLERANCE_M} m)"
                )
        return seg

    def _build_table(self, curve: Nurbs) -> None:
        # a first pass over the control polygon bounds the length (the curve is inside it)
        poly = sum(math.dist(a, b) for a, b in zip(curve.points, curve.points[1:], strict=False))
        n = max(MIN_SAMPLES, min(MAX_SAMPLES, int(poly * SAMPLES_PER_METRE) + 1))
        us = [curve.u_min + (curve.u_max - curve.u_min) * i / n for i in range(n + 1)]
        pts = [curve.point(u) for u in us]
        # the parameter speed varies along a curve: split every chord longer than the target
        # (again while any is: a split chord can still be long where the speed changes fast)
        for _ in range(8):
            if max(map(math.dist, pts, pts[1:])) * SAMPLES_PER_METRE <= 1.0:
                break
            if len(us) >= MAX_SAMPLES:
                break
            new_us, new_pts = [us[0]], [pts[0]]
            for i in range(len(us) - 1):
                parts = math.ceil(math.dist(pts[i], pts[i + 1]) * SAMPLES_PER_METRE)
                for j in range(1, min(parts, 256)):
                    u = us[i] + (us[i + 1] - us[i]) * j / parts
                    new_us.append(u)
                    new_pts.append(curve.point(u))
                new_us.append(us[i + 1])
                new_pts.append(pts[i + 1])
            us, pts = new_us, new_pts
        n = len(us) - 1
        s = [0.0]
        for a, b in itertools.pairwise(pts):
            s.append(s[-1] + math.dist(a, b))
        self._u, self._s, self._pts = us, s, pts
        self.length = s[-1]
        # curvature at every table row, from the rows ~2.5 cm either side (for speed limits)
        m = max(1, round(0.025 / max(self.length / n, 1e-9)))
        self._kappa = []
        for i in range(n + 1):
            a, b = max(0, i - m), min(n, i + m)
            if b - a < 2:
                self._kappa.append(0.0)
                continue
            self._kappa.append(_three_point_curvature(pts[a], pts[(a + b) // 2], pts[b]))

    @property
    def straight(self) -> bool:
        return self.curve is None

    def u_at(self, s: float) -> float:
        """The curve parameter at arc length ``s`` (linear between table rows)."""
        s = min(max(s, 0.0), self.length)
        i = bisect.bisect_right(self._s, s) - 1
        i = min(max(i, 0), len(self._s) - 2)
        s0, s1 = self._s[i], self._s[i + 1]
        f = 0.0 if s1 == s0 else (s - s0) / (s1 - s0)
        return self._u[i] + f * (self._u[i + 1] - self._u[i])

    def point_at(self, s: float) -> Point:
        """The point at arc length ``s``; beyond either end, extended along the end tangent
        (the drive aims past the end of the last edge to settle on its final direction)."""
        if s < 0 or s > self.length:
            base = 0.0 if s < 0 else self.length
            x, y = self.point_at(base)
            h = self.heading_at(base)
            d = s - base
            return (x + d * math.cos(h), y + d * math.sin(h))
        if self.curve is None:
            f = 0.0 if self.length == 0 else s / self.length
            return (
                self.start[0] + f * (self.end[0] - self.start[0]),
                self.start[1] + f * (self.end[1] - self.start[1]),
            )
        return self.curve.point(self.u_at(s))

    def heading_at(self, s: float) -> float:
        """Tangent direction at ``s`` (a short chord around it)."""
        if self.curve is None:
            return self._heading
        h = min(0.002, self.length / 4)
        a = min(max(s - h, 0.0), self.length - 2 * h)
        p0, p1 = self.point_at(a), self.point_at(a + 2 * h)
        return math.atan2(p1[1] - p0[1], p1[0] - p0[0])

    def curvature_at(self, s: float) -> float:
        """Unsigned curvature 1/m at ``s`` (from the table; 0 on a line)."""
        if self.curve is None:
            return 0.0
        i = bisect.bisect_right(self._s, min(max(s, 0.0), self.length)) - 1
        return self._kappa[min(max(i, 0), len(self._kappa) - 1)]

    def project(self, p: Point, s_hint: float, window: float = 0.5) -> tuple[float, float]:
        """(s, distance) of the point of the segment nearest ``p``, searched within
        ``window`` metres of ``s_hint`` (progress along an edge is local and forward)."""
        if self.curve is None:
            if self.length == 0:
                return 0.0, math.dist(p, self.start)
            dx, dy = self.end[0] - self.start[0], self.end[1] - self.start[1]
            f = ((p[0] - self.start[0]) * dx + (p[1] - self.start[1]) * dy) / self.length**2
            s = min(max(f, 0.0), 1.0) * self.length
            return s, math.dist(p, self.point_at(s))
        lo = bisect.bisect_left(self._s, s_hint - window)
        hi = bisect.bisect_right(self._s, s_hint + window)
        lo, hi = max(lo - 1, 0), min(hi + 1, len(self._s) - 1)
        best_i, best_d = lo, math.inf
        for i in range(lo, hi + 1):
            d = math.dist(p, self._pts[i])
            if d < best_d:
                best_i, best_d = i, d
        # refine on the two chords around the best sample
        best_s = self._s[best_i]
        for j in (best_i - 1, best_i):
            if 0 <= j < len(self._s) - 1:
                a, b = self._pts[j], self._pts[j + 1]
                seg = math.dist(a, b)
                if seg == 0:
                    continue
                f = ((p[0] - a[0]) * (b[0] - a[0]) + (p[1] - a[1]) * (b[1] - a[1])) / seg**2
                f = min(max(f, 0.0), 1.0)
                q = (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]))
                d = math.dist(p, q)
                if d < best_d:
                    best_d, best_s = d, self._s[j] + f * (self._s[j + 1] - self._s[j])
        return best_s, best_d

    def max_curvature(self, s0: float, s1: float) -> float:
        """The largest curvature between ``s0`` and ``s1`` (table rows)."""
        if self.curve is None or s1 < 0 or s0 > self.length:
            return 0.0
        lo = max(bisect.bisect_left(self._s, s0) - 1, 0)
        hi = min(bisect.bisect_right(self._s, s1) + 1, len(self._kappa))
        return max(self._kappa[lo:hi], default=0.0)


def _three_point_curvature(p0: Point, p1: Point, p2: Point) -> float:
    """1 / radius of the circle through three points (0 when they are collinear)."""
    area2 = abs((p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0]))
    denom = math.dist(p0, p1) * math.dist(p1, p2) * math.dist(p0, p2)
    return 0.0 if denom == 0 else 2 * area2 / denom


def polyline_length(points: Sequence[Point]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))
