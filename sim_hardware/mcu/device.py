"""A simulated MCU on a pty: firmware + wire + encoder, with a Python API for tests and CLI.

``SimMcu`` runs inside an asyncio loop (the CLI's); ``SimMcuThread`` runs one in a
background thread for tests, and marshals every control call onto the sim's loop;
``SimMcuProcess`` runs one in a child process, for timing tests (a thread shares the GIL with
the host link, which delays the sim's timers by milliseconds now and then).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from firmware_bridge.mcu.identity import PROTOCOL_VERSION
from sim_hardware.loop_call import call_on_loop
from sim_hardware.mcu.encoder import BeltEncoder, EncoderSource
from sim_hardware.mcu.faults import LineFaults
from sim_hardware.mcu.firmware import SimFirmware
from sim_hardware.mcu.wire import PtyWire
from sim_hardware.pipe_rpc import PipeClient, resolve_path

T = TypeVar("T")


@dataclass(frozen=True)
class SimMcuOptions:
    link: str
    baud: int | None = None  # None: no wire-time model (as fast as the pty goes)
    noise: float = 0.0  # corrupted-byte rate, both directions
    drop: float = 0.0  # dropped-byte rate, both directions
    seed: int | None = None
    watchdog_ms: int = 500
    belt_speed_mm_s: float = 500.0
    counts_per_mm: float = 1.0
    clock_freq: int = 1_000_000
    drift_ppm: float = 40.0
    protocol: int = PROTOCOL_VERSION  # another value makes an incompatible firmware
    outputs: int = 8
    inputs: int = 8  # up to 32 (the simulated cell uses 16: photo-eyes and chute eyes)


class SimMcu:
    """The simulated MCU. Create inside a running loop's thread, then ``start()``."""

    def __init__(self, options: SimMcuOptions, encoder: EncoderSource | None = None) -> None:
        self.options = options
        rng = random.Random(options.seed)
        self.belt = (
            encoder
            if encoder is not None
            else BeltEncoder(options.belt_speed_mm_s, options.counts_per_mm)
        )
        self.wire = PtyWire(
            options.link,
            options.baud,
            on_receive=self._on_receive,
            to_host_faults=LineFaults(options.noise, options.drop, random.Random(rng.random())),
            from_host_faults=LineFaults(options.noise, options.drop, random.Random(rng.random())),
        )
        self.firmware = SimFirmware(
            self.wire.send,
            clock_freq=options.clock_freq,
            drift_ppm=options.drift_ppm,
            encoder=self.belt,
            watchdog_ms=options.watchdog_ms,
            protocol=options.protocol,
            outputs=options.outputs,
            inputs=options.inputs,
            baud=options.baud,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replug: asyncio.TimerHandle | None = None

    def _on_receive(self, data: bytes) -> None:
        self.firmware.receive(data)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if isinstance(self.belt, BeltEncoder):
            self.belt.reset(time.monotonic())
        self.wire.plug(self._loop)
        self.firmware.start(self._loop)

    def stop(self) -> None:
        if self._replug:
            self._replug.cancel()
        self.firmware.stop()
        self.wire.close()

    # ---- faults and world, callable from the loop's thread -------------------------------------
    def set_noise(self, corrupt_rate: float, drop_rate: float | None = None) -> None:
        for f in (self.wire.to_host_faults, self.wire.from_host_faults):
            f.set_rates(corrupt_rate, drop_rate)

    def unplug(self, replug_after_s: float | None = None) -> None:
        """Unplug the cable; plug it back (new pty, same symlink) after ``replug_after_s``."""
        self.wire.unplug()
        if replug_after_s is not None and self._loop is not None:
            self._replug = self._loop.call_later(replug_after_s, self.replug)

    def replug(self) -> None:
        if not self.wire.plugged and self._loop is not None:
            self.wire.plug(self._loop)
            self.firmware.flush()

    def stall(self, seconds: float) -> None:
        self.wire.stall(seconds)

    def reset(self) -> None:
        self.firmware.reset()

    def set_belt_speed(self, speed_mm_s: float) -> None:
        if not isinstance(self.belt, BeltEncoder):
            raise TypeError("the encoder source is not a BeltEncoder")
        self.belt.set_speed(speed_mm_s, time.monotonic())

    def set_input(self, pin: int, value: int) -> None:
        self.firmware.set_input(pin, value)

    def describe(self) -> str:
        o = self.options
        wire = f"{o.baud} baud modelled" if o.baud else "no wire-time model"
        return (
            f"simulated MCU on {o.link} -> {self.wire.slave_name}: {wire}; noise {o.noise:g}, "
            f"drop {o.drop:g} per byte; watchdog {o.watchdog_ms} ms; belt "
            f"{o.belt_speed_mm_s:g} mm/s x {o.counts_per_mm:g} counts/mm; clock "
            f"{o.clock_freq} Hz ({o.drift_ppm:+g} ppm)"
        )


class SimMcuThread:
    """Runs a SimMcu in a background thread with its own loop (for tests and benches)."""

    def __init__(self, options: SimMcuOptions, encoder: EncoderSource | None = None) -> None:
        self.options = options
        self._encoder = encoder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sim-mcu", daemon=True)
        self._ready = threading.Event()
        self.sim: SimMcu | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.sim = SimMcu(self.options, self._encoder)
            self._loop.call_soon(self._start)
            self._loop.run_forever()
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            if self.sim is not None:
                self.sim.stop()
            self._loop.run_until_complete(asyncio.sleep(0.01))  # let cancellations finish
            self._loop.close()

    def _start(self) -> None:
        try:
            assert self.sim is not None
            self.sim.start()
        except BaseException as exc:
            self._error = exc
            self._loop.stop()
        self._ready.set()

    def start(self) -> SimMcuThread:
        self._thread.start()
        self._ready.wait(5)
        if self._error:
            raise self._error
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the sim's loop and return its result."""
        return call_on_loop(self._loop, fn, *args)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> SimMcuThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request_realtime(priority: int = 10) -> bool:
    """Ask the OS for FIFO real-time scheduling, as a real MCU has a CPU to itself.

    Without it, on a loaded machine a Python process is woken (or preempted) milliseconds
    late now and then, and the simulated MCU's scheduled actions with it. Needs root or
    CAP_SYS_NICE; returns False (and changes nothing) where not permitted. The kernel's RT
    throttling keeps a busy sim from starving the machine.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):
        return False
    return True


def _process_main(options: SimMcuOptions, conn: Any, realtime: bool) -> None:
    """Child process: run the sim and answer control requests from the pipe."""
    if realtime:
        request_realtime()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sim = SimMcu(options)
        sim.start()
        stop = asyncio.Event()

        def on_request() -> None:
            try:
                kind, path, args = conn.recv()
            except EOFError:
                stop.set()
                return
            if kind == "stop":
                stop.set()
                conn.send(("ok", None))
                return
            try:
                target = resolve_path(sim, path)
                value = target(*args) if kind == "call" else target
                if isinstance(value, (list, tuple, deque)):
                    value = list(value)
                conn.send(("ok", value))
            except Exception as exc:  # sent back to the caller, raised there
                conn.send(("error", f"{type(exc).__name__}: {exc}"))

        loop.add_reader(conn.fileno(), on_request)
        conn.send(("ok", "ready"))
        await stop.wait()
        loop.remove_reader(conn.fileno())
        sim.stop()

    asyncio.run(main())


class SimMcuProcess(PipeClient):
    """Runs a SimMcu in its own process, for tests whose timing must not share a GIL with
    the host link. ``call("reset")``, ``call("firmware.set_input", 3, 1)``,
    ``get("firmware.actions_log")``: every argument and result must be picklable."""

    rpc_name = "simulated MCU"

    def __init__(self, options: SimMcuOptions, realtime: bool = True) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_process_main, args=(options, child, realtime), daemon=True)
        self.options = options

    def start(self) -> SimMcuProcess:
        self._proc.start()
        if not self._conn.poll(20):
            self._proc.kill()
            raise RuntimeError("simulated MCU process did not start")
        self._conn.recv()
        return self

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(Exception):
                self._ask("stop", "", ())
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)

    def __enter__(self) -> SimMcuProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
