"""The simulated vehicle drive firmware: timed wheel setpoints, encoders, safety stops (spec 13).

``WheelDrive`` is the pure core (MCU clock seconds in, wheel speeds, travel and stop events
out; no I/O, no clock of its own): each wheel's speed ramps at ``max_accel`` towards the
setpoint in force, and at ``stop_decel`` to zero on a stop. Ramps are piecewise linear in
time, so speed and travel are exact at any instant (the world integrates the vehicle from
them, the encoders count them) without a fast tick.

``DriveFirmware`` is the ``FirmwareExtension`` that puts it on the simulated MCU: commands,
a timer for the next setpoint or the underrun, the protective field and e-stop inputs
(level-triggered, acted on at the input's edge without the host), the watchdog stop, wheel
reports. The world (``sim_hardware/amr/``) reads ``travel_at(t)`` and ``speeds_at(t)``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.mcu import messages as m
from sim_hardware.mcu.firmware import FirmwareExtension

QUEUE_DEPTH = 32  # setpoints the simulated firmware holds (stated per firmware, spec 13)
WHEELS = 2  # wheel channels of the simulated drive: 0 and 1
DRIVE_COMMANDS = (
    "config_drive", "queue_wheel_setpoint", "stop_drive", "resume_drive", "get_drive",
    "config_wheel_report", "config_battery_report",
)  # fmt: skip
NO_REASON = 0xFF


class DriveRefused(Exception):
    """A command the drive refuses: the protocol error code and the message."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class Ramp:
    """One wheel: speed ``v0`` (m/s) at ``t0`` ramping at ``accel`` to ``target``; travel
    ``p0`` (m) at ``t0``."""

    t0: float = 0.0
    v0: float = 0.0
    p0: float = 0.0
    target: float = 0.0
    accel: float = 1.0

    def _ramp_time(self) -> float:
        return abs(self.target - self.v0) / self.accel if self.accel > 0 else 0.0

    def speed(self, t: float) -> float:
        dt = max(0.0, t - self.t0)
        tr = self._ramp_time()
        if dt >= tr:
            return self.target
        return self.v0 + math.copysign(self.accel * dt, self.target - self.v0)

    def travel(self, t: float) -> float:
        dt = max(0.0, t - self.t0)
        tr = min(dt, self._ramp_time())
        v1 = self.speed(self.t0 + tr)
        return self.p0 + (self.v0 + v1) / 2 * tr + self.target * (dt - tr)

    def rebase(self, t: float, target: float, accel: float) -> None:
        self.p0, self.v0, self.t0 = self.travel(t), self.speed(t), t
        self.target, self.accel = target, accel

    def at_rest(self, t: float) -> bool:
        return self.target == 0.0 and self.speed(t) == 0.0


@dataclass(frozen=True)
class BatteryReading:
    """What the BMS says: state of charge 0..1, pack volts, amps (positive = charging)."""

    soc: float
    voltage: float
    current: float
    charging: bool


@dataclass(frozen=True)
class Setpoint:
    t: float  # MCU seconds (clock / clock_freq)
    left: float  # m/s
    right: float
    hold: float  # s


@dataclass(frozen=True)
class DriveStop:
    """What ``drive_stopped`` reports: the reason and the MCU time the stop began."""

    reason: int
    t: float


@dataclass(frozen=True)
class DriveLimits:
    max_speed: float = 2.0  # m/s per wheel
    max_accel: float = 2.0  # m/s2 per wheel, between setpoints
    stop_decel: float = 3.0  # m/s2 per wheel, on every stop


class WheelDrive:
    """The setpoint queue and the stops of spec 13, in MCU seconds."""

    def __init__(self, limits: DriveLimits | None = None, depth: int = QUEUE_DEPTH) -> None:
        self.limits = limits or DriveLimits()
        self.depth = depth
        self.wheels = (Ramp(accel=self.limits.max_accel), Ramp(accel=self.limits.max_accel))
        self.queue: deque[Setpoint] = deque()
        self.valid_until: float | None = None  # the setpoint in force ends here
        self.stopping = False
        self.halted = False
        self.reason = NO_REASON
        self.now = 0.0

    # ---- state -----------------------------------------------------------------------------
    def speeds(self, t: float) -> tuple[float, float]:
        return (self.wheels[0].speed(t), self.wheels[1].speed(t))

    def travel(self, t: float) -> tuple[float, float]:
        return (self.wheels[0].travel(t), self.wheels[1].travel(t))

    def at_rest(self, t: float) -> bool:
        return all(w.at_rest(t) for w in self.wheels)

    def state(self, t: float) -> int:
        if self.stopping and not self.at_rest(t):
            return m.DRIVE_STOPPING
        if self.halted:
            return m.DRIVE_HALTED
        if not self.at_rest(t):
            return m.DRIVE_MOVING
        return m.DRIVE_WAITING if self.queue else m.DRIVE_IDLE

    def next_due(self) -> float | None:
        """The MCU time at which ``advance`` has something to do."""
        if self.queue:
            return self.queue[0].t
        if self.valid_until is not None and not self.halted:
            return self.valid_until
        return None

    # ---- commands ----------------------------------------------------------------------------
    def push(self, sp: Setpoint, now: float) -> None:
        """Queue a setpoint, or raise DriveRefused with the protocol's code and why (call
        ``advance(now)`` first: a stop that is due must happen before)."""
        lim = self.limits.max_speed
        if self.halted or (self.stopping and not self.at_rest(now)):
            raise DriveRefused(m.ERR_HALTED, f"drive halted ({self._reason_name()}): resume_drive")
        if abs(sp.left) > lim + 1e-9 or abs(sp.right) > lim + 1e-9:
            raise DriveRefused(
                m.ERR_BAD_ARGUMENT,
                f"wheel speed {sp.left:+.3f} / {sp.right:+.3f} m/s beyond max_speed {lim:.3f}",
            )
        if not 0 < sp.hold <= 1.0:
            raise DriveRefused(m.ERR_BAD_ARGUMENT, "hold_ms must be 1 .. 1000")
        last = self.queue[-1].t if self.queue else None
        if last is not None and sp.t <= last:
            raise DriveRefused(
                m.ERR_BAD_ARGUMENT,
                f"setpoint at {sp.t:.6f} s is not after the last queued one ({last:.6f} s)",
            )
        if sp.t <= now:
            late = (now - sp.t) * 1000
            raise DriveRefused(m.ERR_IN_PAST, f"setpoint clock is {late:.3f} ms in the past")
        if len(self.queue) >= self.depth:
            raise DriveRefused(m.ERR_QUEUE_FULL, f"setpoint queue full ({self.depth})")
        self.queue.append(sp)

    def advance(self, now: float) -> list[DriveStop]:
        """Apply every setpoint due by ``now``; an underrun stop when the last one ran out
        while the wheels were told to turn."""
        stops: list[DriveStop] = []
        self.now = max(self.now, now)
        while True:
            nxt = self.queue[0].t if self.queue else math.inf
            end = self.valid_until if self.valid_until is not None else math.inf
            if end < nxt and end <= now:
                self.valid_until = None
                if any(w.target != 0.0 for w in self.wheels):
                    stops += self.stop(end, m.DRIVE_STOP_UNDERRUN)
                continue
            if nxt <= now:
                sp = self.queue.popleft()
                a = self.limits.max_accel
                self.wheels[0].rebase(sp.t, sp.left, a)
                self.wheels[1].rebase(sp.t, sp.right, a)
                self.valid_until = sp.t + sp.hold
                continue
            break
        if self.stopping and self.at_rest(now):
            self.stopping = False
        return stops

    def stop(self, t: float, reason: int) -> list[DriveStop]:
        """Ramp both wheels to zero at ``stop_decel`` from ``t``; halts unless commanded."""
        self.queue.clear()
        self.valid_until = None
        for w in self.wheels:
            w.rebase(t, 0.0, self.limits.stop_decel)
        self.stopping = True
        self.reason = reason
        if reason != m.DRIVE_STOP_COMMAND:
            self.halted = True
        return [DriveStop(reason, t)]

    def resume(self) -> None:
        self.halted = False

    def _reason_name(self) -> str:
        return m.DRIVE_STOP_NAMES.get(self.reason, f"reason {self.reason}")


class DriveFirmware(FirmwareExtension):
    """The vehicle drive on the simulated MCU (spec 13)."""

    name = "drive"
    commands = DRIVE_COMMANDS
    held_events = ("drive_stopped", "safety_changed")
    droppable_events = ("wheel_report", "battery_report", "drive_stopped", "safety_changed")

    def __init__(
        self,
        limits: DriveLimits | None = None,
        battery: Callable[[float], BatteryReading] | None = None,
    ) -> None:
        """``battery(host_t)``: the world's battery as the BMS reads it (None: no BMS)."""
        self.battery = battery
        self._battery_task: asyncio.Task[None] | None = None
        self.default_limits = limits or DriveLimits()
        self.core = WheelDrive(self.default_limits)
        self.config: dict[str, int] | None = None
        self.counts_per_m = 10_000.0
        self.stop_listeners: list[Callable[[DriveStop], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._report: asyncio.Task[None] | None = None
        self._safety = 0

    # ---- clock and state ---------------------------------------------------------------------
    def _mcu_s(self, t: float | None = None) -> float:
        return self.fw.clock(t) / self.fw.clock_freq

    def _host_t(self, mcu_s: float) -> float:
        return self.fw.time_of_clock(round(mcu_s * self.fw.clock_freq))

    def speeds_at(self, t: float | None = None) -> tuple[float, float]:
        """Rim speeds (m/s) of channels 0 and 1 at host time ``t`` (the world's motors)."""
        return self.core.speeds(self._mcu_s(t))

    def travel_at(self, t: float | None = None) -> tuple[float, float]:
        """Rim travel (m) of channels 0 and 1 since boot at host time ``t``."""
        return self.core.travel(self._mcu_s(t))

    def _host_order(self, pair: tuple[float, float]) -> tuple[float, float]:
        """Channel values in the host's (left, right) order of config_drive."""
        if self.config is not None and self.config["left"] == 1:
            return (pair[1], pair[0])
        return pair

    def counts_at(self, t: float | None = None) -> tuple[int, int]:
        """Encoder counts (left, right as configured) at host time ``t``."""
        left, right = self._host_order(self.travel_at(t))
        return (math.floor(left * self.counts_per_m), math.floor(right * self.counts_per_m))

    def safety_bits(self) -> int:
        cfg = self.config
        if cfg is None:
            return 0
        bits = 0
        for pin_key, level_key, bit in (
            ("field_pin", "field_level", m.SAFETY_FIELD),
            ("estop_pin", "estop_level", m.SAFETY_ESTOP),
        ):
            pin = cfg[pin_key]
            if pin != m.NO_PIN and ((self.fw.inputs >> pin) & 1) == cfg[level_key]:
                bits |= bit
        return bits

    # ---- lifecycle ---------------------------------------------------------------------------
    def on_boot(self, reason: int) -> None:
        self._cancel_timer()
        self._stop_report()
        self.core = WheelDrive(self.default_limits)
        self.config = None
        self._safety = 0

    def on_stop(self) -> None:
        self._cancel_timer()
        self._stop_report()

    def on_safe(self, cause: str) -> None:
        t = self._mcu_s(time.monotonic())
        self._stopped(self.core.advance(t))
        self._stopped(self.core.stop(t, m.DRIVE_STOP_WATCHDOG))
        self._stop_report()
        self._arm_timer()

    def on_new_host(self) -> None:
        self._stop_report()

    def on_input(self, pin: int, value: int, t: float) -> None:
        bits = self.safety_bits()
        if bits == self._safety:
            return
        rising = bits & ~self._safety
        self._safety = bits
        c = self.fw.clock(t)
        left, right = self.counts_at(t)
        self.fw.event("safety_changed", safety=bits, clock=c, left_count=left, right_count=right)
        if rising:
            self._stopped(self.core.advance(self._mcu_s(t)))
            reason = m.DRIVE_STOP_ESTOP if rising & m.SAFETY_ESTOP else m.DRIVE_STOP_FIELD
            self._stopped(self.core.stop(self._mcu_s(t), reason))
            self._arm_timer()

    def _stopped(self, stops: list[DriveStop]) -> None:
        for s in stops:
            host_t = self._host_t(s.t)
            left, right = self.counts_at(host_t)
            self.fw.event(
                "drive_stopped", reason=s.reason, clock=round(s.t * self.fw.clock_freq),
                left_count=left, right_count=right,
            )  # fmt: skip
            for listener in self.stop_listeners:
                listener(s)
        if stops:
            self.fw.flush()

    # ---- timer -------------------------------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self) -> None:
        self._cancel_timer()
        due = self.core.next_due()
        loop = self.fw.loop
        if due is None or loop is None:
            return
        delay = self._host_t(due) - time.monotonic()
        self._timer = loop.call_later(max(0.0, delay), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._stopped(self.core.advance(self._mcu_s()))
        self._arm_timer()

    # ---- commands ----------------------------------------------------------------------------
    def cmd_config_drive(self, msg: m.Message) -> None:
        f = dict(msg.fields)
        f.pop("req")
        if self.config == f:
            self.fw.reply("ok", req=msg["req"])  # the setup re-sent after a replug
            return
        problems = []
        if {f["left"], f["right"]} != {0, 1}:
            problems.append(f"wheel channels {f['left']}, {f['right']}: this drive has 0 and 1")
        if f["counts_per_m"] == 0 or f["max_speed"] == 0 or f["max_accel"] == 0:
            problems.append("counts_per_m, max_speed and max_accel must be > 0")
        if f["stop_decel"] == 0:
            problems.append("stop_decel must be > 0")
        for key in ("field_pin", "estop_pin"):
            if f[key] != m.NO_PIN and f[key] >= self.fw.n_inputs:
                problems.append(f"{key} {f[key]}: inputs are 0..{self.fw.n_inputs - 1}")
        if problems:
            self.fw.reply_error(msg, m.ERR_BAD_ARGUMENT, "; ".join(problems))
            return
        now = self._mcu_s()
        self._stopped(self.core.advance(now))
        if self.config is not None and (self.core.queue or not self.core.at_rest(now)):
            self.fw.reply_error(msg, m.ERR_BUSY, "config_drive changes while the wheels turn")
            return
        self.config = f
        self.counts_per_m = float(f["counts_per_m"])
        limits = DriveLimits(f["max_speed"] / 1e6, f["max_accel"] / 1e6, f["stop_decel"] / 1e6)
        self.core.limits = limits
        self._safety = self.safety_bits()
        if self._safety:
            self._stopped(self.core.stop(now, self._reason_of(self._safety)))
        self.fw.reply("ok", req=msg["req"])

    @staticmethod
    def _reason_of(bits: int) -> int:
        return m.DRIVE_STOP_ESTOP if bits & m.SAFETY_ESTOP else m.DRIVE_STOP_FIELD

    def _configured(self, msg: m.Message) -> bool:
        if self.config is None:
            self.fw.reply_error(msg, m.ERR_NOT_CONFIGURED, "no config_drive since the MCU started")
            return False
        return True

    def cmd_queue_wheel_setpoint(self, msg: m.Message) -> None:
        if not self._configured(msg):
            return
        f = msg.fields
        now = self._mcu_s()
        ch0, ch1 = self._host_order((f["left"] / 1e6, f["right"] / 1e6))
        sp = Setpoint(f["clock"] / self.fw.clock_freq, ch0, ch1, f["hold_ms"] / 1000)
        self._stopped(self.core.advance(now))
        try:
            self.core.push(sp, now)
        except DriveRefused as exc:
            self.fw.reply_error(msg, exc.code, str(exc))
            return
        self._arm_timer()
        self.fw.reply("ok", req=msg["req"])

    def cmd_stop_drive(self, msg: m.Message) -> None:
        now = self._mcu_s()
        self._stopped(self.core.advance(now))
        self._stopped(self.core.stop(now, m.DRIVE_STOP_COMMAND))
        self._arm_timer()
        self.fw.reply("ok", req=msg["req"])

    def cmd_resume_drive(self, msg: m.Message) -> None:
        bits = self.safety_bits()
        if bits:
            names = [n for b, n in ((m.SAFETY_FIELD, "protective field violated"),
                                    (m.SAFETY_ESTOP, "e-stop open")) if bits & b]  # fmt: skip
            self.fw.reply_error(msg, m.ERR_HALTED, f"cannot resume: {', '.join(names)}")
            return
        self.core.resume()
        self.fw.reply("ok", req=msg["req"])

    def cmd_get_drive(self, msg: m.Message) -> None:
        now = time.monotonic()
        t = self._mcu_s(now)
        self._stopped(self.core.advance(t))
        left, right = self.counts_at(now)
        vl, vr = self._host_order(self.core.speeds(t))
        self.fw.reply(
            "drive_state", req=msg["req"], state=self.core.state(t), reason=self.core.reason,
            queued=len(self.core.queue), free=self.core.depth - len(self.core.queue),
            safety=self.safety_bits(), clock=self.fw.clock(now), left_count=left,
            right_count=right, left=round(vl * 1e6), right=round(vr * 1e6),
        )  # fmt: skip

    def cmd_config_wheel_report(self, msg: m.Message) -> None:
        self._stop_report()
        interval = msg["interval_ms"]
        if interval and self.fw.loop is not None:
            self._report = self.fw.loop.create_task(self._report_loop(interval / 1000))
        self.fw.reply("ok", req=msg["req"])

    def _stop_report(self) -> None:
        for task in (self._report, self._battery_task):
            if task is not None:
                task.cancel()
        self._report = self._battery_task = None

    def cmd_config_battery_report(self, msg: m.Message) -> None:
        if self.battery is None:
            self.fw.reply_error(msg, m.ERR_BAD_ARGUMENT, "this MCU reads no battery")
            return
        if self._battery_task is not None:
            self._battery_task.cancel()
            self._battery_task = None
        interval = msg["interval_ms"]
        if interval and self.fw.loop is not None:
            self._battery_task = self.fw.loop.create_task(self._battery_loop(interval / 1000))
        self.fw.reply("ok", req=msg["req"])

    async def _battery_loop(self, interval: float) -> None:
        assert self.battery is not None
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            b = self.battery(now)
            self.fw.event(
                "battery_report", clock=self.fw.clock(now),
                soc_permille=max(0, min(1000, round(b.soc * 1000))),
                voltage_mv=max(0, round(b.voltage * 1000)), current_ma=round(b.current * 1000),
                charging=int(b.charging),
            )  # fmt: skip
            self.fw.flush()

    async def _report_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            t = self._mcu_s(now)
            left, right = self.counts_at(now)
            vl, vr = self._host_order(self.core.speeds(t))
            self.fw.event(
                "wheel_report", clock=self.fw.clock(now), left_count=left, right_count=right,
                left=round(vl * 1e6), right=round(vr * 1e6), safety=self.safety_bits(),
            )  # fmt: skip
            self.fw.flush()
