"""Where the cup takes a parcel, or why it must not.

A suction cup holds on a flat face: for a parcel on a belt that is the top face, and the
surest point is its centre (the load hangs straight under the cup, no tilting moment). The
camera gives the oriented box on the belt plane; its centre is the top face's centre for a
box, an envelope and a lying polybag. A parcel is refused, with the reason recorded, when:
its class is not pickable (or unknown); the top face is too narrow for the cup with its rim
margin (a polybag's usable share of it is smaller); its estimated weight (volume x the
class's density) exceeds ``max_load_kg``, or what the cup holds (vacuum x area / safety
factor) leaves less than 1.25 g to lift it with; its height is unknown, too low (the cup
would hit the belt) or too tall (it cannot pass under the hovering quill). What the cup holds
of an accepted parcel (``hold``) limits its carry's accelerations (moves.py).

A neighbour whose footprint comes within the cup's radius plus ``edge_margin_mm`` of the
face's centre does not end the pick by itself: ``clear_grasp`` moves the grasp point away
from it, within the usable face, as a picker does (docs/arm.md, "Grasp and refusals").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.arm.config import ArmConfig
from edge.arm.events import ParcelSeen
from edge.arm.tracking import Target, camera_to_belt

G_MM = 9806.65  # g, mm/s^2
LIFT_MARGIN = 1.25  # a parcel the cup holds with less than 1.25 g of "need" is not lifted


@dataclass(frozen=True)
class Hold:
    """What the cup holds of one parcel, per kg: a move of the cup with acceleration a
    (mm/s^2) "needs" max(0, g + a_z) + |a_xy| * shear of it, which must stay under
    ``limit`` (the usable holding force over the parcel's estimated mass). ``shear``: the
    larger of 1 / friction (sliding) and (h / 2) / r_eff (peeling about the lip)."""

    limit: float  # mm/s^2
    shear: float


@dataclass(frozen=True)
class Grasp:
    target: Target  # the top face's centre, riding the belt
    height_mm: float
    weight_kg: float
    hold: Hold  # what the cup holds of it: limits its carry's accelerations (moves.py)
    size_mm: tuple[float, float, float]  # length, width, height
    half_diagonal_mm: float  # of the footprint: the load's horizontal reach from the cup
    half_extent_mm: tuple[float, float]  # the footprint's half extents along x and y
    # the top face in the belt's (u, y) frame: its unit axes (along the camera's length,
    # across it) and the usable half extents along them (face_flatness x half the side)
    axes: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (0.0, 1.0))
    face_half_mm: tuple[float, float] = (0.0, 0.0)
    offset_mm: tuple[float, float] = (0.0, 0.0)  # the cup's (du, dy) from the face's centre
    centre: Grasp | None = None  # the grasp at the face's centre this one was moved from

    @property
    def centred(self) -> Grasp:
        """This grasp at the face's centre (itself when it was not moved)."""
        return self.centre if self.centre is not None else self

    @property
    def load(self) -> tuple[float, float, float]:
        """What the zone check needs of the parcel under the cup (height, half extents)."""
        return (self.height_mm, self.half_extent_mm[0], self.half_extent_mm[1])


def grasp(cfg: ArmConfig, seen: ParcelSeen) -> Grasp | str:
    """The grasp of ``seen``, or why the cup cannot hold it."""
    s = cfg.suction
    cls = seen.class_name
    if cls is None:
        return "class unknown: not picked"
    rule = s.classes.get(cls)
    if rule is None:
        return f"class {cls!r} is not in suction.classes: not picked"
    if not rule.pickable:
        return f"class {cls!r} is not pickable by a suction cup"
    height = seen.height_mm if seen.height_mm is not None else rule.default_height_mm
    if height is None:
        return f"height not measured and class {cls!r} has no default_height_mm"
    if height < s.min_top_mm:
        return f"{height:.0f} mm high, below the {s.min_top_mm:.0f} mm the cup needs"
    if height > s.max_height_mm:
        return f"{height:.0f} mm high, over the {s.max_height_mm:.0f} mm limit"
    length, width = max(seen.length_mm, seen.width_mm), min(seen.length_mm, seen.width_mm)
    need = s.cup_diameter_mm + 2 * s.edge_margin_mm
    usable = width * rule.face_flatness
    if usable < need:
        return (
            f"top face {usable:.0f} mm usable ({width:.0f} mm wide, {cls}), the "
            f"{s.cup_diameter_mm:.0f} mm cup needs {need:.0f} mm"
        )
    weight = length * width * height / 1e6 * rule.kg_per_litre
    if weight > s.max_load_kg:
        return f"estimated {weight:.1f} kg, over the cup's {s.max_load_kg:.1f} kg"
    hold = s.hold_n / max(weight, 0.05) * 1000  # the need (mm/s^2) the cup holds
    # a sideways acceleration a asks a / friction of the holding force (sliding) or
    # a * (h / 2) / r_eff (peeling: the centre of mass hangs h / 2 under the lip)
    r_eff = (s.effective_diameter_mm or s.cup_diameter_mm) / 2
    shear = max(1 / s.friction, height / 2 / r_eff)
    if hold < G_MM * LIFT_MARGIN:
        return (
            f"estimated {weight:.1f} kg: the cup holds {s.hold_n / 9.81:.1f} kg at "
            f"{s.vacuum_kpa:.0f} kPa with safety factor {s.safety_factor:g}, too little to lift it"
        )
    belt = cfg.belt
    u, y = camera_to_belt(cfg.camera, belt.centre_y_mm, belt.sign, seen.along_mm, seen.across_mm)
    count = seen.count + cfg.camera.count_offset
    target = Target(u_ref=u, count_ref=count, y=y, z=belt.surface_z_mm + height)
    # the long side vs the travel (+-x): its extents along x and y; the cup holds its yaw
    a = math.radians(seen.angle_deg + cfg.camera.yaw_deg)
    ca, sa = math.cos(a), math.sin(a)
    sg = belt.sign  # across to the left of travel is +y for a '+x' belt, -y for '-x'
    return Grasp(
        target=target,
        height_mm=height,
        weight_kg=weight,
        hold=Hold(hold, shear),
        size_mm=(length, width, height),
        half_diagonal_mm=math.hypot(length, width) / 2,
        half_extent_mm=(
            abs(ca) * length / 2 + abs(sa) * width / 2,
            abs(sa) * length / 2 + abs(ca) * width / 2,
        ),
        axes=((ca, sg * sa), (-sa, sg * ca)),
        face_half_mm=(
            seen.length_mm * rule.face_flatness / 2,
            seen.width_mm * rule.face_flatness / 2,
        ),
    )


@dataclass(frozen=True)
class Footprint:
    """A parcel on the belt as its neighbours see it: its centre riding the belt
    (``target``; ``target.z`` its top) and its half extents along x and y (arm frame)."""

    target: Target
    hx: float
    hy: float


def footprint(cfg: ArmConfig, seen: ParcelSeen) -> Footprint:
    """Where ``seen`` sits on the belt and how tall it is, pickable or not. A height neither
    measured nor given by its class is taken as ``suction.max_height_mm``: an unknown
    neighbour is passed over as the tallest the cell takes."""
    rule = cfg.suction.classes.get(seen.class_name or "")
    height = seen.height_mm
    if height is None and rule is not None:
        height = rule.default_height_mm
    if height is None:
        height = cfg.suction.max_height_mm
    belt = cfg.belt
    u, y = camera_to_belt(cfg.camera, belt.centre_y_mm, belt.sign, seen.along_mm, seen.across_mm)
    target = Target(u, seen.count + cfg.camera.count_offset, y, belt.surface_z_mm + height)
    a = math.radians(seen.angle_deg + cfg.camera.yaw_deg)
    ca, sa = abs(math.cos(a)), abs(math.sin(a))
    length, width = seen.length_mm, seen.width_mm
    return Footprint(target, ca * length / 2 + sa * width / 2, sa * length / 2 + ca * width / 2)


@dataclass(frozen=True)
class Neighbours:
    """What the parcels beside a pick mean for it: ``clear_z``, the highest top the cup and
    the lifted parcel must pass over (None: none near); ``conflict``, the first neighbour
    whose footprint lies under the cup's lip at the grasp point (its id, and why)."""

    clear_z: float | None
    conflict: tuple[int, str] | None
    others: tuple[Footprint, ...] = ()  # every other parcel (split tracks left out)


CORRIDOR_MM = 100.0  # a neighbour this close along the belt (beyond the cup) is passed over


def neighbours(
    cfg: ArmConfig, me: Footprint, others: list[tuple[int, Footprint]], cpm: float
) -> Neighbours:
    """The neighbours of a pick at ``me``'s grasp point (its centre). Both ride the belt, so
    their offsets do not change. A footprint whose centre lies inside the other's is the
    same parcel seen twice (a split track), not a neighbour. A neighbour within
    ``CORRIDOR_MM`` plus the cup's radius along the belt is passed over (its top counts
    for ``clear_z``); one whose footprint comes within the cup's radius plus
    ``edge_margin_mm`` of the grasp point, and whose top the pressed cup reaches, is a
    conflict: the cup would seal on it or press it."""
    s = cfg.suction
    r = s.cup_diameter_mm / 2
    c0 = me.target.count_ref
    u0, y0 = me.target.u_ref, me.target.y
    clear: float | None = None
    conflict: tuple[int, str] | None = None
    rest: list[Footprint] = []
    for pid, o in others:
        du = o.target.u_at_count(c0, cpm) - u0
        dy = o.target.y - y0
        same = (abs(du) < me.hx and abs(dy) < me.hy) or (abs(du) < o.hx and abs(dy) < o.hy)
        if same:
            continue
        rest.append(o)
        if abs(du) - o.hx < r + CORRIDOR_MM:
            clear = o.target.z if clear is None else max(clear, o.target.z)
        gap = math.hypot(max(0.0, abs(du) - o.hx), max(0.0, abs(dy) - o.hy))
        reaches = o.target.z > me.target.z - s.press_mm - 5.0
        if conflict is None and reaches and gap < r + s.edge_margin_mm:
            conflict = (
                pid,
                f"parcel {pid}'s footprint is {gap:.0f} mm from the grasp point, inside the "
                f"cup's {r:.0f} mm + {s.edge_margin_mm:.0f} mm margin",
            )
    return Neighbours(clear, conflict, tuple(rest))


GRID_MM = 2.0  # the step of the search for a grasp point off the face's centre


def _crowding(
    cfg: ArmConfig, me: Footprint, others: Sequence[tuple[int, Footprint]], cpm: float
) -> list[tuple[int, float, float, float, float]]:
    """The neighbours that may crowd a cup on ``me``'s top face, as ``neighbours`` judges
    them: (id, du, dy, hx, hy), their footprint's centre offset from ``me``'s centre and
    half extents; split tracks and parcels whose top the pressed cup cannot reach left
    out."""
    s = cfg.suction
    c0 = me.target.count_ref
    out: list[tuple[int, float, float, float, float]] = []
    for pid, o in others:
        du = o.target.u_at_count(c0, cpm) - me.target.u_ref
        dy = o.target.y - me.target.y
        same = (abs(du) < me.hx and abs(dy) < me.hy) or (abs(du) < o.hx and abs(dy) < o.hy)
        if same or o.target.z <= me.target.z - s.press_mm - 5.0:
            continue
        out.append((pid, du, dy, o.hx, o.hy))
    return out


def clear_grasp(
    cfg: ArmConfig,
    g: Grasp,
    me: Footprint,
    others: Sequence[tuple[int, Footprint]],
    cpm: float,
) -> Grasp | str:
    """The grasp point nearest the top face's centre where the cup lies on the face's usable
    part (``face_flatness``) with ``edge_margin_mm`` to spare and is at least its radius
    plus ``edge_margin_mm`` from every neighbour's footprint that the pressed cup reaches
    (the rule of ``neighbours``); or why there is none. ``g`` may be a grasp moved before:
    the search starts from its face's centre (``g.centred``), which it returns unchanged
    when it is clear.

    Why a picker moves the cup rather than give up: two parcels touching on the belt leave
    each other's centre closer than the cup's radius plus the margin only along one side;
    the rest of the face is free. What it costs: the load hangs off the cup's axis by the
    offset d, so its weight and vertical inertia tilt the face about the lip with a moment
    m (g + a_z) d on top of the sideways one. The peel rule of the cup (docs/sim-arm-world.md,
    "The grip": pull + tilt / r_eff under the holding force) then asks (1 + d / r_eff) times
    more of the vertical part; the moved grasp's ``hold.limit`` is divided by that factor,
    which also covers the sideways part (its torsion about the cup's axis, a_xy m d, is
    carried by the lip's friction at r_eff: at most the same factor). A grasp left with
    less than 1.25 g to lift with is refused. The search is a grid of ``GRID_MM`` over the
    usable face in the face's own axes (the camera's box: length along its angle), so the
    cup's position is exact and every candidate is checked with the same rule."""
    c = g.centred
    s = cfg.suction
    need = s.cup_diameter_mm / 2 + s.edge_margin_mm
    crowd = _crowding(cfg, me, others, cpm)
    if not crowd:
        return c
    half_p, half_q = c.face_half_mm[0] - need, c.face_half_mm[1] - need
    if half_p < 0 or half_q < 0:
        return (
            f"its usable top face ({2 * c.face_half_mm[0]:.0f} x {2 * c.face_half_mm[1]:.0f} mm) "
            f"leaves the cup no room to move"
        )
    ps, qs = _axis_grid(half_p), _axis_grid(half_q)
    pp, qq = np.meshgrid(ps, qs, indexing="ij")
    (e1u, e1y), (e2u, e2y) = c.axes
    du = pp * e1u + qq * e2u
    dy = pp * e1y + qq * e2y
    ok = np.ones(du.shape, dtype=bool)
    for _pid, ou, oy, hx, hy in crowd:
        gu = np.maximum(0.0, np.abs(du - ou) - hx)
        gy = np.maximum(0.0, np.abs(dy - oy) - hy)
        ok &= np.hypot(gu, gy) >= need
    if not ok.any():
        ids = ", ".join(str(x[0]) for x in crowd)
        return f"no point of its top face keeps the cup {need:.0f} mm clear of parcel(s) {ids}"
    dist = np.where(ok, np.hypot(du, dy), np.inf)
    i = np.unravel_index(int(np.argmin(dist)), dist.shape)
    d = float(dist[i])
    if d == 0.0:
        return c
    r_eff = (s.effective_diameter_mm or s.cup_diameter_mm) / 2
    limit = c.hold.limit / (1 + d / r_eff)
    if limit < G_MM * LIFT_MARGIN:
        return (
            f"the cup {d:.0f} mm off the face's centre (clear of its neighbours) would hold "
            f"it with {limit / G_MM:.2f} g, under {LIFT_MARGIN:g} g"
        )
    off_u, off_y = float(du[i]), float(dy[i])
    t = c.target
    return replace(
        c,
        target=replace(t, u_ref=t.u_ref + off_u, y=t.y + off_y),
        hold=Hold(limit, c.hold.shear),
        half_diagonal_mm=c.half_diagonal_mm + d,
        half_extent_mm=(c.half_extent_mm[0] + abs(off_u), c.half_extent_mm[1] + abs(off_y)),
        offset_mm=(off_u, off_y),
        centre=c,
    )


def _axis_grid(half: float) -> np.ndarray:
    """-half ... half in steps of GRID_MM through 0, with both ends."""
    n = int(half // GRID_MM)
    return np.unique(np.concatenate(([-half, half], np.arange(-n, n + 1) * GRID_MM)))
