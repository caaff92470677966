"""The simulated arm cell's numbers, as plain values (``sim_hardware`` never imports ``edge``).

``ArmWorldConfig.from_arm_section`` reads the ``arm:`` section of a board config (the dict
that ``edge.arm.config.ArmConfig`` validates: geometry, joints, belt, suction, destinations,
mcu, safety, home), so the world is built from the same numbers the node is configured
with; what a config does not say (masses, servo bandwidth, vacuum supply, belt length) has
defaults here, stated in docs/sim-arm-world.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DestinationSpec:
    """A chute or tote: an opening of ``size_mm`` square under the place pose; a parcel that
    falls into it is counted there (its entry sensor pulses) and leaves the world."""

    id: str
    x_mm: float
    y_mm: float
    z_mm: float  # the cup's height at release
    kind: str = "chute"
    sensor_input: int | None = None
    size_mm: float = 400.0


@dataclass(frozen=True)
class ArmWorldConfig:
    # SCARA geometry and joint ranges (j1, j2, j4 deg; j3 mm = the cup's height z)
    link1_mm: float = 600.0
    link2_mm: float = 400.0
    elbow: str = "right"
    joint_min: tuple[float, float, float, float] = (-150.0, -145.0, -750.0, -360.0)
    joint_max: tuple[float, float, float, float] = (150.0, 145.0, -330.0, 360.0)
    home_mm: tuple[float, float, float, float] = (0.0, 450.0, -340.0, 0.0)  # x, y, z, yaw deg
    # belt: runs along +x (sign 1) or -x (sign -1); u is the coordinate along the travel
    belt_sign: float = 1.0
    belt_centre_y_mm: float = 600.0
    belt_width_mm: float = 500.0
    belt_surface_z_mm: float = -720.0
    belt_start_u_mm: float = -2200.0  # where parcels are put on (the induction)
    belt_end_u_mm: float = 1500.0  # past this a parcel leaves to the reject
    belt_speed_mm_s: float = 1200.0
    belt_friction: float = 0.6
    counts_per_mm: float = 2.0
    # suction cup and vacuum: a 1.5-fold bellows cup (docs/sim-arm-world.md, "The grip").
    # What it holds is physics: vacuum x effective area, no safety factor (that belongs in
    # the node's rating, max_load_kg); heavier or faster than that, it lets go.
    cup_diameter_mm: float = 100.0  # nominal (the lip's outer diameter: the seal rule)
    cup_effective_ratio: float = 0.85  # effective suction diameter / nominal (bellows)
    max_load_kg: float = 10.0  # the node's rating: what judges a parcel pickable, not physics
    cup_friction: float = 0.5  # lip on dry cardboard / film: shear held per N of clamping
    rated_kpa: float = 60.0  # the vacuum a datasheet states its force at
    supply_kpa: float = 65.0  # vacuum of a sealed cup (a vacuum generator's level)
    free_flow_kpa: float = 4.0  # vacuum with the valve open and nothing sealed
    attach_kpa: float = 20.0  # the parcel moves with the cup from this vacuum on
    grip_filter_ms: float = 8.0  # the load on the lip, averaged over this (first order)
    grip_settle_ms: float = 10.0  # after the weld: the face drawn onto the lip, not judged
    rise_ms: float = 15.0  # vacuum time constants: evacuating, venting
    fall_ms: float = 10.0
    seal_gap_mm: float = 4.0  # the cup's lip seals up to this far above the face ...
    seal_press_mm: float = 20.0  # ... and pressed up to this far into it (bellows)
    seal_tilt_deg: float = 8.0  # face normal vs the cup's axis
    seal_edge_mm: float = 3.0  # the rim may overhang the face's edge by this
    seal_speed_mm_s: float = 300.0  # the lip seals only this slow relative to the face
    reseal_s: float = 0.3  # a parcel the cup just lost is not sealed again for this long
    # destinations, sensors and safety inputs of the arm's MCU
    destinations: tuple[DestinationSpec, ...] = (
        DestinationSpec("c1", -650.0, 200.0, -500.0, "chute", 8),
        DestinationSpec("c2", 650.0, 200.0, -500.0, "chute", 9),
    )
    sensor_ms: float = 60.0  # a destination's entry sensor stays high this long
    curtain_input: int = 3
    curtain_broken_level: int = 1  # the input's value while the curtain is broken
    estop_input: int = 2
    # physics
    timestep_s: float = 0.002
    servo_hz: float = 40.0  # closed-loop bandwidth of the joint servos
    quill_force_n: float = 600.0  # J3 thrust: 9.6 kg quill + 10 kg parcel at 20 m/s^2 + g
    pool: int = 8  # parcels in the world at once (each costs physics even when parked)
    floor_z_mm: float = -1200.0
    link_masses_kg: tuple[float, float, float, float] = (14.0, 8.0, 3.0, 0.6)
    armature: tuple[float, float, float, float] = (3.0, 1.2, 6.0, 0.05)  # motor + gearbox
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cup_radius_m(self) -> float:
        return self.cup_diameter_mm / 2000

    @property
    def cup_effective_area_m2(self) -> float:
        d = self.cup_diameter_mm * self.cup_effective_ratio / 1000
        return math.pi * d * d / 4

    @property
    def cup_effective_radius_m(self) -> float:
        return self.cup_diameter_mm * self.cup_effective_ratio / 2000

    def hold_force_n(self, vacuum_pa: float) -> float:
        """The cup's theoretical holding force at a vacuum: pressure difference x effective
        suction area (Schmalz's and Piab's F = dp x A; 100 mm cup at 60 kPa: 340 N)."""
        return max(0.0, vacuum_pa) * self.cup_effective_area_m2

    def grip_loads(self, pull_n: float, shear_n: float, tilt_nm: float) -> tuple[float, float]:
        """What a held load asks of the holding force, in its two ways of failing: sliding
        (pull + shear / mu: the lip's friction carries the shear, clamped by the holding force
        less the pull) and peeling (pull + tilting moment / effective radius: the load tips
        the face about the lip). ``pull_n`` along the cup's axis away from it (negative: the
        cup presses), ``shear_n`` across it, ``tilt_nm`` about the lip's centre."""
        return (
            pull_n + shear_n / self.cup_friction,
            pull_n + tilt_nm / self.cup_effective_radius_m,
        )

    def destination(self, dest_id: str) -> DestinationSpec | None:
        return next((d for d in self.destinations if d.id == dest_id), None)

    @classmethod
    def from_arm_section(cls, arm: Mapping[str, Any], **overrides: Any) -> ArmWorldConfig:
        """From the ``arm:`` section of a board config (plain dict), plus ``overrides``."""
        g, j, belt, suction = arm["geometry"], arm["joints"], arm["belt"], arm["suction"]
        names = ("j1", "j2", "j3", "j4")
        home = arm["home"]
        mcu = arm.get("mcu", {})
        dests = tuple(
            DestinationSpec(
                str(d["id"]),
                float(d["place"]["x_mm"]),
                float(d["place"]["y_mm"]),
                float(d["place"]["z_mm"]),
                str(d.get("kind", "chute")),
                d.get("sensor_input"),
            )
            for d in arm["destinations"]
        )
        values: dict[str, Any] = {
            "link1_mm": float(g["link1_mm"]),
            "link2_mm": float(g["link2_mm"]),
            "elbow": str(g.get("elbow", "right")),
            "joint_min": tuple(float(j[n]["min"]) for n in names),
            "joint_max": tuple(float(j[n]["max"]) for n in names),
            "home_mm": (
                float(home["x_mm"]),
                float(home["y_mm"]),
                float(home["z_mm"]),
                float(home.get("yaw_deg", 0.0)),
            ),
            "belt_sign": 1.0 if belt.get("direction", "+x") == "+x" else -1.0,
            "belt_centre_y_mm": float(belt["centre_y_mm"]),
            "belt_width_mm": float(belt["width_mm"]),
            "belt_surface_z_mm": float(belt["surface_z_mm"]),
            "belt_speed_mm_s": float(belt["nominal_speed_mm_s"]),
            "counts_per_mm": float(belt["counts_per_mm"]),
            "cup_diameter_mm": float(suction["cup_diameter_mm"]),
            "max_load_kg": float(suction["max_load_kg"]),
            "destinations": dests,
        }
        if suction.get("effective_diameter_mm"):
            values["cup_effective_ratio"] = float(suction["effective_diameter_mm"]) / float(
                suction["cup_diameter_mm"]
            )
        if "friction" in suction:
            values["cup_friction"] = float(suction["friction"])
        if "curtain_input" in mcu:
            values["curtain_input"] = int(mcu["curtain_input"])
        if "estop_input" in mcu:
            values["estop_input"] = int(mcu["estop_input"])
        values.update(overrides)
        return cls(**values)

    def ik(self, x_mm: float, y_mm: float, z_mm: float, yaw_deg: float) -> tuple[float, ...]:
        """Joint values (rad, rad, m, rad) that put the cup at a pose, in this config's elbow;
        ValueError if out of reach. (The world's own small IK: the node's is edge/arm.)"""
        a, b = self.link1_mm, self.link2_mm
        r2 = x_mm * x_mm + y_mm * y_mm
        c2 = (r2 - a * a - b * b) / (2 * a * b)
        if not -1.0 <= c2 <= 1.0:
            raise ValueError(f"pose ({x_mm:.0f}, {y_mm:.0f}) mm is out of the arm's reach")
        s2 = math.sqrt(max(0.0, 1 - c2 * c2)) * (1 if self.elbow == "right" else -1)
        q2 = math.atan2(s2, c2)
        q1 = math.atan2(y_mm, x_mm) - math.atan2(b * s2, a + b * c2)
        q4 = math.radians(yaw_deg) - q1 - q2
        return (q1, q2, z_mm / 1000, q4)

    def fk(self, q: tuple[float, ...]) -> tuple[float, float, float, float]:
        """The cup's (x mm, y mm, z mm, yaw deg) at joint values (rad, rad, m, rad)."""
        a, b = self.link1_mm, self.link2_mm
        x = a * math.cos(q[0]) + b * math.cos(q[0] + q[1])
        y = a * math.sin(q[0]) + b * math.sin(q[0] + q[1])
        return (x, y, q[2] * 1000, math.degrees(q[0] + q[1] + q[3]))
