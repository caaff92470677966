"""The arm world behind its simulated MCU on a pty, in real time (as the diverter line's).

``ArmSim`` builds the world, a ``SimMcu`` whose encoder is the world's belt, and registers
the arm firmware (``sim_hardware/mcu/motion.py``); on ``start()`` (inside a running loop) it
couples them and steps the physics to the wall clock every ~2 ms on the same loop, so the
servos read the MCU's setpoints at each physics step's own instant:

* the joint servos follow ``ArmFirmware.setpoint_at`` (micro-units -> rad / m);
* the suction valve is the firmware's valve; the vacuum sensor reads the world's vacuum;
* the destinations' entry sensors, the light curtain and the e-stop are the MCU's digital
  inputs, each edge latched at its world time;
* the encoder count is the belt's travel x ``counts_per_mm``, exact at any instant.

``ArmSimThread`` runs one in a background thread (tests, benches); every call into it goes
through ``call`` onto its loop. A node reaches it only through the pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.world import ArmWorld
from sim_hardware.loop_call import call_on_loop
from sim_hardware.mcu.device import SimMcu, SimMcuOptions, request_realtime
from sim_hardware.mcu.firmware import SimFirmware
from sim_hardware.mcu.motion import ArmFirmware

T = TypeVar("T")
STEP_S = 0.002  # how often the loop moves the world to the wall clock
JOINTS = 4  # j1, j2 (urad), j3 (um: the cup's height), j4 (urad) on p0..p3


class ArmWorldEncoder:
    """The MCU's encoder 0: the belt's travel since the world's epoch, in counts."""

    def __init__(self, world: ArmWorld, epoch: Callable[[], float]) -> None:
        self.world = world
        self.epoch = epoch
        self.counts_per_mm = world.cfg.counts_per_mm

    def count_at(self, t: float) -> int:
        return math.floor(self.world.belt_mm(t - self.epoch()) * self.counts_per_mm)

    def eta(self, count: int, now: float) -> float | None:
        when = self.world.belt_time_of(count / self.counts_per_mm)
        return None if when is None else max(when + self.epoch(), now)


def couple(fw: SimFirmware, arm: ArmFirmware, world: ArmWorld, epoch: float) -> None:
    """Wire the world and the arm firmware to each other (host time = epoch + world time)."""
    arm.measured = lambda: [q * 1e6 for q in world.joints()]
    arm.vacuum = lambda t: world.vacuum_pa
    arm.boot_inputs = lambda: dict(world.inputs)
    # at the MCU's instant (world time), as the cell's own wiring does: a world stepping
    # behind the MCU's clock applies it when it reaches that instant, not where it is
    arm.valve_listeners.append(lambda on, t: world.set_valve(on, t - epoch))
    arm.on_boot(0)  # the servos hold where the joints are

    def setpoints(tw: float) -> list[float]:
        return [p * 1e-6 for p in arm.setpoint_at(epoch + tw)[:JOINTS]]

    world.setpoints = setpoints
    world.input_listeners.append(lambda pin, v, tw: fw.set_input(pin, v, epoch + tw))


class ArmSim:
    """World + simulated MCU + arm firmware on one loop. Create and ``start()`` inside it."""

    def __init__(self, cfg: ArmWorldConfig, options: SimMcuOptions) -> None:
        if options.inputs <= max(_pins(cfg)):
            raise ValueError(
                f"the simulated MCU has {options.inputs} inputs; the arm world uses input "
                f"{max(_pins(cfg))} (SimMcuOptions.inputs)"
            )
        self.cfg = cfg
        self.world = ArmWorld(cfg)
        self.epoch = time.monotonic()
        self.mcu = SimMcu(options, encoder=ArmWorldEncoder(self.world, lambda: self.epoch))
        self.arm = ArmFirmware()
        self.mcu.firmware.register_extension(self.arm)
        self._task: asyncio.Task[None] | None = None
        self.steps = 0
        self.step_cpu_s = 0.0  # CPU time of this thread spent stepping the physics

    @property
    def firmware(self) -> SimFirmware:
        return self.mcu.firmware

    def world_time(self, t: float | None = None) -> float:
        return (time.monotonic() if t is None else t) - self.epoch

    def start(self) -> None:
        self.epoch = time.monotonic()
        self.mcu.start()
        couple(self.firmware, self.arm, self.world, self.epoch)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(STEP_S)
            c0 = time.thread_time()
            self.steps += self.world.step_to(time.monotonic() - self.epoch)
            self.step_cpu_s += time.thread_time() - c0

    def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.mcu.stop()

    def cost_ms_per_s(self) -> float:
        """Physics CPU per simulated second, measured over the run so far."""
        simulated = self.steps * self.world.dt
        return self.step_cpu_s * 1000 / simulated if simulated else 0.0


def _pins(cfg: ArmWorldConfig) -> list[int]:
    pins = [cfg.curtain_input, cfg.estop_input]
    pins += [d.sensor_input for d in cfg.destinations if d.sensor_input is not None]
    return pins


class ArmSimThread:
    """An ``ArmSim`` in a background thread with its own loop (tests and benches)."""

    def __init__(self, cfg: ArmWorldConfig, options: SimMcuOptions, rt_priority: int = 0) -> None:
        self.cfg = cfg
        self.options = options
        # > 0: the sim's thread asks for FIFO real-time scheduling at this priority, as a
        # real MCU has a CPU of its own (``request_realtime``; where not permitted it runs as
        # it is). On a loaded machine the thread at nice 19 was starved for seconds (an
        # identify unanswered within 3 s, segments taken 50 ms late)
        self.rt_priority = rt_priority
        self.realtime = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sim-arm", daemon=True)
        self._ready = threading.Event()
        self.sim: ArmSim | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        if self.rt_priority > 0:
            self.realtime = request_realtime(self.rt_priority)  # this thread only
        try:
            self.sim = ArmSim(self.cfg, self.options)
            self._loop.call_soon(self._start)
            self._loop.run_forever()
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            if self.sim is not None:
                with contextlib.suppress(Exception):
                    self.sim.stop()
            self._loop.run_until_complete(asyncio.sleep(0.01))
            self._loop.close()

    def _start(self) -> None:
        try:
            assert self.sim is not None
            self.sim.start()
        except BaseException as exc:
            self._error = exc
            self._loop.stop()
        self._ready.set()

    def start(self) -> ArmSimThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the sim's loop (the world and firmware are not thread-safe)."""
        return call_on_loop(self._loop, fn, *args)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> ArmSimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
