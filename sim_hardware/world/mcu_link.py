"""The world as the simulated MCU's encoder and the receiver of its outputs.

``WorldEncoder`` answers the firmware's ``count_at``/``eta`` from the belt's exact motion, so
a stroke scheduled at a count fires when the world's belt is there. ``connect_outputs`` makes
every change of a diverter pin (by a scheduled action, a direct command, the watchdog or a
reset) drive that diverter in the world, at the time the firmware changed it;
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
    """Drive ``world``'s diverters from ``firmware``'s output pins (pin -> station index)."""

    def on_change(change: OutputChange) -> None:
        station = pin_to_station.get(change.pin)
        if station is None or change.announced:
            return  # a pulse's end, applied at its time when the pulse began
        world.set_diverter(station, bool(change.value), at=change.at, source="mcu")
        if change.ends_at is not None:
            world.set_diverter(station, not change.value, at=change.ends_at, source="mcu")

    firmware.output_listeners.append(on_change)


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
