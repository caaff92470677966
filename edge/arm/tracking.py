"""Conveyor tracking: where a parcel is now and will be, from the encoder, not from a clock.

The industrial method (as robot controllers' "conveyor tracking" options do it): the camera
reports a parcel at its position in the frame *and the encoder count latched with that
frame*; from then on the parcel's belt coordinate is

    u(count) = u_frame + (count - count_frame) / counts_per_mm

whatever the belt's speed did in between. To meet the parcel at a future instant the core
needs the count then: the latest count plus the belt speed (estimated from the recent encoder
reports by least squares) times the time to go. ``intercept`` then finds the earliest meeting
the arm can make: the earliest instant t_c at which the cup can be on the parcel's top where
the parcel will be then (tried along the belt, then refined), never past the window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from edge.arm.config import ArmBelt, CameraCalibration

WINDOW_S = 0.25  # encoder reports used for the speed estimate
MAX_SAMPLES = 64
REFINE = 3  # halvings after the first feasible approach time


class BeltTracker:
    """The belt's encoder: count now, speed, and the count at a future instant."""

    def __init__(self, belt: ArmBelt) -> None:
        self.cpm = belt.counts_per_mm
        self.sign = belt.sign
        self._samples: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)
        self._speed: float | None = 0.0

    def update(self, count: int, t: float) -> None:
        if self._samples and t <= self._samples[-1][0]:
            return  # an old or repeated report
        self._samples.append((t, count))
        while len(self._samples) > 2 and t - self._samples[0][0] > WINDOW_S:
            self._samples.popleft()
        self._speed = None  # fitted when asked (reports come far more often than plans)

    def snapshot(self) -> BeltTracker:
        """A copy that no later report changes: a move planned with it keeps its prediction,
        so a continuation planned later joins it exactly."""
        other = BeltTracker.__new__(BeltTracker)
        other.cpm, other.sign = self.cpm, self.sign
        other._samples = deque(self._samples, maxlen=MAX_SAMPLES)
        other._speed = self._speed
        return other

    @property
    def known(self) -> bool:
        return len(self._samples) >= 2

    @property
    def last(self) -> tuple[float, int]:
        return self._samples[-1]

    @property
    def speed_mm_s(self) -> float:
        """The belt's speed, mm/s (0 until two reports came)."""
        if self._speed is None:
            self._speed = self._fit()
        return self._speed

    def _fit(self) -> float:
        """Least-squares slope of count over time, in mm/s (0 with fewer than 2 reports)."""
        if len(self._samples) < 2:
            return 0.0
        n = len(self._samples)
        t0 = self._samples[0][0]
        mt = sum(s[0] - t0 for s in self._samples) / n
        mc = sum(s[1] for s in self._samples) / n
        num = sum((s[0] - t0 - mt) * (s[1] - mc) for s in self._samples)
        den = sum((s[0] - t0 - mt) ** 2 for s in self._samples)
        return num / den / self.cpm if den > 0 else 0.0

    def count_at(self, t: float) -> float:
        """The predicted count at ``t`` (the latest report extrapolated at the current speed)."""
        if not self._samples:
            raise ValueError("belt position unknown: no encoder report yet")
        t_last, c_last = self._samples[-1]
        return c_last + self.speed_mm_s * self.cpm * (t - t_last)


@dataclass(frozen=True)
class Target:
    """A point riding the belt: belt coordinate ``u_ref`` at encoder count ``count_ref``,
    ``y`` across (arm frame), at height ``z``."""

    u_ref: float
    count_ref: float
    y: float
    z: float

    def u_at_count(self, count: float, cpm: float) -> float:
        return self.u_ref + (count - self.count_ref) / cpm


def camera_to_belt(
    cam: CameraCalibration, centre_y: float, sign: float, along: float, across: float
) -> tuple[float, float]:
    """Camera belt-plane mm (along the travel, across to its left) -> (u, y) under the arm.
    ``across`` to the left of travel is +y for a '+x' belt and -y for a '-x' one."""
    a = math.radians(cam.yaw_deg)
    al = along * math.cos(a) - across * math.sin(a)
    ac = along * math.sin(a) + across * math.cos(a)
    u = al + cam.along_offset_mm
    y = centre_y + sign * (ac + cam.across_offset_mm)
    return u, y


P = TypeVar("P")


def intercept(
    try_plan: Callable[[float], P | str],
    t_first: float,
    step: float,
    max_tries: int = 40,
    refine: int = REFINE,
) -> P | str | LeftWindow:
    """The earliest feasible meeting: ``try_plan(t_c)`` plans a meeting at instant ``t_c``
    (where the target is then follows from the encoder) and returns the plan or why it
    fails. Meetings from ``t_first`` on are tried every ``step`` seconds, and the first
    feasible one is refined by halving towards the last infeasible one. When ``try_plan``
    raises ``LeftWindow`` (the meeting would lie past the window) the search ends and
    returns it: a later meeting would only chase the parcel further."""
    why = "no meeting tried"
    failed: float | None = None
    t = t_first
    for _ in range(max_tries):
        try:
            res = try_plan(t)
        except LeftWindow as exc:
            return exc
        if not isinstance(res, str):
            if failed is None:
                return res
            lo, hi, best = failed, t, res
            for _ in range(refine):
                mid = (lo + hi) / 2
                try:
                    r = try_plan(mid)
                except LeftWindow:
                    lo = mid
                    continue
                if isinstance(r, str):
                    lo = mid
                else:
                    hi, best = mid, r
            return best
        why = res
        failed = t
        t += step
    return f"no feasible meeting in {max_tries} tries: {why}"


class LeftWindow(Exception):
    """The meeting point lies past the window's downstream limit: stop searching (a later
    meeting is further downstream still): the parcel is skipped, never chased."""
