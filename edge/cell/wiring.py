"""How the cell reaches its devices: which PLC tags run the belt, which line devices read
labels and where they sit, where the camera looks, what the brain is asked.

Names here refer to other sections of the board config (``modbus.devices``, ``line_devices``,
``vision``); the board model checks that every name resolves, so a typo fails at load time
with its location rather than as a silent "no e-stop input" at run time.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlcBinding(_Strict):
    """The conveyor PLC (a ``modbus.devices`` entry) and the tags the cell uses on it."""

    device: str = Field(description="name of the Modbus device (modbus.devices[].name)")
    run: str = Field("run", description="read-write bool tag: 1 runs the belt")
    speed_setpoint: str | None = Field(
        "speed-setpoint", description="read-write tag of the belt speed setpoint (null: none)"
    )
    setpoint_units_per_mm_s: float = Field(
        0.001, gt=0, description="setpoint tag units per mm/s (0.001 for a tag in m/s)"
    )
    estop: str = Field("estop", description="bool tag: 1 while the e-stop is pressed")
    speed: str = Field("speed", description="tag of the measured belt speed")
    speed_units_per_mm_s: float = Field(
        0.001, gt=0, description="speed tag units per mm/s (0.001 for a tag in m/s)"
    )
    moving_below_mm_s: float = Field(
        5.0, gt=0, description="the belt counts as stopped below this speed"
    )
    lost_after_ms: int = Field(
        500,
        ge=0,
        le=60_000,
        description="the PLC counts as lost after this long without a good read (0: at the "
        "first failed poll); shorter outages keep the last status (the e-stop is hardwired)",
    )
    chute_full: dict[str, str] = Field(
        default_factory=dict, description="chute id -> bool tag that reports it full"
    )
    heartbeat: str | None = Field(
        None,
        description="read-write integer tag the node writes a changing value to every "
        "heartbeat_ms; configure the PLC's communication watchdog on it, so the PLC stops "
        "the belt when the node dies or hangs (null: no heartbeat; the belt then runs on "
        "while the node is dead)",
    )
    heartbeat_ms: int = Field(
        100, ge=10, le=10_000, description="period of the heartbeat write (ms)"
    )
    stop_retry_ms: int = Field(
        100,
        ge=10,
        le=5_000,
        description="a belt stop the PLC did not take is written again after this long "
        "(doubling up to 1 s) until the PLC confirms it",
    )
    ramp: str | None = Field(
        None,
        description="read-write tag of the drive's acceleration/deceleration ramp (null: the "
        "PLC's own ramp for every stop). With it, a fault's stop (PLC or MCU lost, a belt "
        "found moving) writes quick_stop_mm_s2 just after clearing run, so the belt stops "
        "within safety.estop_stop_ms as an e-stop does; a start writes run_ramp_mm_s2 back",
    )
    ramp_units_per_mm_s2: float = Field(
        1.0, gt=0, description="ramp tag units per mm/s^2 (1 for a tag in mm/s^2)"
    )
    run_ramp_mm_s2: float = Field(
        1000.0, gt=0, description="the ramp for starts and operators' stops (mm/s^2)"
    )
    quick_stop_mm_s2: float = Field(
        10000.0, gt=0, description="the ramp of a fault's stop (mm/s^2)"
    )


class ScannerBinding(_Strict):
    """A fixed label scanner (a ``line_devices`` entry) and where it reads on the belt."""

    device: str = Field(description="name of the line device (line_devices[].name)")
    position_mm: float = Field(ge=0, description="the point on the belt the scanner reads")
    read_window_mm: float = Field(
        600.0,
        ge=0,
        description="its reports come in passing order, each at most this much belt travel "
        "after the parcel's middle passed it (0: match by position only)",
    )
    name: str = Field("scanner", description="label source name shown in parcel records")


class CameraBinding(_Strict):
    """The camera over the belt (the ``vision`` section). Its calibration maps image pixels
    to belt millimetres; ``offset_mm`` moves that frame onto the cell's belt coordinates."""

    offset_mm: float = Field(
        0.0, description="belt position of the calibration's x = 0 (mm from the infeed)"
    )
    max_fps: float = Field(30.0, gt=0, le=240, description="frames processed per second, at most")
    name: str = Field("camera", description="label source name shown in parcel records")


class BrainBinding(_Strict):
    """The logistics brain's routing protocol on the fleet link (docs/cell.md)."""

    request_event: str = Field("route_request", description="event kind a route request uses")
    answer_command: str = Field("route", description="command name the brain answers with")
    chute_prefix: str = Field(
        "", description="the brain names chutes by number: answer 7 -> chute '<prefix>7'"
    )
    lost_after_misses: int = Field(
        3, ge=1, description="this many deadlines missed in a row: the brain counts as lost"
    )
