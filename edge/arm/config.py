"""The `arm:` section of a board config with ``machine: arm``: a 4-axis SCARA with a suction
cup picking parcels off a moving belt and placing them into chutes or totes.

Frames and units (docs/arm.md has a drawing):

* The **arm frame**: origin on the J1 axis at the height of the arm's mounting flange, x and y
  horizontal, z up, in mm. Every pose in this file (destinations, forbidden zones, the belt,
  the tracking window) is in the arm frame.
* **Joints** q = (j1 deg, j2 deg, j3 mm, j4 deg): shoulder, elbow, quill (the cup's height z in
  the arm frame), wrist. The cup's yaw in the arm frame is j1 + j2 + j4.
* The **belt** runs along +x or -x of the arm frame. A point on the belt has a belt coordinate
  ``u`` (mm along the direction of travel: u = x for '+x', u = -x for '-x') and ``y`` across.
  The encoder count grows with belt travel at ``belt.counts_per_mm``.

Every check that can be made on the config alone is made here (the tracking window within
reach, destinations reachable and outside forbidden zones, routing to known destinations), so
a wrong number fails at load time with where and why, not as an arm crash at line speed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.cell.config import RoutingRule
from edge.safety.config import SafetyConfig

if TYPE_CHECKING:
    from edge.arm.kinematics import Scara

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("expected 1-64 lower-case letters, digits, '-' or '_'")
    return value


ArmId = Annotated[str, AfterValidator(_check_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaraGeometry(_Strict):
    """Link lengths of the SCARA, and the elbow it works with."""

    link1_mm: float = Field(gt=0, le=3000, description="J1 axis to J2 axis")
    link2_mm: float = Field(gt=0, le=3000, description="J2 axis to the J3/J4 (quill) axis")
    elbow: Literal["right", "left"] = Field(
        "right",
        description="the elbow solution the arm works in ('right': j2 > 0, the elbow to the "
        "right of the line base-to-tool seen from above). The arm never flips elbows while "
        "it carries a parcel: that passes through the stretched-out singularity",
    )


class JointLimit(_Strict):
    """One joint's range and motion limits, in deg (j1, j2, j4) or mm (j3)."""

    min: float = Field(description="lowest position (deg or mm)")
    max: float = Field(description="highest position (deg or mm)")
    vel: float = Field(gt=0, description="top speed, per second")
    acc: float = Field(gt=0, description="top acceleration, per second squared")
    jerk: float = Field(gt=0, description="top jerk, per second cubed")

    @model_validator(mode="after")
    def _ordered(self) -> JointLimit:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class ScaraJoints(_Strict):
    j1: JointLimit = Field(description="shoulder, deg")
    j2: JointLimit = Field(description="elbow, deg")
    j3: JointLimit = Field(description="quill: the cup's height z in the arm frame, mm")
    j4: JointLimit = Field(description="wrist, deg; the cup's yaw is j1 + j2 + j4")

    def all(self) -> tuple[JointLimit, JointLimit, JointLimit, JointLimit]:
        return (self.j1, self.j2, self.j3, self.j4)


class Pose(_Strict):
    """A cup pose in the arm frame: the cup's contact point and its yaw."""

    x_mm: float
    y_mm: float
    z_mm: float
    yaw_deg: float = 0.0


class Workspace(_Strict):
    """Where the cup may go at all, besides what the joints allow."""

    min_radius_mm: float = Field(
        150.0, ge=0, description="keep-out around the J1 axis (the column and its cables)"
    )
    x_min_mm: float = -5000.0
    x_max_mm: float = 5000.0
    y_min_mm: float = -5000.0
    y_max_mm: float = 5000.0


class ForbiddenZone(_Strict):
    """An axis-aligned box in the arm frame that no part of the arm or its load may enter
    (a guard post, the camera's gantry, the conveyor's frame)."""

    id: ArmId
    min_mm: tuple[float, float, float] = Field(description="[x, y, z] of the lowest corner")
    max_mm: tuple[float, float, float] = Field(description="[x, y, z] of the highest corner")

    @model_validator(mode="after")
    def _ordered(self) -> ForbiddenZone:
        for axis, lo, hi in zip("xyz", self.min_mm, self.max_mm, strict=True):
            if not lo < hi:
                raise ValueError(f"zone {self.id!r}: min {axis} ({lo}) must be below max ({hi})")
        return self


class ArmBelt(_Strict):
    """The induction belt under the arm, in the arm frame."""

    direction: Literal["+x", "-x"] = Field(description="direction of travel in the arm frame")
    centre_y_mm: float = Field(description="y of the belt's centreline")
    width_mm: float = Field(gt=0, le=3000)
    surface_z_mm: float = Field(description="z of the belt's surface (below the arm: negative)")
    counts_per_mm: float = Field(gt=0, description="encoder counts per mm of belt travel")
    min_speed_mm_s: float = Field(0.0, ge=0, description="slowest speed the arm must track")
    max_speed_mm_s: float = Field(gt=0, description="fastest speed the arm must track")
    nominal_speed_mm_s: float = Field(gt=0, description="belt speed in normal operation")
    encoder: int = Field(0, ge=0, le=255, description="encoder index on the arm's MCU")

    @property
    def sign(self) -> float:
        """+1 when the belt coordinate u is x, -1 when it is -x."""
        return 1.0 if self.direction == "+x" else -1.0

    @model_validator(mode="after")
    def _speeds(self) -> ArmBelt:
        if not self.min_speed_mm_s <= self.nominal_speed_mm_s <= self.max_speed_mm_s:
            raise ValueError(
                f"nominal_speed_mm_s ({self.nominal_speed_mm_s}) must lie between "
                f"min_speed_mm_s ({self.min_speed_mm_s}) and max_speed_mm_s "
                f"({self.max_speed_mm_s})"
            )
        return self


class CameraCalibration(_Strict):
    """Where the camera's belt coordinates lie in the arm frame.

    The vision calibration (a homography) turns pixels into mm on the belt plane: ``along``
    in the direction of travel and ``across`` to the left of it. This places that plane's
    origin on the belt under the arm: u = along + along_offset_mm (rotated by yaw_deg for a
    camera mounted slightly askew), y = centre + across + across_offset_mm.
    """

    along_offset_mm: float = Field(
        description="belt coordinate u of the camera's along=0 (upstream of the arm: negative "
        "u for '+x' belts is usual)"
    )
    across_offset_mm: float = Field(0.0, description="camera across=0 minus the belt centreline")
    yaw_deg: float = Field(0.0, ge=-10, le=10, description="camera axes vs belt axes")
    count_offset: int = Field(
        0,
        description="counts to add to a frame's encoder count (exposure before the count "
        "was latched: negative)",
    )
    silent_ms: int = Field(
        1000,
        ge=50,
        le=60_000,
        description="no frame for this long: the camera is silent and nothing more is "
        "picked (a parcel is never picked blind)",
    )


class TrackingWindow(_Strict):
    """Where along the belt the arm may pick (belt coordinate u, mm)."""

    upstream_mm: float = Field(description="the first u where the cup may meet a parcel")
    downstream_mm: float = Field(description="the last u where the cup may still hold a parcel")
    pick_tolerance_mm: float = Field(
        10.0, gt=0, le=100, description="largest allowed miss of the cup vs the grasp point"
    )
    hover_mm: float = Field(
        60.0, gt=0, le=500, description="the cup approaches this high above the parcel's top"
    )
    lift_mm: float = Field(
        100.0,
        gt=0,
        le=1000,
        description="a lifted parcel's bottom clears the belt by this before it leaves the "
        "belt (less where the quill's top ends)",
    )
    lead_ms: float = Field(
        60.0,
        ge=5,
        le=2000,
        description="a move starts at least this long after it is planned (host to MCU "
        "latency and queueing)",
    )
    max_retries: int = Field(1, ge=0, le=5, description="picks tried again after a miss")
    setpoint_ms: float = Field(
        8.0, ge=1, le=50, description="period of the timed joint setpoints sent to the MCU"
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackingWindow:
        if not self.upstream_mm < self.downstream_mm:
            raise ValueError(
                f"upstream_mm ({self.upstream_mm}) must be below downstream_mm "
                f"({self.downstream_mm}): u grows in the direction of travel"
            )
        return self


class ClassRule(_Strict):
    """What the cup may pick of one parcel class (as the vision pipeline names classes)."""

    pickable: bool = Field(description="false: always leave it to pass (e.g. 'irregular')")
    kg_per_litre: float = Field(
        0.25, gt=0, le=5, description="density used to estimate the weight from the size"
    )
    face_flatness: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of the top face flat enough for the cup (a polybag's ~0.6)",
    )
    default_height_mm: float | None = Field(
        None,
        gt=0,
        le=2000,
        description="height assumed when no height sensor measured the parcel (null: a "
        "parcel of this class without a measured height is not picked)",
    )


def _default_classes() -> dict[str, ClassRule]:
    return {
        "box": ClassRule(pickable=True, kg_per_litre=0.2),
        "envelope": ClassRule(pickable=True, kg_per_litre=0.5, default_height_mm=15),
        "polybag": ClassRule(pickable=True, kg_per_litre=0.25, face_flatness=0.6),
        "irregular": ClassRule(pickable=False),
    }


class SuctionConfig(_Strict):
    """The suction cup, its vacuum sensor thresholds and what it can hold."""

    cup_diameter_mm: float = Field(gt=0, le=500)
    max_load_kg: float = Field(gt=0, le=100, description="the cup's rated holding force / g")
    grip_kpa: float = Field(
        gt=0, le=100, description="vacuum at or above this (kPa below ambient) = sealed"
    )
    drop_kpa: float = Field(
        gt=0, le=100, description="vacuum below this while carrying = the parcel is lost"
    )
    grip_confirm_ms: float = Field(
        40.0, ge=0, le=2000, description="sealed this long before the lift"
    )
    grip_window_ms: float = Field(
        250.0,
        gt=0,
        le=5000,
        description="the cup tracks the parcel on its top at most this long waiting for the "
        "seal; then it lifts off empty and may retry",
    )
    press_mm: float = Field(
        8.0,
        ge=0,
        le=100,
        description="the cup is driven this far below the parcel's top (its bellows give): "
        "a height error within this still seals",
    )
    release_ms: float = Field(80.0, ge=0, le=2000, description="dwell at the place pose")
    edge_margin_mm: float = Field(
        10.0, ge=0, le=200, description="the cup's rim keeps this far from the face's edge"
    )
    min_top_mm: float = Field(
        30.0, gt=0, description="a parcel lower than this is not picked (the cup hits the belt)"
    )
    max_height_mm: float = Field(600.0, gt=0, description="taller parcels are left to pass")
    vacuum_kpa: float = Field(
        60.0,
        gt=0,
        le=100,
        description="vacuum a sealed cup holds on a tight face (kPa below ambient): the "
        "vacuum generator's level at the cup, as measured or from its datasheet",
    )
    effective_diameter_mm: float | None = Field(
        None,
        gt=0,
        le=500,
        description="the cup's effective suction diameter from its datasheet (a bellows "
        "cup's is smaller than its lip); null: cup_diameter_mm",
    )
    friction: float = Field(
        0.5,
        gt=0,
        le=2,
        description="friction coefficient of the cup's lip on the parcel (cardboard ~0.5, "
        "film or a wet face less): the shear the cup holds per N of holding force",
    )
    safety_factor: float = Field(
        2.0,
        ge=1,
        le=10,
        description="the holding force used is the theoretical one (vacuum x area) divided "
        "by this: leaks, the weight estimate's error, dust, worn lips",
    )
    classes: dict[str, ClassRule] = Field(
        default_factory=_default_classes,
        description="per class; a class not named here is not picked",
    )

    @property
    def hold_n(self) -> float:
        """The holding force the arm may use, N: vacuum x effective area / safety factor."""
        d = self.effective_diameter_mm or self.cup_diameter_mm
        area_m2 = math.pi / 4 * (d / 1000) ** 2
        return self.vacuum_kpa * 1000 * area_m2 / self.safety_factor

    @model_validator(mode="after")
    def _thresholds(self) -> SuctionConfig:
        if not self.grip_kpa < self.vacuum_kpa:
            raise ValueError(
                f"grip_kpa ({self.grip_kpa}) must be below vacuum_kpa ({self.vacuum_kpa}): "
                "a sealed cup must reach the grip threshold"
            )
        if not self.drop_kpa <= self.grip_kpa:
            raise ValueError(
                f"drop_kpa ({self.drop_kpa}) must be at most grip_kpa ({self.grip_kpa})"
            )
        if self.grip_confirm_ms >= self.grip_window_ms:
            raise ValueError(
                f"grip_confirm_ms ({self.grip_confirm_ms}) must be below grip_window_ms "
                f"({self.grip_window_ms})"
            )
        return self


class Destination(_Strict):
    """A chute or tote the arm places into."""

    id: ArmId
    kind: Literal["chute", "tote"] = "chute"
    place: Pose = Field(description="the cup's pose when it releases (parcel bottom clear)")
    sensor_input: int | None = Field(
        None, ge=0, le=255, description="MCU input of the entry sensor that confirms a place"
    )
    confirm_ms: float = Field(
        800.0, gt=0, le=10_000, description="the sensor must see the parcel within this"
    )


class ArmMcu(_Strict):
    """The arm's MCU (an ``mcus[]`` entry) and what is wired to it."""

    name: str = Field("main", description="name of the MCU (mcus[].name): port, baud, watchdog")
    suction_output: int = Field(ge=0, le=255, description="vacuum generator valve")
    blowoff_output: int | None = Field(
        None, ge=0, le=255, description="blow-off valve that releases quickly (null: none)"
    )
    vacuum_input: int = Field(ge=0, le=255, description="analog vacuum sensor channel")
    estop_input: int = Field(ge=0, le=255, description="e-stop chain monitor (1 = pressed)")
    curtain_input: int = Field(
        ge=0, le=255, description="light curtain / door interlock (1 = broken / open)"
    )


class ArmSafety(SafetyConfig):
    """The shared safety state machine's settings (e-stop stop time, device loss), and the
    arm's own: the light curtain and reduced speed."""

    curtain_stop_ms: int = Field(
        300,
        ge=10,
        le=5000,
        description="motion must be at standstill this long after the curtain breaks",
    )
    reduced_speed_mm_s: float = Field(
        250.0,
        gt=0,
        le=2000,
        description="the cup's speed limit in reduced-speed mode (ISO 10218-1: 250 mm/s)",
    )


class ArmConfig(_Strict):
    """A sorting arm: a SCARA with a suction cup over an induction belt."""

    model: str = Field("", description="the arm, free text (e.g. '20 kg SCARA, 1000 mm reach')")
    geometry: ScaraGeometry
    joints: ScaraJoints
    workspace: Workspace = Field(default_factory=Workspace)
    forbidden_zones: list[ForbiddenZone] = Field(default_factory=list)
    zone_clearance_mm: float = Field(
        30.0, ge=0, le=500, description="the cup and its load keep this far from every zone"
    )
    link_z_mm: float = Field(
        100.0, description="z of the links' underside: a zone reaching above it hits a link"
    )
    belt: ArmBelt
    camera: CameraCalibration
    suction: SuctionConfig
    tracking: TrackingWindow
    home: Pose = Field(description="where the arm waits, clear of the belt")
    pass_id: ArmId = Field(
        "pass", description="the id of 'leave it on the belt' (to the belt's end: reject)"
    )
    destinations: list[Destination] = Field(min_length=1)
    routing: list[RoutingRule] = Field(
        default_factory=list, description="used when the brain is late or offline"
    )
    brain_deadline_ms: int = Field(
        300, ge=1, le=10_000, description="after this the routing table decides instead"
    )
    mcu: ArmMcu
    safety: ArmSafety = Field(default_factory=ArmSafety)

    def board_problems(self, sections: dict[str, object]) -> list[str]:
        """What in this section names something the rest of the board config lacks (the
        runtime calls this with the shared sections already validated)."""
        problems: list[str] = []
        mcus = sections.get("mcus")
        if isinstance(mcus, list):
            names = [getattr(m, "name", None) for m in mcus]
            if self.mcu.name not in names:
                listed = ", ".join(str(n) for n in names) or "none"
                problems.append(
                    f"arm.mcu.name: {self.mcu.name!r} is not an MCU of this board (mcus: {listed})"
                )
        return problems

    def destination(self, dest_id: str) -> Destination | None:
        return next((d for d in self.destinations if d.id == dest_id), None)

    # Each check sits on the field it is about, so that an error points at that key's
    # line; the fields it needs are declared (and so validated) before it.
    @field_validator("forbidden_zones")
    @classmethod
    def _zone_ids(cls, zones: list[ForbiddenZone]) -> list[ForbiddenZone]:
        ids = [z.id for z in zones]
        for i, zid in enumerate(ids):
            if zid in ids[:i]:
                raise ValueError(f"zone id {zid!r} appears more than once")
        return zones

    @field_validator("tracking")
    @classmethod
    def _window_in_reach(cls, tr: TrackingWindow, info: ValidationInfo) -> TrackingWindow:
        kin, belt, suction = _kin(info), info.data.get("belt"), info.data.get("suction")
        if kin is None or not isinstance(belt, ArmBelt) or not isinstance(suction, SuctionConfig):
            return tr  # an earlier error is reported where it is
        j3 = kin.limits.lo[2], kin.limits.hi[2]
        top = belt.surface_z_mm + suction.min_top_mm
        if not j3[0] <= top <= j3[1]:
            raise ValueError(
                f"the lowest parcel's top (belt.surface_z_mm {belt.surface_z_mm} + "
                f"suction.min_top_mm {suction.min_top_mm}) is outside the quill's range j3 "
                f"[{j3[0]}, {j3[1]}]"
            )
        half = belt.width_mm / 2 - suction.cup_diameter_mm / 2
        for where, u in (("upstream_mm", tr.upstream_mm), ("downstream_mm", tr.downstream_mm)):
            for y in (belt.centre_y_mm - half, belt.centre_y_mm + half):
                x = u * belt.sign
                why = kin.unreachable(x, y, top, 0.0)
                if why is not None:
                    raise ValueError(
                        f"{where} ({u}): the belt at x={x:.0f}, y={y:.0f} mm is out of the "
                        f"arm's reach: {why}"
                    )
        return tr

    @field_validator("home")
    @classmethod
    def _home_in_reach(cls, home: Pose, info: ValidationInfo) -> Pose:
        kin = _kin(info)
        why = None if kin is None else kin.unreachable(home.x_mm, home.y_mm, home.z_mm, 0.0)
        if why is not None:
            raise ValueError(f"unreachable: {why}")
        return home

    @field_validator("destinations")
    @classmethod
    def _destinations(cls, dests: list[Destination], info: ValidationInfo) -> list[Destination]:
        from edge.arm.zones import point_in_zones  # zones reads this module's types

        seen = {info.data.get("pass_id", "pass")}
        for i, d in enumerate(dests):
            if d.id in seen:
                raise ValueError(f"[{i}] id {d.id!r} appears more than once (or is pass_id)")
            seen.add(d.id)
        kin = _kin(info)
        zones = info.data.get("forbidden_zones") or []
        for i, d in enumerate(dests):
            p = d.place
            why = None if kin is None else kin.unreachable(p.x_mm, p.y_mm, p.z_mm, 0.0)
            if why is not None:
                raise ValueError(f"[{i}] {d.id!r}: place pose unreachable: {why}")
            zone = point_in_zones((p.x_mm, p.y_mm, p.z_mm), zones, 0.0)
            if zone is not None:
                raise ValueError(f"[{i}] {d.id!r}: place pose inside forbidden zone {zone!r}")
        return dests

    @field_validator("routing")
    @classmethod
    def _routing_known(cls, rules: list[RoutingRule], info: ValidationInfo) -> list[RoutingRule]:
        dests = info.data.get("destinations")
        if dests is None:
            return rules
        known = {d.id for d in dests} | {info.data.get("pass_id", "pass")}
        for i, rule in enumerate(rules):
            if rule.chute not in known:
                raise ValueError(
                    f"rule {i}: destination {rule.chute!r} does not exist; known: "
                    f"{', '.join(sorted(known))}"
                )
        return rules


@dataclass(frozen=True)
class _Parts:
    geometry: ScaraGeometry
    joints: ScaraJoints
    workspace: Workspace


def _kin(info: ValidationInfo) -> Scara | None:
    """The kinematics of the fields validated so far; None if one of them failed."""
    from edge.arm.kinematics import Scara  # kinematics reads this module's types

    g, j = info.data.get("geometry"), info.data.get("joints")
    w = info.data.get("workspace")
    if not isinstance(g, ScaraGeometry) or not isinstance(j, ScaraJoints):
        return None
    if not isinstance(w, Workspace):
        return None
    return Scara(_Parts(g, j, w))
