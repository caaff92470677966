"""Forbidden zones: axis-aligned boxes no part of the arm or its load may enter.

Checked on every trajectory before it is sent, swept rather than sampled: the cup (with its
load, as a sphere of ``radius``) moves along straight segments between setpoints, and each
segment is tested against the box grown by that radius (a slab test), so a fast move cannot
jump over a thin zone between two setpoints. The links are tested too, in plan view, for a
zone that reaches up to the links' height (``link_z_mm``): the forearm swept between two
setpoints is a quadrilateral; it is tested with its two end positions and the cup's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.arm.config import ForbiddenZone

Point = tuple[float, float, float]


@dataclass(frozen=True)
class ZoneHit:
    zone: str
    index: int  # the segment (setpoint index) that enters it
    what: str  # "cup" or "forearm" or "upper arm"

    def __str__(self) -> str:
        return f"the {self.what} enters zone {self.zone!r} at setpoint {self.index}"


def point_in_zones(p: Point, zones: Sequence[ForbiddenZone], radius: float = 0.0) -> str | None:
    """The id of the first zone within ``radius`` of ``p``; None if clear."""
    for z in zones:
        if all(z.min_mm[i] - radius <= p[i] <= z.max_mm[i] + radius for i in range(3)):
            return z.id
    return None


def segment_hits_box(a: Point, b: Point, lo: Point, hi: Point) -> bool:
    """Whether the segment a-b meets the closed box [lo, hi] (slab method)."""
    t0, t1 = 0.0, 1.0
    for i in range(3):
        d = b[i] - a[i]
        if abs(d) < 1e-12:  # parallel to this slab: both ends on the same side or within
            if max(a[i], b[i]) < lo[i] or min(a[i], b[i]) > hi[i]:
                return False
            continue
        ta, tb = (lo[i] - a[i]) / d, (hi[i] - a[i]) / d
        if ta > tb:
            ta, tb = tb, ta
        t0, t1 = max(t0, ta), min(t1, tb)
        if t0 > t1:
            return False
    return True


def segment_hits_rect_2d(
    a: tuple[float, float], b: tuple[float, float], lo: Point, hi: Point
) -> bool:
    """The plan-view segment a-b against the box's footprint."""
    return segment_hits_box(
        (a[0], a[1], 0.0), (b[0], b[1], 0.0), (lo[0], lo[1], -1), (hi[0], hi[1], 1)
    )


def first_hit(
    cup: Sequence[Point],
    zones: Sequence[ForbiddenZone],
    radius: float | tuple[float, float] | tuple[float, float, float],
    elbows: Sequence[tuple[float, float]] | None = None,
    link_z: float = float("inf"),
) -> ZoneHit | None:
    """The first zone the swept path enters: the cup (a sphere of ``radius``) along ``cup``,
    and where ``elbows`` is given (plan-view elbow positions at the same setpoints) the
    upper arm (origin to elbow) and forearm (elbow to cup) for zones reaching ``link_z``.
    ``radius``: one number, (horizontal, vertical), or (x, y, z): a box's half extents."""
    if not zones:
        return None
    if isinstance(radius, tuple):
        rx, ry, rz = radius if len(radius) == 3 else (radius[0], radius[0], radius[1])
    else:
        rx = ry = rz = radius
    for z in zones:
        lo = (z.min_mm[0] - rx, z.min_mm[1] - ry, z.min_mm[2] - rz)
        hi = (z.max_mm[0] + rx, z.max_mm[1] + ry, z.max_mm[2] + rz)
        if len(cup) == 1 and segment_hits_box(cup[0], cup[0], lo, hi):
            return ZoneHit(z.id, 0, "cup")
        for i in range(1, len(cup)):
            if segment_hits_box(cup[i - 1], cup[i], lo, hi):
                return ZoneHit(z.id, i, "cup")
    if elbows is None:
        return None
    tall = [z for z in zones if z.max_mm[2] >= link_z]
    for z in tall:
        for i, e in enumerate(elbows):
            c = (cup[i][0], cup[i][1])
            if segment_hits_rect_2d((0.0, 0.0), e, z.min_mm, z.max_mm):
                return ZoneHit(z.id, i, "upper arm")
            if segment_hits_rect_2d(e, c, z.min_mm, z.max_mm):
                return ZoneHit(z.id, i, "forearm")
            if i and segment_hits_rect_2d(elbows[i - 1], e, z.min_mm, z.max_mm):
                return ZoneHit(z.id, i, "forearm")
    return None
