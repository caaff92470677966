"""The world as the simulated MCU's encoder and the receiver of its outputs.

``WorldEncoder`` answers the firmware's ``count_at``/``eta`` from the belt's exact motion, so
a stroke scheduled at a count fires when the world's belt is there. ``connect_outputs`` makes
every change of a diverter pin (by a scheduled action, a direct command, the watchdog or a
reset) drive that diverter in the world, at the time the firmware changed it, and gives the
firmware a ``WorldCompare`` as its compare unit: a stroke at a count lands at the exact world
time however late the simulated MCU runs, as on a real MCU's timer hardware.
``connect_eyes`` and ``connect_chutes`` report the world's photo-eye and chute-eye edges as
the MCU's input edges.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

from sim_hardware.mcu.firmware import OutputChange, SimFirmware
from sim_hardware.world.world import CellWorld


class WorldEncoder:
    def __init__(self, world: CellWorld) -> None:
        self.world = world
        self.counts_per_mm = world.config.belt.counts_per_mm

    def count_at(self, t: float) -> int:
        return math.floor(self.world.belt.position_at(t) * self.counts_per_mm)

    def eta(self, count: int, now: float) -> float | None:
        when = self.world.belt.time_of(count / self.counts_per_mm)
        return None if when is None else max(when, now)


def connect_outputs(
    firmware: SimFirmware, world: CellWorld, pin_to_station: Mapping[int, int]
) -> None:
    """Drive ``world``'s diverters from ``firmware``'s output pins (pin -> station index):
    strokes at a count through the MCU's compare unit, every other change as it happens."""
    if isinstance(firmware, SimFirmware):  # the C firmware under simavr has timers of its own
        firmware.compare = WorldCompare(world, pin_to_station)
        if firmware.loop is not None:
            _report_progress(firmware.loop, firmware, world)

    def on_change(change: OutputChange) -> None:
        station = pin_to_station.get(change.pin)
        if station is None or change.announced:
            return  # the compare unit's stroke, or a pulse's end applied when it began
        world.set_diverter(station, bool(change.value), at=change.at, source="mcu")
        if change.ends_at is not None:
            world.set_diverter(station, not change.value, at=change.ends_at, source="mcu")

    firmware.output_listeners.append(on_change)


def _report_progress(
    loop: asyncio.AbstractEventLoop, firmware: SimFirmware, world: CellWorld, every_s: float = 0.002
) -> None:
    """Tell the firmware how far the world has delivered its edges, through the same queue
    as the edges (so it is heard after them): its reports and strokes never run ahead."""
    last = [float("-inf")]

    def on_advance(t: float) -> None:
        if t - last[0] >= every_s:
            last[0] = t
            loop.call_soon_threadsafe(firmware.advance_known, t)

    world.advance_listeners.append(on_advance)


def connect_eyes(
    loop: asyncio.AbstractEventLoop,
    firmware: SimFirmware,
    world: CellWorld,
    eye_to_pin: Mapping[int, int],
) -> None:
    """Wire ``world``'s photo-eyes to ``firmware``'s inputs (eye index -> input pin); each edge
    is reported with the count at the moment the beam changed, not when the world found it.
    ``loop`` is the simulated MCU's event loop (the firmware is not thread-safe)."""

    def on_edge(eye: int, blocked: bool, t: float) -> None:
        pin = eye_to_pin.get(eye)
        if pin is not None:
            loop.call_soon_threadsafe(firmware.set_input, pin, int(blocked), t)

    world.eye_listeners.append(on_edge)


def connect_chutes(
    loop: asyncio.AbstractEventLoop,
    firmware: SimFirmware,
    world: CellWorld,
    station_to_pin: Mapping[int, int],
) -> None:
    """Wire ``world``'s chute eyes to ``firmware``'s inputs (station -> input pin): high when a
    parcel drops, low ``sensor_ms`` after the last drop, each edge latched at its own time so
    the node can confirm a divert by count."""

    def on_edge(station: int, blocked: bool, t: float) -> None:
        pin = station_to_pin.get(station)
        if pin is not None:
            loop.call_soon_threadsafe(firmware.set_input, pin, int(blocked), t)

    world.chute_listeners.append(on_edge)


class WorldCompare:
    """The MCU's compare outputs wired to the world's diverters (see ``CompareUnit``): a
    stroke scheduled at a count is set in the world at the instant the belt gets there."""

    def __init__(self, world: CellWorld, pin_to_station: Mapping[int, int]) -> None:
        self.world = world
        self.pin_to_station = dict(pin_to_station)
        self.counts_per_mm = world.config.belt.counts_per_mm

    def drives(self, pin: int) -> bool:
        return pin in self.pin_to_station

    def arm(self, key: int, pin: int, value: int, count: int, duration_s: float) -> None:
        self.world.arm_compare(
            (id(self), key), self.pin_to_station[pin], bool(value),
            count / self.counts_per_mm, duration_s,
        )  # fmt: skip

    def disarm(self, key: int, at: float) -> bool:
        return self.world.disarm_compare((id(self), key), at)

    def time_of_count(self, count: int) -> float | None:
        return self.world.belt.reached_at(count / self.counts_per_mm)
