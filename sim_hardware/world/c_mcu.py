"""The simulated cell's MCU running the C reference firmware (``wolfpack sim --mcu-firmware c``).

``CMcuThread`` stands where ``SimMcuThread`` stands in ``SimCell``: the same ``start``/``call``/
``stop`` and a ``sim.firmware`` that ``connect_outputs``/``connect_eyes``/``connect_chutes``
wire to the world. The firmware is the host build of ``firmware/`` in its own process
(``CFirmwareProcess``); the world reaches it the way a board's wiring would: the belt's motion
as encoder counts (a position and a rate every ``update_s``, from which the process
extrapolates), photo-eye and chute-eye edges as inputs, and its output changes (strokes)
back as diverter commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sim_hardware.loop_call import call_on_loop
from sim_hardware.mcu.c_firmware import CFirmwareProcess
from sim_hardware.mcu.device import SimMcuOptions
from sim_hardware.world.world import CellWorld

T = TypeVar("T")


class _CSim:
    """What ``SimCell`` reaches through ``SimMcuThread.sim``: the firmware and the line."""

    def __init__(self, proc: CFirmwareProcess) -> None:
        self.firmware = proc

    def set_noise(self, corrupt_rate: float, drop_rate: float | None = None) -> None:
        self.firmware.set_noise(corrupt_rate, drop_rate)


class CMcuThread:
    def __init__(self, options: SimMcuOptions, world: CellWorld, update_s: float = 0.005) -> None:
        # the world drives the encoder: the firmware's own belt model starts at rest
        self.options = dataclasses.replace(options, belt_speed_mm_s=0.0)
        self.world = world
        self.update_s = update_s
        self.counts_per_mm = world.config.belt.counts_per_mm
        self.proc = CFirmwareProcess(self.options)
        self.sim: _CSim | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="c-mcu-world", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def _belt_update(self) -> None:
        now = time.monotonic()
        belt = self.world.belt
        self.proc.set_belt(
            now,
            belt.position_at(now) * self.counts_per_mm,
            belt.speed_at(now) * self.counts_per_mm,
        )

    async def _belt_loop(self) -> None:
        while True:
            self._belt_update()
            await asyncio.sleep(self.update_s)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._belt_loop())
        self._loop.run_forever()
        self._task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    def start(self) -> CMcuThread:
        self.proc.start()
        self._belt_update()  # before any host schedules at a count
        self.sim = _CSim(self.proc)
        self._thread.start()
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on this MCU's loop (the world's callbacks are wired there)."""
        return call_on_loop(self._loop, fn, *args)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self.proc.stop()
