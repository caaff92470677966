"""Belt kinematics: position and speed as exact functions of time between commands.

The VFD ramps the belt toward its setpoint at the commanded ramp; an e-stop brakes it to rest
at the brake's deceleration. Between two commands the motion is a ramp then a cruise, so the
position at any later time (and the time a position is reached) is computed exactly, not
integrated: the simulated MCU's encoder reads the same belt at any instant it wakes.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Motion:
    """From (t0, p0, v0) the speed moves toward ``target`` at ``accel`` (>0), then holds."""

    t0: float
    p0: float  # mm
    v0: float  # mm/s
    target: float  # mm/s
    accel: float  # mm/s^2

    @property
    def ramp_s(self) -> float:
        return abs(self.target - self.v0) / self.accel

    def speed_at(self, t: float) -> float:
        dt = max(0.0, t - self.t0)
        if dt >= self.ramp_s:
            return self.target
        return self.v0 + math.copysign(self.accel * dt, self.target - self.v0)

    def position_at(self, t: float) -> float:
        dt = max(0.0, t - self.t0)
        ramp = self.ramp_s
        a = math.copysign(self.accel, self.target - self.v0)
        if dt <= ramp:
            return self.p0 + self.v0 * dt + 0.5 * a * dt * dt
        return self.p0 + self.v0 * ramp + 0.5 * a * ramp * ramp + self.target * (dt - ramp)

    def time_of(self, position: float) -> float | None:
        """Earliest time >= t0 the belt is at ``position``; None if it stops short of it."""
        if position <= self.p0:
            return self.t0
        ramp = self.ramp_s
        a = math.copysign(self.accel, self.target - self.v0)
        end_ramp = self.position_at(self.t0 + ramp)
        if position <= end_ramp:
            d = position - self.p0
            if abs(a) < 1e-12:
                return self.t0 + d / self.v0 if self.v0 > 0 else None
            disc = self.v0 * self.v0 + 2 * a * d
            if disc < 0:
                return None
            return self.t0 + (-self.v0 + math.sqrt(disc)) / a
        if self.target <= 0:
            return None
        return self.t0 + ramp + (position - end_ramp) / self.target


class Belt:
    """The belt's motion, changed by PLC commands and the e-stop at given times. Thread-safe:
    the simulated MCU reads it from its own loop."""

    def __init__(
        self,
        max_speed_mm_s: float,
        estop_decel_mm_s2: float,
        t0: float = 0.0,
        *,
        history: int = 100_000,
    ) -> None:
        """``history``: how many past motions are kept for ``standstill_after`` (a motion
        begins at each command that changes the belt, so a long run keeps them all)."""
        self.max_speed = max_speed_mm_s
        self.estop_decel = estop_decel_mm_s2
        self._lock = threading.Lock()
        self._motion = Motion(t0, 0.0, 0.0, 0.0, 1.0)
        self._history: deque[Motion] = deque([self._motion], maxlen=history)
        self._estop = False
        self._run = False
        self._setpoint = 0.0
        self._ramp = 1000.0

    @property
    def motion(self) -> Motion:
        with self._lock:
            return self._motion

    @property
    def estopped(self) -> bool:
        return self._estop

    @property
    def run_commanded(self) -> bool:
        """The VFD's run command (what the PLC last said), e-stop aside."""
        return self._run

    def position_at(self, t: float) -> float:
        return self.motion.position_at(t)

    def speed_at(self, t: float) -> float:
        return self.motion.speed_at(t)

    def time_of(self, position: float) -> float | None:
        return self.motion.time_of(position)

    def reached_at(self, position: float) -> float | None:
        """When the belt first reached ``position`` (by the motions planned so far), searching
        back through past motions; None if it has not or will not."""
        with self._lock:
            motions = list(self._history)
        for j in range(len(motions) - 1, -1, -1):
            m = motions[j]
            if position > m.p0 or j == 0:
                at = m.time_of(position)
                end = motions[j + 1].t0 if j + 1 < len(motions) else math.inf
                return None if at is None else min(at, end)
        return None

    def standstill_after(self, t: float) -> float | None:
        """The first time >= ``t`` at which the belt is at rest (``t`` itself if it is at rest
        then); None if it has not come to rest since (by the motions planned so far). The
        safety report's measure: from an e-stop, a fault or a node's death to standstill."""
        with self._lock:
            motions = list(self._history)
        starts = [m.t0 for m in motions]
        i = max(0, bisect.bisect_right(starts, t) - 1)
        for j in range(i, len(motions)):
            m = motions[j]
            end = motions[j + 1].t0 if j + 1 < len(motions) else math.inf
            at = max(t, m.t0)
            if at >= end:
                continue
            if m.speed_at(at) <= 0.0:
                return at
            if m.target <= 0.0:
                rest = m.t0 + m.ramp_s
                if rest < end:
                    return max(rest, at)
        return None

    def command(self, t: float, run: bool, setpoint_mm_s: float, ramp_mm_s2: float) -> None:
        """What the PLC tells the VFD at time ``t``: run or stop, setpoint, ramp."""
        with self._lock:
            if (run, setpoint_mm_s, ramp_mm_s2) == (self._run, self._setpoint, self._ramp):
                return
            self._run, self._setpoint = run, setpoint_mm_s
            self._ramp = max(ramp_mm_s2, 1.0)
            self._replan(t)

    def set_estop(self, t: float, pressed: bool) -> None:
        with self._lock:
            if pressed != self._estop:
                self._estop = pressed
                self._replan(t)

    def _replan(self, t: float) -> None:
        m = self._motion
        t = max(t, m.t0)
        p, v = m.position_at(t), m.speed_at(t)
        if self._estop:
            target, accel = 0.0, self.estop_decel
        else:
            target = min(max(self._setpoint, 0.0), self.max_speed) if self._run else 0.0
            accel = self._ramp
        self._motion = Motion(t, p, v, target, accel)
        self._history.append(self._motion)
