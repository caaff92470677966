"""Encoder sources for the simulated MCU. The belt is one; a later belt world model is another.

A source answers two questions: the count at a time, and (if it can predict) when a count
will be reached, so the firmware can sleep until then instead of polling.
"""

from __future__ import annotations

import math
from typing import Protocol


class EncoderSource(Protocol):
    def count_at(self, t: float) -> int:
        """Encoder count at monotonic time ``t``."""
        ...

    def eta(self, count: int, now: float) -> float | None:
        """Monotonic time when ``count`` is reached, or None if it cannot say (e.g. stopped)."""
        ...


class BeltEncoder:
    """A belt moving at ``speed_mm_s`` past an encoder of ``counts_per_mm``.

    Changing the speed keeps the count continuous (the belt does not jump).
    """

    def __init__(self, speed_mm_s: float = 500.0, counts_per_mm: float = 1.0, t0: float = 0.0):
        self.counts_per_mm = counts_per_mm
        self._speed = speed_mm_s
        self._t_base = t0
        self._pos_base = 0.0  # counts, as float

    @property
    def speed_mm_s(self) -> float:
        return self._speed

    def set_speed(self, speed_mm_s: float, now: float) -> None:
        self._pos_base = self._position(now)
        self._t_base = now
        self._speed = speed_mm_s

    def reset(self, now: float) -> None:
        self._pos_base = 0.0
        self._t_base = now

    def _position(self, t: float) -> float:
        return self._pos_base + (t - self._t_base) * self._speed * self.counts_per_mm

    def count_at(self, t: float) -> int:
        return math.floor(self._position(t))

    def eta(self, count: int, now: float) -> float | None:
        rate = self._speed * self.counts_per_mm
        pos = self._position(now)
        if pos >= count:
            return now
        if rate <= 0:
            return None
        return now + (count - pos) / rate
