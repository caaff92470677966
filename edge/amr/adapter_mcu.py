"""Between the vehicle machine and its drive MCU (``firmware_bridge.mcu.drive``).

Out: wheel velocity setpoints at MCU clock values (the drive core's host times, converted by
the link's clock sync), the urgent stop, ``resume_drive`` after a stop the MCU made on its
own (the MCU halts after an underrun, the watchdog, the protective field or the e-stop, and
refuses to move until resumed). In: wheel counts (odometry), the safety inputs (e-stop,
protective field), the link going down and coming back.

The MCU acts first and on its own: its e-stop and field inputs stop the wheels at its
configured stop deceleration before the host knows; its watchdog stops them when the host
falls silent; its queue stops them when setpoints run out. The node only follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from edge.amr.config import AmrConfig
from edge.amr.drive import WheelSetpoint

if TYPE_CHECKING:
    from edge.amr.node import AmrMachine
    from edge.config.board import McuConfig
    from firmware_bridge.mcu import McuLink
    from firmware_bridge.mcu.drive import (
        BatteryReport,
        DriveStopped,
        SafetyChanged,
        VehicleDrive,
        WheelReport,
    )

log = logging.getLogger("wolfpack.amr.mcu")

STOP_DECEL_M_S2 = 2.0  # the MCU's own stop ramp (e-stop, field, watchdog, underrun)
RESUME_RETRY_S = 0.2
BATTERY_REPORT_MS = 1000  # the BMS through the drive MCU, once a second
CHARGE_OUTPUT = 0  # MCU output of the charging contactor (safe value 0: open)


class DriveMcu:
    """One vehicle's drive MCU; ``run`` is the supervised task that connects it."""

    def __init__(self, mcu_cfg: McuConfig, cfg: AmrConfig, machine: AmrMachine) -> None:
        self.mcu_cfg = mcu_cfg
        self.cfg = cfg
        self.m = machine
        self.link: McuLink | None = None
        self.drive: VehicleDrive | None = None
        self.up = False
        self._safety = -1  # last safety bits seen
        self._moving_sent = False  # the last setpoint asked the wheels to turn
        self._halted = False
        self._resuming = False
        self.errors: dict[str, int] = {}
        self.battery = True  # the MCU reports the BMS (False once it refused)
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def clock_hz(self) -> float:
        if self.link is None or not self.link.clock.freq:
            return 1e6
        return float(self.link.clock.freq)

    async def run(self) -> None:
        from firmware_bridge.mcu import McuCommandError, McuLink
        from firmware_bridge.mcu.drive import VehicleDrive

        c, g, s = self.mcu_cfg, self.cfg.geometry, self.cfg.safety
        p = self.m.params
        if self.link is not None:  # the task restarted (the supervisor): a fresh link
            old, self.link = self.link, None
            self.up = False
            await old.close()
        self.link = McuLink(
            c.port,
            baud=c.baud,
            watchdog_ms=c.watchdog_ms,
            heartbeat_ms=c.heartbeat_ms,
            name=c.name,
        )
        self.link.on_state(self._on_state)
        link = self.link
        await link.connect()
        self.drive = VehicleDrive(
            link,
            counts_per_m=self.m.odometry.geometry.counts_per_m,
            max_wheel_speed=p.max_wheel_speed,
            max_wheel_accel=p.max_wheel_accel,
            stop_decel=max(STOP_DECEL_M_S2, p.max_wheel_accel),
            left=self.cfg.drive.left_wheel,
            right=self.cfg.drive.right_wheel,
            field_pin=s.protective_field_input,
            field_level=0 if s.protective_field_active_low else 1,
            estop_pin=s.estop_input,
            estop_level=0 if s.estop_active_low else 1,
            report_ms=self.cfg.drive.setpoint_period_ms,
            battery_report_ms=BATTERY_REPORT_MS if self.battery else 0,
        )
        self.drive.on_report(self._on_report)
        self.drive.on_battery(self._on_battery)
        self.drive.on_stopped(self._on_stopped)
        self.drive.on_safety(self._on_safety)
        try:
            await self.drive.setup()
        except McuCommandError as exc:
            if not (self.battery and "config_battery_report" in str(exc)):
                raise
            # a drive MCU without a BMS: the vehicle runs, its batteryState stays unknown
            log.warning(
                "the drive MCU on %s reads no battery (%s): no battery reports", c.port, exc
            )
            self.battery = False
            return await self.run()
        await link.configure_output(CHARGE_OUTPUT, safe_value=0)
        _ = g
        self._came_up()
        await asyncio.Event().wait()  # the link reconnects by itself; state changes tell us

    # ---- out --------------------------------------------------------------------------------
    def set_wheels(self, sp: WheelSetpoint) -> None:
        """Queue one setpoint (pipelined); standing still is sent once, not streamed."""
        if self.drive is None or not self.up or self._halted:
            return
        moving = sp.left != 0.0 or sp.right != 0.0
        if not moving and not self._moving_sent:
            return
        self._moving_sent = moving
        try:
            fut = self.drive.queue_setpoint_nowait(sp.at, sp.left, sp.right, sp.hold_s)
        except Exception as exc:  # the link just went down, a value out of range
            self._count(type(exc).__name__)
            return
        self._pending.add(fut)
        fut.add_done_callback(self._setpoint_done)

    def hold_still(self, now: float) -> None:
        """No pose yet: nothing to drive; the MCU's empty queue keeps the wheels still."""
        return None

    def stop_now(self) -> None:
        """The urgent stop: ``stop_drive`` is on its way before this returns."""
        self._moving_sent = False
        if self.link is None or not self.up:
            return
        with contextlib.suppress(Exception):
            fut = self.link.request_nowait("stop_drive")
            self._pending.add(fut)
            fut.add_done_callback(self._quiet_done)

    async def settle(self, timeout: float) -> None:
        pending = [f for f in self._pending if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()

    def set_charging(self, on: bool) -> None:
        """Close (or open) the charging contactor; the BMS's report says when current flows."""
        self.m.charging_requested(on)
        if self.link is None or not self.up:
            return
        with contextlib.suppress(Exception):
            fut = self.link.request_nowait("set_output", pin=CHARGE_OUTPUT, value=int(on))
            self._pending.add(fut)
            fut.add_done_callback(self._quiet_done)

    # ---- in ---------------------------------------------------------------------------------
    def _on_state(self, change: Any) -> None:
        if change.state.up:
            if self.drive is not None and not self.up:
                self._came_up()
        elif self.up:
            self.up = False
            self._moving_sent = False
            self.m.on_mcu_link(False, f"{change.state.value}: {change.reason}")

    def _came_up(self) -> None:
        self.up = True
        self._halted = False
        self._safety = -1
        self.m.on_mcu_link(True, "connected")
        self._resume()  # a fresh MCU starts idle; one after a stop may be halted

    def _on_report(self, r: WheelReport) -> None:
        self.m.on_counts(r.clock, r.left_count, r.right_count, time.monotonic())
        if r.safety != self._safety:
            self._safety_bits(r.safety)

    def _on_battery(self, r: BatteryReport) -> None:
        self.m.on_battery(r.percent, r.charging, r.voltage)

    def _on_safety(self, ev: SafetyChanged) -> None:
        if ev.safety != self._safety:
            self._safety_bits(ev.safety)

    def _safety_bits(self, bits: int) -> None:
        from firmware_bridge.mcu import messages as msg

        was = self._safety
        self._safety = bits
        self.m.on_inputs(bool(bits & msg.SAFETY_ESTOP), bool(bits & msg.SAFETY_FIELD))
        if was > 0 and bits == 0:
            self._resume()

    def _on_stopped(self, ev: DriveStopped) -> None:
        from firmware_bridge.mcu import messages as msg

        self._moving_sent = False
        if ev.reason != msg.DRIVE_STOP_COMMAND:
            self._halted = True
            self._count(f"stopped: {ev.reason_name}")
            log.info("drive MCU stopped the wheels: %s", ev.reason_name)
            if ev.reason in (msg.DRIVE_STOP_UNDERRUN, msg.DRIVE_STOP_WATCHDOG):
                self._resume()

    def _resume(self) -> None:
        """resume_drive, retried while the MCU refuses (a safety input still unsafe)."""
        if self.link is None or not self.up or self._resuming:
            return
        if self._safety > 0:
            return  # refused while unsafe: resumed when the inputs clear
        self._resuming = True

        def done(fut: asyncio.Future[Any]) -> None:
            self._resuming = False
            if fut.cancelled():
                return
            if fut.exception() is None:
                self._halted = False
            else:
                loop = asyncio.get_running_loop()
                loop.call_later(RESUME_RETRY_S, self._resume)

        try:
            fut = self.link.request_nowait("resume_drive")
        except Exception:
            self._resuming = False
            return
        fut.add_done_callback(done)

    def _setpoint_done(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            code = getattr(exc, "code", None)
            self._count(f"setpoint refused: {code}")
            if code == 7:  # halted: a stop we have not heard of yet
                self._halted = True
                self._moving_sent = False
                self._resume()

    def _quiet_done(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        if not fut.cancelled():
            fut.exception()

    def _count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
