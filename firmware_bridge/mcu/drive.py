"""Host API of the vehicle drive's MCU messages (docs/mcu-protocol.md section 13) over an
``McuLink``.

The host plans; the MCU turns the wheels. ``VehicleDrive`` refuses firmware without the
drive's commands (by name), sends the drive's setup (re-sent by the link after every reset
and replug), queues wheel velocity setpoints at MCU clock values (converted from host times
by the link's clock sync), and turns the MCU's wheel reports, stops and safety changes into
typed events. SI units here (m/s, m/s2); the wire carries um/s and encoder counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.identity import require_commands
from firmware_bridge.mcu.link import McuLink

DRIVE_COMMANDS = (
    "config_drive", "queue_wheel_setpoint", "stop_drive", "resume_drive", "get_drive",
    "config_wheel_report",
)  # fmt: skip
DRIVE_REMEDY = "flash the vehicle drive firmware"
STATE_NAMES = ("idle", "waiting", "moving", "stopping", "halted")
I32_MAX = 2**31 - 1


def to_um_s(speed_m_s: float) -> int:
    """m/s to the protocol's i32 um/s (refused beyond its range, never wrapped)."""
    v = round(speed_m_s * 1e6)
    if not -I32_MAX <= v <= I32_MAX:
        raise ValueError(f"wheel speed {speed_m_s:g} m/s does not fit the protocol's i32 um/s")
    return v


def _pin(pin: int | None) -> int:
    return m.NO_PIN if pin is None else pin


@dataclass(frozen=True)
class WheelReport:
    """Encoder counts and wheel speeds (m/s) at an MCU clock value; safety bits."""

    clock: int
    left_count: int
    right_count: int
    left: float
    right: float
    safety: int

    @property
    def field_violated(self) -> bool:
        return bool(self.safety & m.SAFETY_FIELD)

    @property
    def estop(self) -> bool:
        return bool(self.safety & m.SAFETY_ESTOP)


@dataclass(frozen=True)
class DriveState(WheelReport):
    state: int = 0
    reason: int = 0xFF
    queued: int = 0
    free: int = 0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state] if self.state < len(STATE_NAMES) else str(self.state)


@dataclass(frozen=True)
class DriveStopped:
    """The MCU began a stop at ``clock`` (counts then): underrun, field, watchdog, ..."""

    reason: int
    clock: int
    left_count: int
    right_count: int

    @property
    def reason_name(self) -> str:
        return m.DRIVE_STOP_NAMES.get(self.reason, f"reason {self.reason}")


@dataclass(frozen=True)
class BatteryReport:
    """The BMS as the drive MCU reads it: state of charge (%), volts, amps (+ charging)."""

    clock: int
    percent: float
    voltage: float
    current: float
    charging: bool


@dataclass(frozen=True)
class SafetyChanged:
    """The safety inputs' state changed at ``clock`` (bits: SAFETY_FIELD, SAFETY_ESTOP)."""

    safety: int
    clock: int
    left_count: int
    right_count: int

    @property
    def field_violated(self) -> bool:
        return bool(self.safety & m.SAFETY_FIELD)

    @property
    def estop(self) -> bool:
        return bool(self.safety & m.SAFETY_ESTOP)


class VehicleDrive:
    """The drive MCU's commands on one link; construct after ``link.connect()``."""

    def __init__(
        self,
        link: McuLink,
        *,
        counts_per_m: float,
        max_wheel_speed: float,
        max_wheel_accel: float,
        stop_decel: float,
        left: int = 0,
        right: int = 1,
        field_pin: int | None = None,
        field_level: int = 0,
        estop_pin: int | None = None,
        estop_level: int = 0,
        report_ms: int = 20,
        battery_report_ms: int = 0,
    ) -> None:
        if left == right:
            raise ValueError("left and right must be different wheel channels")
        if not 0 < counts_per_m < 2**32:
            raise ValueError(f"counts_per_m {counts_per_m}: must be 1 .. 2^32-1")
        self.link = link
        self.counts_per_m = counts_per_m
        self.config = {
            "left": left, "right": right, "counts_per_m": round(counts_per_m),
            "max_speed": to_um_s(max_wheel_speed), "max_accel": to_um_s(max_wheel_accel),
            "stop_decel": to_um_s(stop_decel), "field_pin": _pin(field_pin),
            "field_level": field_level, "estop_pin": _pin(estop_pin),
            "estop_level": estop_level,
        }  # fmt: skip
        self.report_ms = report_ms
        self.battery_report_ms = battery_report_ms

    async def setup(self) -> None:
        """Refuse firmware without the drive's commands (by name), then configure the drive
        and its wheel reports; the link re-sends both after every reset and replug."""
        ident = self.link.identity
        if ident is None:
            raise RuntimeError(f"{self.link.port}: connect the link before the drive's setup")
        require_commands(ident, DRIVE_COMMANDS, self.link.port, DRIVE_REMEDY)
        await self.link.add_setup(("config_drive",), "config_drive", **self.config)
        await self.link.add_setup(
            ("config_wheel_report",), "config_wheel_report", interval_ms=self.report_ms
        )
        if self.battery_report_ms:
            require_commands(ident, ("config_battery_report",), self.link.port, DRIVE_REMEDY)
            await self.link.add_setup(
                ("config_battery_report",), "config_battery_report",
                interval_ms=self.battery_report_ms,
            )  # fmt: skip

    def clock_at(self, host_t: float) -> int:
        """The MCU clock at a host monotonic time (the link's clock sync)."""
        return self.link.clock.clock_at(host_t)

    def queue_setpoint_nowait(
        self, host_t: float, left: float, right: float, hold_s: float
    ) -> asyncio.Future[m.Message]:
        """Wheel speeds (m/s) from host time ``host_t`` (converted to the MCU clock) for at
        most ``hold_s``; the future fails with McuCommandError if the MCU refused it
        (halted: code 7, in the past: 3, queue full: 8). Pipelined."""
        # a host time before the MCU's boot is clock 0: in the past, refused by the MCU
        return self.link.request_nowait(
            "queue_wheel_setpoint", clock=max(0, self.clock_at(host_t)), left=to_um_s(left),
            right=to_um_s(right), hold_ms=max(1, min(1000, round(hold_s * 1000))),
        )  # fmt: skip

    async def queue_setpoint(self, host_t: float, left: float, right: float, hold_s: float) -> None:
        await self.queue_setpoint_nowait(host_t, left, right, hold_s)

    async def state(self) -> DriveState:
        f = (await self.link.request("get_drive")).fields
        return DriveState(
            f["clock"], f["left_count"], f["right_count"], f["left"] / 1e6, f["right"] / 1e6,
            f["safety"], f["state"], f["reason"], f["queued"], f["free"],
        )  # fmt: skip

    async def stop(self) -> None:
        """A controlled stop at the configured stop deceleration; the queue is emptied."""
        await self.link.request("stop_drive")

    async def resume(self) -> None:
        """Leave the halted state (refused, McuCommandError code 7, while a safety input is
        unsafe)."""
        await self.link.request("resume_drive")

    def on_report(self, callback: Callable[[WheelReport], None]) -> None:
        def handle(msg: m.Message) -> None:
            if msg.name == "wheel_report":
                f = msg.fields
                callback(WheelReport(f["clock"], f["left_count"], f["right_count"],
                                     f["left"] / 1e6, f["right"] / 1e6, f["safety"]))  # fmt: skip

        self.link.on_event(handle)

    def on_stopped(self, callback: Callable[[DriveStopped], None]) -> None:
        def handle(msg: m.Message) -> None:
            if msg.name == "drive_stopped":
                f = msg.fields
                callback(DriveStopped(f["reason"], f["clock"], f["left_count"], f["right_count"]))

        self.link.on_event(handle)

    def on_safety(self, callback: Callable[[SafetyChanged], None]) -> None:
        def handle(msg: m.Message) -> None:
            if msg.name == "safety_changed":
                f = msg.fields
                callback(SafetyChanged(f["safety"], f["clock"], f["left_count"], f["right_count"]))

        self.link.on_event(handle)

    def on_battery(self, callback: Callable[[BatteryReport], None]) -> None:
        def handle(msg: m.Message) -> None:
            if msg.name == "battery_report":
                f = msg.fields
                callback(BatteryReport(f["clock"], f["soc_permille"] / 10, f["voltage_mv"] / 1000,
                                       f["current_ma"] / 1000, bool(f["charging"])))  # fmt: skip

        self.link.on_event(handle)
