"""The `amr:` section of a board config with `machine: amr`: one VDA 5050 vehicle.

Units are the standard's (metres, radians, seconds, kilograms) so a value can be compared with
an order's ``allowedDeviationXY`` or an edge's ``maxSpeed`` without conversion. Every check that
can be made on the config alone is made here: a serial number that would break the MQTT topic,
a state interval longer than the 30 s the standard allows, a deviation the drive cannot meet.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

VDA5050_VERSION = "2.1.0"

# VDA 5050 2.1 section 6.2: manufacturer and serialNumber become MQTT topic levels; the
# standard restricts serialNumber to A-Z a-z 0-9 _ . : - (no '/', '+', '#').
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_topic_level(value: str) -> str:
    if not _TOPIC_LEVEL.match(value):
        raise ValueError(
            "expected 1-64 of A-Z a-z 0-9 _ . : - (it becomes an MQTT topic level; "
            "VDA 5050 allows no other characters)"
        )
    return value


def _check_interface(value: str) -> str:
    if not _INTERFACE.match(value):
        raise ValueError("expected 1-64 of A-Z a-z 0-9 _ . - (the first MQTT topic level)")
    return value


TopicLevel = Annotated[str, AfterValidator(_check_topic_level)]
InterfaceName = Annotated[str, AfterValidator(_check_interface)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vda5050Config(_Strict):
    """Who the vehicle is to the master control and how often it reports."""

    interface_name: InterfaceName = Field(
        "uagv", description="first topic level: <interfaceName>/v2/<manufacturer>/<serialNumber>"
    )
    manufacturer: TopicLevel = Field(description="manufacturer as the master control knows it")
    serial_number: TopicLevel = Field(description="unique serial number of this vehicle")
    state_interval_s: float = Field(
        30.0,
        gt=0,
        le=30.0,
        description="state is published on every relevant change and at least this often "
        "(VDA 5050: at most 30 s)",
    )
    visualization_interval_s: float | None = Field(
        1.0,
        ge=0.02,
        le=60.0,
        description="visualization (position and velocity) period; null: not published",
    )
    min_state_interval_s: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="changes closer together than this are merged into one state message "
        "(0: every change is its own message)",
    )


class MapConfig(_Strict):
    """A map the vehicle knows; an order on any other map is refused (noRouteError)."""

    id: str = Field(min_length=1, max_length=128, description="mapId as the orders use it")
    version: str = Field("1", min_length=1, max_length=64, description="mapVersion")
    description: str = Field("", description="free text for operators")


class GeometryConfig(_Strict):
    """Footprint and wheels of a differential-drive vehicle (also the factsheet's values)."""

    length_m: float = Field(gt=0, le=20, description="outer length, front to back")
    width_m: float = Field(gt=0, le=10, description="outer width")
    height_m: float = Field(0.4, gt=0, le=10, description="height without load")
    wheel_track_m: float = Field(gt=0, le=10, description="distance between the drive wheels")
    wheel_radius_m: float = Field(gt=0, le=1, description="drive wheel radius")
    encoder_counts_per_rev: int = Field(
        4096, ge=1, le=10_000_000, description="wheel encoder counts per wheel revolution"
    )

    @model_validator(mode="after")
    def _track_fits(self) -> GeometryConfig:
        if self.wheel_track_m > self.width_m:
            raise ValueError(
                f"wheel_track_m ({self.wheel_track_m}) is wider than the vehicle "
                f"(width_m {self.width_m})"
            )
        return self


class LimitsConfig(_Strict):
    """What the drive never exceeds, whatever an order's edge allows."""

    max_speed_m_s: float = Field(1.5, gt=0, le=10)
    max_accel_m_s2: float = Field(0.5, gt=0, le=10)
    max_decel_m_s2: float = Field(1.0, gt=0, le=20, description="service braking")
    max_angular_speed_rad_s: float = Field(1.5, gt=0, le=20)
    max_angular_accel_rad_s2: float = Field(2.0, gt=0, le=50)
    max_load_kg: float = Field(100.0, ge=0, le=100_000)


class DeviationConfig(_Strict):
    """Where the vehicle must be, and how sure it must be of it."""

    first_node_xy_m: float = Field(
        0.5,
        gt=0,
        le=10,
        description="a new order's first node must be within this distance of the vehicle "
        "when the node gives no allowedDeviationXY (else within that); else the order is "
        "refused (orderError)",
    )
    first_node_theta_rad: float = Field(
        math.pi,
        gt=0,
        le=math.pi,
        description="likewise for heading, when the first node fixes a theta and gives no "
        "allowedDeviationTheta",
    )
    default_xy_m: float = Field(
        0.05, gt=0, le=5, description="arrival tolerance when a node gives no allowedDeviationXY"
    )
    default_theta_rad: float = Field(
        0.05,
        gt=0,
        le=math.pi,
        description="arrival tolerance when a node gives no allowedDeviationTheta",
    )
    max_uncertainty_m: float = Field(
        0.10,
        gt=0,
        le=5,
        description="localisation uncertainty beyond which the vehicle raises an error and "
        "stops (floor codes missed for too long)",
    )


class DriveConfig(_Strict):
    """The drive MCU (an entry of the board's ``mcus:`` by name) and its channels."""

    mcu: str = Field("drive", description="name of the MCU (mcus[].name) that drives the wheels")
    left_wheel: int = Field(0, ge=0, le=7, description="wheel channel of the left wheel")
    right_wheel: int = Field(1, ge=0, le=7, description="wheel channel of the right wheel")
    setpoint_period_ms: int = Field(
        20, ge=2, le=200, description="wheel velocity setpoints are scheduled this far apart"
    )
    lookahead_ms: int = Field(
        100,
        ge=10,
        le=2000,
        description="setpoints queued ahead on the MCU clock; the MCU stops when they run out",
    )

    @model_validator(mode="after")
    def _distinct_wheels(self) -> DriveConfig:
        if self.left_wheel == self.right_wheel:
            raise ValueError("left_wheel and right_wheel must be different channels")
        if self.lookahead_ms < 2 * self.setpoint_period_ms:
            raise ValueError(
                f"lookahead_ms ({self.lookahead_ms}) must hold at least two setpoints "
                f"(2 x setpoint_period_ms = {2 * self.setpoint_period_ms})"
            )
        return self


class SafetyInputsConfig(_Strict):
    """Safety inputs wired to the drive MCU: they stop the wheels there, then are reported."""

    estop_input: int | None = Field(
        0, ge=0, le=255, description="MCU input of the e-stop circuit (null: none wired)"
    )
    estop_active_low: bool = Field(True, description="a broken wire reads as pressed")
    protective_field_input: int | None = Field(
        1,
        ge=0,
        le=255,
        description="MCU input of the safety lidar's OSSD (protective field; null: none)",
    )
    protective_field_active_low: bool = Field(True, description="OSSD off = field violated")
    stop_ms: int = Field(
        500, ge=10, le=10_000, description="the vehicle must stand still this long after a stop"
    )

    @model_validator(mode="after")
    def _distinct_inputs(self) -> SafetyInputsConfig:
        if self.estop_input is not None and self.estop_input == self.protective_field_input:
            raise ValueError("estop_input and protective_field_input must be different inputs")
        return self


class BatteryConfig(_Strict):
    """Battery thresholds; the master control decides where to charge, the vehicle warns."""

    capacity_wh: float = Field(1000.0, gt=0, description="nominal capacity")
    low_percent: float = Field(
        20.0, ge=0, le=100, description="below this: a WARNING error batteryLow"
    )
    critical_percent: float = Field(
        5.0,
        ge=0,
        le=100,
        description="below this: a FATAL error batteryCritical; new orders are refused",
    )

    @model_validator(mode="after")
    def _ordered(self) -> BatteryConfig:
        if self.critical_percent > self.low_percent:
            raise ValueError(
                f"critical_percent ({self.critical_percent}) must not exceed low_percent "
                f"({self.low_percent})"
            )
        return self


class FloorCodeConfig(_Strict):
    """The downward camera that reads 2D codes on the floor at nodes (localisation)."""

    camera: str | None = Field(
        None, description="camera source (as vision's camera sources name it); null: none"
    )
    symbology: Literal["datamatrix", "qrcode"] = Field("datamatrix")


class FactsheetConfig(_Strict):
    """The descriptive parts of the VDA 5050 factsheet (the rest comes from the sections)."""

    series_name: str = Field("wolfpack-amr", min_length=1, max_length=128)
    series_description: str = Field("", max_length=512)
    agv_class: Literal["FORKLIFT", "CONVEYOR", "TUGGER", "CARRIER"] = "CARRIER"
    load_types: list[str] = Field(
        default_factory=lambda: ["TOTE"], description="load types the vehicle can carry"
    )


class AmrConfig(_Strict):
    """One VDA 5050 vehicle: identity, maps, geometry, limits, drive MCU, safety, battery."""

    vda5050: Vda5050Config
    maps: list[MapConfig] = Field(
        min_length=1, description="maps the vehicle knows; orders on others are refused"
    )
    initial_map: str | None = Field(
        None, description="map the vehicle starts on (default: the first of maps)"
    )
    geometry: GeometryConfig
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    deviation: DeviationConfig = Field(default_factory=DeviationConfig)
    drive: DriveConfig = Field(default_factory=DriveConfig)
    safety: SafetyInputsConfig = Field(default_factory=SafetyInputsConfig)
    battery: BatteryConfig = Field(default_factory=BatteryConfig)
    floor_codes: FloorCodeConfig = Field(default_factory=FloorCodeConfig)
    factsheet: FactsheetConfig = Field(default_factory=FactsheetConfig)

    @model_validator(mode="after")
    def _maps(self) -> AmrConfig:
        ids = [m.id for m in self.maps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"maps: {', '.join(dupes)} listed more than once")
        if self.initial_map is not None and self.initial_map not in ids:
            raise ValueError(f"initial_map: {self.initial_map!r} is not in maps ({', '.join(ids)})")
        return self

    @property
    def start_map(self) -> str:
        return self.initial_map if self.initial_map is not None else self.maps[0].id

    def knows_map(self, map_id: str) -> bool:
        return any(m.id == map_id for m in self.maps)
