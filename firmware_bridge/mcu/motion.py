"""Host API of the arm's MCU messages (docs/mcu-protocol.md section 12) over an ``McuLink``.

The host plans; the MCU moves. ``ArmMotion`` checks the firmware has the arm's commands (by
name), sends the arm's setup (re-sent by the link after every reset and replug), streams
timed joint segments on the MCU's clock, reads the queue, drives the suction valve and reads
the vacuum. Positions are protocol micro-units (urad / um): ``to_micro`` converts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.identity import require_commands
from firmware_bridge.mcu.link import McuLink

ARM_COMMANDS = (
    "config_motion", "queue_joint_segment", "stop_motion", "resume_motion", "get_motion",
    "set_suction", "get_vacuum", "config_vacuum",
)  # fmt: skip
ARM_REMEDY = "flash the arm firmware"
STATE_NAMES = ("idle", "waiting", "moving", "stopping", "halted")


def to_micro(values: Sequence[float]) -> tuple[int, ...]:
    """SI joint values (rad, m) to the protocol's i32 micro-units, padded to six joints."""
    out = [round(v * 1e6) for v in values][: m.MAX_JOINTS]
    for v in out:
        if not -(2**31) <= v < 2**31:
            raise ValueError(f"joint value {v / 1e6:g} does not fit the protocol's i32 urad/um")
    return tuple(out + [0] * (m.MAX_JOINTS - len(out)))


def _positions(msg: m.Message) -> tuple[int, ...]:
    return tuple(msg[n] for n in m.JOINT_NAMES)


@dataclass(frozen=True)
class MotionState:
    state: int
    reason: int  # of the last stop; 0xFF none since boot
    queued: int
    free: int
    seg: int
    clock: int
    positions: tuple[int, ...]

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state] if self.state < len(STATE_NAMES) else str(self.state)

    @classmethod
    def from_message(cls, msg: m.Message) -> MotionState:
        f = msg.fields
        return cls(
            f["state"], f["reason"], f["queued"], f["free"], f["seg"], f["clock"],
            _positions(msg),
        )  # fmt: skip


@dataclass(frozen=True)
class MotionStopped:
    reason: int
    seg: int
    clock: int  # the MCU clock at which the joints are (will be) at rest
    positions: tuple[int, ...]

    @property
    def reason_name(self) -> str:
        r = self.reason
        return m.STOP_NAMES[r] if r < len(m.STOP_NAMES) else f"reason {r}"

    @classmethod
    def from_message(cls, msg: m.Message) -> MotionStopped:
        return cls(msg["reason"], msg["seg"], msg["clock"], _positions(msg))


@dataclass(frozen=True)
class Vacuum:
    pressure_pa: int
    valve: bool
    gripped: bool
    clock: int


class ArmMotion:
    """The arm's MCU commands on one link; construct after ``link.connect()``."""

    def __init__(
        self,
        link: McuLink,
        joints: int,
        *,
        stop_ms: int,
        safety_pin: int | None = None,
        safety_level: int = 0,
        grip_pa: int = 30_000,
        vacuum_report_ms: int = 0,
    ) -> None:
        if not 1 <= joints <= m.MAX_JOINTS:
            raise ValueError(f"joints {joints}: the protocol carries 1 to {m.MAX_JOINTS}")
        self.link = link
        self.joints = joints
        self.stop_ms = stop_ms
        self.safety_pin = m.NO_PIN if safety_pin is None else safety_pin
        self.safety_level = safety_level
        self.grip_pa = grip_pa
        self.vacuum_report_ms = vacuum_report_ms
        self._next_seg = 1
        self.depth = 0  # the MCU's segment queue, read at setup

    async def setup(self) -> None:
        """Refuse firmware without the arm's commands (by name), then configure motion and
        vacuum; the link re-sends both after every reset and replug."""
        ident = self.link.identity
        if ident is None:
            raise RuntimeError(f"{self.link.port}: connect the link before the arm's setup")
        require_commands(ident, ARM_COMMANDS, self.link.port, ARM_REMEDY)
        await self.link.add_setup(
            ("config_motion",), "config_motion", joints=self.joints,
            safety_pin=self.safety_pin, safety_level=self.safety_level, stop_ms=self.stop_ms,
        )  # fmt: skip
        await self.link.add_setup(
            ("config_vacuum",), "config_vacuum", grip_pa=self.grip_pa,
            report_ms=self.vacuum_report_ms,
        )  # fmt: skip
        st = await self.state()
        self.depth = st.queued + st.free

    def new_seg(self) -> int:
        seg = self._next_seg
        self._next_seg = seg % 0xFFFF + 1
        return seg

    def queue_segment_nowait(
        self,
        start: int,
        duration: int,
        positions: Sequence[int],
        *,
        end: bool = False,
        seg: int | None = None,
    ) -> asyncio.Future[m.Message]:
        """Queue one segment (clock ticks, micro-units); the future fails with
        McuCommandError if the MCU refused it. Pipelined: many may be in flight."""
        pos = tuple(positions) + (0,) * (m.MAX_JOINTS - len(positions))
        return self.link.request_nowait(
            "queue_joint_segment", seg=self.new_seg() if seg is None else seg,
            flags=m.SEG_END if end else 0, start=start, duration=duration,
            **dict(zip(m.JOINT_NAMES, pos, strict=True)),
        )  # fmt: skip

    async def queue_path(
        self, points: Sequence[tuple[int, Sequence[int]]], start: int, *, end: bool = True
    ) -> list[int]:
        """Queue a sampled trajectory: ``points`` are (MCU clock, micro-unit positions) after
        ``start``, each the end of one segment; the last one ends the move unless ``end`` is
        False (more will follow). Longer than the MCU's queue: streamed, each segment sent once
        the one ``depth - 4`` before it has run. Returns the segment ids; raises on the first
        refusal."""
        ahead = max(1, (self.depth or 16) - 4)
        futs, segs, prev = [], [], start
        for i, (clock, pos) in enumerate(points):
            if i >= ahead:
                wait = self.link.clock.host_time_at(points[i - ahead][0]) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait + 0.002)
            seg = self.new_seg()
            segs.append(seg)
            last = end and i == len(points) - 1
            futs.append(self.queue_segment_nowait(prev, clock - prev, pos, end=last, seg=seg))
            prev = clock
        await asyncio.gather(*futs)
        return segs

    def clock_at(self, host_t: float) -> int:
        """The MCU clock at a host monotonic time (the link's clock sync)."""
        return self.link.clock.clock_at(host_t)

    async def state(self) -> MotionState:
        return MotionState.from_message(await self.link.request("get_motion"))

    async def stop(self) -> None:
        await self.link.request("stop_motion")

    async def resume(self) -> None:
        await self.link.request("resume_motion")

    async def set_suction(self, on: bool) -> None:
        await self.link.request("set_suction", on=int(on))

    async def vacuum(self) -> Vacuum:
        msg = await self.link.request("get_vacuum")
        return Vacuum(msg["pressure_pa"], bool(msg["valve"]), bool(msg["gripped"]), msg["clock"])

    def on_stopped(self, callback: Callable[[MotionStopped], None]) -> None:
        self.link.on_event(
            lambda msg: (
                callback(MotionStopped.from_message(msg)) if msg.name == "motion_stopped" else None
            )
        )

    def on_grip(self, callback: Callable[[bool, int, int], None]) -> None:
        """``callback(gripped, pressure_pa, clock)`` on every grip_changed."""
        self.link.on_event(
            lambda msg: (
                callback(bool(msg["gripped"]), msg["pressure_pa"], msg["clock"])
                if msg.name == "grip_changed"
                else None
            )
        )
