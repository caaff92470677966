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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
