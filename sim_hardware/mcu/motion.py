"""The simulated arm firmware: timed joint segments, suction valve, vacuum sensor (spec 12).

``JointQueue`` is the pure core (MCU clock ticks in, setpoints and stop events out, no I/O,
no clock of its own): a real firmware's servo interrupt would evaluate the same functions.
``ArmFirmware`` is the ``FirmwareExtension`` that puts it on the simulated MCU: commands,
the 1 ms servo/sensor tick, the safety input, the watchdog stop, the valve and the vacuum.
The world (``sim_hardware/arm/``) reads ``setpoint_at(t)`` for its servos, tells the valve's
state by ``valve_listeners`` and answers ``vacuum(t)`` and ``measured()``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from firmware_bridge.mcu import messages as m
from sim_hardware.mcu.firmware import FirmwareExtension

QUEUE_DEPTH = 64  # segments the simulated firmware holds (spec 12.1: stated per firmware)
TICK_S = 0.001  # servo and sensor sampling period of the simulated firmware
GRIP_HYSTERESIS = 0.9  # gripped drops to 0 below 90% of grip_pa (spec 12.3)
NO_REASON = 0xFF
ARM_COMMANDS = (
    "config_motion", "queue_joint_segment", "stop_motion", "resume_motion", "get_motion",
    "set_suction", "get_vacuum", "config_vacuum",
)  # fmt: skip
_HALTING = frozenset({m.STOP_UNDERRUN, m.STOP_SAFETY, m.STOP_WATCHDOG})


@dataclass(frozen=True)
class Segment:
    seg: int
    flags: int
    start: int  # MCU clock ticks
    end: int
    p_from: tuple[float, ...]  # micro-units
    p_to: tuple[float, ...]

    def at(self, t: int) -> tuple[float, ...]:
        f = min(1.0, max(0.0, (t - self.start) / (self.end - self.start)))
        return tuple(a + (b - a) * f for a, b in zip(self.p_from, self.p_to, strict=True))

    def velocity(self) -> tuple[float, ...]:
        """Micro-units per tick."""
        d = self.end - self.start
        return tuple((b - a) / d for a, b in zip(self.p_from, self.p_to, strict=True))


@dataclass(frozen=True)
class Stop:
    """A controlled stop: velocity ``v`` at ``t0`` ramps to 0 over ``span`` ticks."""

    t0: int
    p0: tuple[float, ...]
    v: tuple[float, ...]
    span: int
    reason: int

    @property
    def end(self) -> int:
        return self.t0 + self.span

    def at(self, t: int) -> tuple[float, ...]:
        dt = min(max(t - self.t0, 0), self.span)
        k = dt - dt * dt / (2 * self.span)
        return tuple(p + v * k for p, v in zip(self.p0, self.v, strict=True))

    def rest(self) -> tuple[float, ...]:
        return self.at(self.end)


@dataclass(frozen=True)
class Stopped:
    """What ``motion_stopped`` reports: reason, last segment, clock at rest, rest setpoints."""

    reason: int
    seg: int
    clock: int
    positions: tuple[float, ...]


class QueueRefused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class JointQueue:
    """The segment queue and the stops of spec 12.1-12.2, in MCU clock ticks."""

    def __init__(
        self,
        initial: Sequence[float],
        *,
        clock_freq: int = 1_000_000,
        depth: int = QUEUE_DEPTH,
        stop_ms: int = 200,
    ) -> None:
        self.clock_freq = clock_freq
        self.depth = depth
        self.stop_ticks = max(1, stop_ms * clock_freq // 1000)
        self.hold: tuple[float, ...] = tuple(float(p) for p in initial)
        self.segments: deque[Segment] = deque()
        # the last finished segments: a world that samples slightly behind the queue's time
        # (its physics step) still gets the setpoint of its own instant
        self.done: deque[Segment] = deque(maxlen=8)
        # what the world sees when it samples further behind (a starved simulator steps in
        # bursts of 100 ms and more): 2 s of finished segments, the segments stops cut short
        # and the stops, as (from, to, segment or stop); ``world_setpoint`` reads it
        self.history: deque[tuple[int, int, Segment | Stop]] = deque(maxlen=256)
        self.stop: Stop | None = None
        self.halted = False
        self.last_seg = 0
        self.reason = NO_REASON
        self.now = 0  # the latest clock advanced to

    # ---- state -------------------------------------------------------------------------------
    @property
    def state(self) -> int:
        if self.halted and self.stop is None:
            return m.MOTION_HALTED
        if self.stop is not None:
            return m.MOTION_STOPPING
        if self.segments:
            return m.MOTION_MOVING if self.now >= self.segments[0].start else m.MOTION_WAITING
        return m.MOTION_IDLE

    def setpoint(self, t: int) -> tuple[float, ...]:
        """The setpoints at clock ``t`` (call ``advance`` first for ``t`` past a segment)."""
        if self.stop is not None:
            return self.stop.at(t)
        if t < self.now:
            for s in self.done:
                if s.start <= t <= s.end:
                    return s.at(t)
        for s in self.segments:
            if t < s.start:
                return s.p_from
            if t <= s.end:
                return s.at(t)
        return self.segments[-1].p_to if self.segments else self.hold

    def world_setpoint(self, t: int) -> tuple[float, ...]:
        """The setpoints at clock ``t`` for a world that may sample behind the queue's time
        (``setpoint`` for the present, the history for the past): never a jump to where the
        queue is now."""
        if self.stop is not None and t >= self.stop.t0:
            return self.stop.at(t)
        if t < self.now or self.stop is not None:
            for start, end, item in reversed(self.history):
                if start <= t <= end:
                    return item.at(t)
        return self.setpoint(t)

    def velocity(self, t: int) -> tuple[float, ...]:
        if self.stop is not None:
            dt = min(max(t - self.stop.t0, 0), self.stop.span)
            return tuple(v * (1 - dt / self.stop.span) for v in self.stop.v)
        for s in self.segments:
            if s.start <= t <= s.end:
                return s.velocity()
        return tuple(0.0 for _ in self.hold)

    # ---- commands --------------------------------------------------------------------------
    def push(
        self, seg: int, flags: int, start: int, duration: int, target: Sequence[float], now: int
    ) -> list[Stopped]:
        """Append a segment or raise QueueRefused(code, why); returns stops that ``advance``
        found on the way (a queue that ran dry before this command arrived)."""
        events = self.advance(now)
        if self.halted:
            why = m.STOP_NAMES[self.reason] if self.reason < len(m.STOP_NAMES) else "?"
            raise QueueRefused(m.ERR_HALTED, f"motion halted ({why}): resume_motion first")
        if self.stop is not None:
            raise QueueRefused(m.ERR_BUSY, "a stop is under way")
        if not 1 <= duration <= self.clock_freq:
            raise QueueRefused(
                m.ERR_BAD_ARGUMENT, f"duration {duration} ticks (1..{self.clock_freq})"
            )
        if len(self.segments) >= self.depth:
            raise QueueRefused(m.ERR_QUEUE_FULL, f"segment queue full ({self.depth})")
        if self.segments:
            last = self.segments[-1]
            if start != last.end:
                raise QueueRefused(
                    m.ERR_BAD_ARGUMENT, f"gap: start {start}, the last segment ends at {last.end}"
                )
            p_from = last.p_to
        else:
            if start <= now:
                late = now - start
                raise QueueRefused(
                    m.ERR_IN_PAST,
                    f"start {start} is {late} ticks ({late * 1000 / self.clock_freq:.3f} ms) "
                    f"in the past (now {now}) on an empty queue",
                )
            p_from = self.hold
        target = tuple(float(p) for p in target)
        self.segments.append(Segment(seg, flags, start, start + duration, p_from, target))
        return events

    def advance(self, now: int) -> list[Stopped]:
        """Move the queue's time to ``now``: finished segments leave, a dry queue ends the move
        or stops it (underrun), a finished stop comes to rest."""
        events: list[Stopped] = []
        self.now = max(self.now, now)
        while self.segments and self.segments[0].end <= self.now:
            s = self.segments.popleft()
            self.done.append(s)
            self.history.append((s.start, s.end, s))
            self.last_seg = s.seg
            self.hold = s.p_to
            if self.segments:
                continue
            if s.flags & m.SEG_END:
                self.reason = m.STOP_END_OF_MOVE
                events.append(Stopped(m.STOP_END_OF_MOVE, s.seg, s.end, s.p_to))
            else:
                events.append(self._begin_stop(s.end, s.p_to, s.velocity(), m.STOP_UNDERRUN))
        if self.stop is not None and self.now >= self.stop.end:
            self.hold = self.stop.rest()
            self.stop = None
        return events

    def stop_at(self, t: int, reason: int) -> list[Stopped]:
        """A controlled stop beginning at clock ``t`` (safety input, watchdog, command), after
        whatever ``advance`` finds up to ``t``. Nothing moving and nothing queued: no stop,
        but a halting cause still halts."""
        events = self.advance(t)
        t = max(t, self.now)
        if self.stop is None and self.segments:
            p, v = self.setpoint(t), self.velocity(t)
            events.append(self._begin_stop(t, p, v, reason))
        elif reason in _HALTING:
            self.halted = True
            self.reason = reason
        return events

    def _begin_stop(
        self, t: int, p: tuple[float, ...], v: tuple[float, ...], reason: int
    ) -> Stopped:
        self.stop = Stop(t, p, v, self.stop_ticks, reason)
        self.reason = reason
        if reason in _HALTING:
            self.halted = True
        self.history.extend((s.start, min(s.end, t), s) for s in self.segments if s.start < t)
        self.history.append((t, self.stop.end, self.stop))
        self.segments.clear()
        return Stopped(reason, self.last_seg, self.stop.end, self.stop.rest())

    def resume(self) -> None:
        """Leave the halted state once any stop has come to rest (the caller checks the
        safety input)."""
        if self.stop is None:
            self.halted = False


class ArmFirmware(FirmwareExtension):
    """The arm's part of the simulated MCU (spec 12)."""

    name = "arm"
    commands = ARM_COMMANDS
    held_events = ("motion_stopped", "grip_changed")
    droppable_events = ("motion_stopped", "grip_changed", "vacuum_report")

    def __init__(
        self,
        *,
        measured: Callable[[], Sequence[float]] | None = None,
        vacuum: Callable[[float], float] | None = None,
        boot_inputs: Callable[[], Mapping[int, int]] | None = None,
    ) -> None:
        # The world's joint positions (micro-units) at boot and its vacuum (Pa below ambient)
        # at a host time; without a world: joints at 0, and the valve gives 60 kPa when open.
        self.measured = measured or (lambda: [0.0] * m.MAX_JOINTS)
        self.vacuum = vacuum or (lambda t: 60_000.0 if self.valve else 0.0)
        # the levels on the input pins when the MCU (re)starts: a reset does not change the
        # world (the curtain's OSSD reads what it reads), only what the firmware knows
        self.boot_inputs = boot_inputs or dict
        self.valve_listeners: list[Callable[[bool, float], None]] = []
        self.stops: list[Stopped] = []  # every motion_stopped sent (tests, the world's truth)
        self._task: asyncio.Task[None] | None = None
        self._report_task: asyncio.Task[None] | None = None
        self.valve = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.configured = False
        self.joints = m.MAX_JOINTS
        self.safety_pin = m.NO_PIN
        self.safety_level = 0
        self.stop_ms = 200
        self.queue = JointQueue(self._measured())
        self.grip_pa = 0
        self.gripped = False
        self._stop_report()

    def _measured(self) -> list[float]:
        got = list(self.measured())[: m.MAX_JOINTS]
        return got + [0.0] * (m.MAX_JOINTS - len(got))

    # ---- the world's view -----------------------------------------------------------------
    def setpoint_at(self, t: float | None = None) -> tuple[float, ...]:
        """Joint setpoints (micro-units) at host time ``t``; advances the queue to it, so
        a world that steps in time sees stops and ends at their exact clocks."""
        c = self.fw.clock(t)
        self._advance(c)
        return self.queue.world_setpoint(c)

    def _advance(self, c: int) -> None:
        for ev in self.queue.advance(c):
            self._stopped(ev)

    def _stopped(self, ev: Stopped) -> None:
        self.stops.append(ev)
        fields = {n: _i32(p) for n, p in zip(m.JOINT_NAMES, ev.positions, strict=True)}
        self.fw.event("motion_stopped", reason=ev.reason, seg=ev.seg, clock=ev.clock, **fields)
        self.fw.flush()

    def stop_now(self, reason: int, t: float | None = None) -> None:
        now = time.monotonic()
        t = now if t is None else min(t, now)
        for ev in self.queue.stop_at(self.fw.clock(t), reason):
            self._stopped(ev)
        self.fw.flush()

    def safety_active(self) -> bool:
        if self.safety_pin == m.NO_PIN:
            return False
        return bool(self.fw.inputs >> self.safety_pin & 1) == bool(self.safety_level)

    # ---- FirmwareExtension hooks ------------------------------------------------------------
    def on_start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._tick_loop())

    def on_stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._stop_report()

    def on_boot(self, reason: int) -> None:
        self._set_valve(False)
        for pin, value in self.boot_inputs().items():
            if 0 <= pin < self.fw.n_inputs:
                bit = 1 << pin
                self.fw.inputs = (self.fw.inputs | bit) if value else (self.fw.inputs & ~bit)
        self._reset_state()

    def on_safe(self, cause: str) -> None:
        self._stop_report()
        if self.configured:
            self.stop_now(m.STOP_WATCHDOG)

    def on_input(self, pin: int, value: int, t: float) -> None:
        if self.configured and pin == self.safety_pin and value == self.safety_level:
            self.stop_now(m.STOP_SAFETY, t)

    def on_new_host(self) -> None:
        self._stop_report()

    # ---- commands ------------------------------------------------------------------------
    def cmd_config_motion(self, msg: m.Message) -> None:
        f = msg.fields
        pin = f["safety_pin"]
        if not 1 <= f["joints"] <= m.MAX_JOINTS:
            return self.fw.reply_error(msg, m.ERR_BAD_ARGUMENT, f"joints {f['joints']} (1..6)")
        if not 1 <= f["stop_ms"] <= 5000:
            return self.fw.reply_error(msg, m.ERR_BAD_ARGUMENT, f"stop_ms {f['stop_ms']} (1..5000)")
        if pin != m.NO_PIN and pin >= self.fw.n_inputs:
            return self.fw.reply_error(
                msg, m.ERR_BAD_ARGUMENT,
                f"safety input {pin} does not exist (0..{self.fw.n_inputs - 1}, 255 none)",
            )  # fmt: skip
        new = (f["joints"], pin, 1 if f["safety_level"] else 0, f["stop_ms"])
        old = (self.joints, self.safety_pin, self.safety_level, self.stop_ms)
        if self.configured and new == old:
            return self.fw.reply("ok", req=msg["req"])
        q = self.queue
        q.advance(self.fw.clock())
        if q.segments or q.stop is not None:
            return self.fw.reply_error(msg, m.ERR_BUSY, "segments queued or a stop under way")
        self.joints, self.safety_pin, self.safety_level, self.stop_ms = new
        q.stop_ticks = max(1, self.stop_ms * self.fw.clock_freq // 1000)
        q.clock_freq = self.fw.clock_freq
        self.configured = True
        if self.safety_active():
            q.stop_at(self.fw.clock(), m.STOP_SAFETY)  # nothing queued: it only halts
        self.fw.reply("ok", req=msg["req"])

    def _check_configured(self, msg: m.Message) -> bool:
        if not self.configured:
            self.fw.reply_error(msg, m.ERR_NOT_CONFIGURED, "motion not configured (config_motion)")
        return self.configured

    def cmd_queue_joint_segment(self, msg: m.Message) -> None:
        if not self._check_configured(msg):
            return
        f = msg.fields
        if self.safety_active():
            self.stop_now(m.STOP_SAFETY)
        target = [float(f[n]) if i < self.joints else 0.0 for i, n in enumerate(m.JOINT_NAMES)]
        try:
            events = self.queue.push(
                f["seg"], f["flags"], f["start"], f["duration"], target, self.fw.clock()
            )
        except QueueRefused as exc:
            return self.fw.reply_error(msg, exc.code, f"segment {f['seg']}: {exc}")
        for ev in events:
            self._stopped(ev)
        self.fw.reply("ok", req=msg["req"])

    def cmd_stop_motion(self, msg: m.Message) -> None:
        if self._check_configured(msg):
            self.stop_now(m.STOP_COMMAND)
            self.fw.reply("ok", req=msg["req"])

    def cmd_resume_motion(self, msg: m.Message) -> None:
        if not self._check_configured(msg):
            return
        if self.safety_active():
            return self.fw.reply_error(
                msg, m.ERR_HALTED, f"safety input {self.safety_pin} is still unsafe"
            )
        self._advance(self.fw.clock())
        if self.queue.stop is not None:
            return self.fw.reply_error(msg, m.ERR_BUSY, "a stop is under way")
        self.queue.resume()
        self.fw.reply("ok", req=msg["req"])

    def cmd_get_motion(self, msg: m.Message) -> None:
        c = self.fw.clock()
        self._advance(c)
        q = self.queue
        pos = q.setpoint(c)
        self.fw.reply(
            "motion_state", req=msg["req"], state=q.state, reason=q.reason,
            queued=len(q.segments), free=q.depth - len(q.segments), seg=q.last_seg, clock=c,
            **{n: _i32(p) for n, p in zip(m.JOINT_NAMES, pos, strict=True)},
        )  # fmt: skip

    def cmd_set_suction(self, msg: m.Message) -> None:
        self._set_valve(bool(msg["on"]))
        self.fw.reply("ok", req=msg["req"])

    def cmd_get_vacuum(self, msg: m.Message) -> None:
        now = time.monotonic()
        self.fw.reply(
            "vacuum", req=msg["req"], pressure_pa=_pa(self.vacuum(now)), valve=int(self.valve),
            gripped=int(self.gripped), clock=self.fw.clock(now),
        )  # fmt: skip

    def cmd_config_vacuum(self, msg: m.Message) -> None:
        if msg["grip_pa"] <= 0:
            return self.fw.reply_error(msg, m.ERR_BAD_ARGUMENT, "grip_pa must be > 0")
        self.grip_pa = msg["grip_pa"]
        self._stop_report()
        loop = self.fw.loop
        if msg["report_ms"] and loop is not None:
            self._report_task = loop.create_task(self._report_loop(msg["report_ms"] / 1000))
        self.fw.reply("ok", req=msg["req"])

    # ---- valve, sensor, tick ---------------------------------------------------------------
    def _set_valve(self, on: bool) -> None:
        if on == self.valve:
            return
        self.valve = on
        now = time.monotonic()
        for listener in self.valve_listeners:
            listener(on, now)

    def sample(self, now: float | None = None) -> None:
        """One servo/sensor tick: advance the queue, check the safety input, the grip."""
        now = time.monotonic() if now is None else now
        c = self.fw.clock(now)
        self._advance(c)
        if self.configured and self.safety_active() and not self.queue.halted:
            self.stop_now(m.STOP_SAFETY, now)
        if self.grip_pa:
            pa = self.vacuum(now)
            grip = pa >= self.grip_pa if not self.gripped else pa >= self.grip_pa * GRIP_HYSTERESIS
            if grip != self.gripped:
                self.gripped = grip
                self.fw.event("grip_changed", gripped=int(grip), pressure_pa=_pa(pa), clock=c)
        self.fw.flush()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.sample()

    async def _report_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.fw.event(
                "vacuum_report", pressure_pa=_pa(self.vacuum(now)), valve=int(self.valve),
                clock=self.fw.clock(now),
            )  # fmt: skip
            self.fw.flush()

    def _stop_report(self) -> None:
        task = getattr(self, "_report_task", None)
        if task is not None:
            task.cancel()
        self._report_task = None


def _i32(p: float) -> int:
    return max(-(2**31), min(2**31 - 1, round(p)))


def _pa(p: float) -> int:
    return max(0, min(0xFFFFFFFF, round(p)))
