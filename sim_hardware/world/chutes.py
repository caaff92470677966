"""Diverters and chutes.

A diverter takes a parcel only while its output is active *and* the parcel's reference point
(its centre) is inside the capture window ``position +- capture``: a stroke fired too early
or too late by more than the window finds no parcel there, and the parcel rides on. The chute
counts what it receives, shows each drop on its chute eye for ``sensor_ms``, is full at
``capacity`` and is emptied at ``drain_per_min``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_hardware.world.config import StationConfig


@dataclass
class Diverter:
    """Active while any of its drivers (the MCU's output, the PLC's coil, a test) is on."""

    index: int
    position_mm: float
    capture_mm: float
    sources: set[str] = field(default_factory=set)
    rose_at: float | None = None  # when the current stroke began
    rose_mm: float | None = None  # belt position then
    strokes: int = 0
    empty_strokes: int = 0  # strokes that found nothing to take
    _took: bool = False

    @property
    def active(self) -> bool:
        return bool(self.sources)

    def window(self) -> tuple[float, float]:
        return self.position_mm - self.capture_mm, self.position_mm + self.capture_mm

    def set(self, source: str, on: bool, t: float, belt_mm: float) -> None:
        was = self.active
        if on:
            self.sources.add(source)
        else:
            self.sources.discard(source)
        if self.active and not was:
            self.rose_at, self.rose_mm, self._took = t, belt_mm, False
            self.strokes += 1
        elif was and not self.active:
            if not self._took:
                self.empty_strokes += 1
            self.rose_at = self.rose_mm = None

    def took(self) -> None:
        self._took = True


@dataclass
class Chute:
    index: int
    config: StationConfig
    received: list[int] = field(default_factory=list)  # parcel ids, in order
    level: int = 0  # parcels in the chute now
    overflows: int = 0  # parcels dropped into a full chute
    _sensor_until: float = -1.0
    _drained_at: float = 0.0
    _credit: float = 0.0  # fraction of the next parcel the worker has taken out

    def drain(self, t: float) -> None:
        """A worker takes parcels out one at a time at ``drain_per_min`` while any are there."""
        dt = max(0.0, t - self._drained_at)
        self._drained_at = max(t, self._drained_at)
        if self.level == 0:
            self._credit = 0.0
            return
        self._credit += self.config.drain_per_min / 60.0 * dt
        taken = min(self.level, int(self._credit))
        self.level -= taken
        self._credit = 0.0 if self.level == 0 else self._credit - taken

    def receive(self, parcel_id: int, t: float) -> None:
        self.drain(t)
        if self.full:
            self.overflows += 1
        self.received.append(parcel_id)
        self.level += 1
        self._sensor_until = t + self.config.sensor_ms / 1000.0

    @property
    def full(self) -> bool:
        return self.level >= self.config.capacity

    def sensor(self, t: float) -> bool:
        """The chute eye: True while a parcel that just dropped is passing it."""
        return t < self._sensor_until
