"""Time for the simulated cell: a clock the runner steps (tests) or the wall clock (real time).

Every world computation takes the time explicitly; the clock only says what "now" is, so a
test advances simulated seconds in microseconds of CPU and the same world runs beside a real
MCU whose firmware reads ``time.monotonic()``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock's monotonic time line."""
        ...


class SimClock:
    """A clock that moves only when told to: deterministic, as fast as the CPU allows."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, dt: float) -> float:
        if dt < 0:
            raise ValueError(f"time cannot go backwards (dt={dt})")
        self._now += dt
        return self._now


class RealClock:
    """The wall clock the simulated MCU uses (``time.monotonic``), for runs beside real ptys."""

    def now(self) -> float:
        return time.monotonic()
