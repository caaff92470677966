"""Runs the simulated PLC: world ticks, TCP server, optional RTU pty, faults.

``PlcSimulator`` runs in a background thread with its own event loop (tests, benches);
``run_forever`` runs it in the foreground (``wolfpack sim plc``). Each unit id has its own
register image and world.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sim_hardware.plc.engine import PlcEngine
from sim_hardware.plc.faults import FaultPlan
from sim_hardware.plc.rtu_server import PlcRtuServer
from sim_hardware.plc.tcp_server import PlcTcpServer
from sim_hardware.plc.world import ConveyorWorld, PlcWorld

T = TypeVar("T")
log = logging.getLogger("sim_hardware.plc")
TICK_S = 0.01


class PlcSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = 0,
        rtu_link: str | Path | None = None,
        baud: int = 19200,
        parity: str = "E",
        units: Sequence[int] = (1,),
        turnaround_s: float = 0.001,
        world_factory: Callable[[], PlcWorld] = ConveyorWorld,
        comm_watchdog_ms: int = 0,
    ) -> None:
        """``comm_watchdog_ms``: stop the belt when the master's heartbeat register has not
        changed for this long (0: off), as a PLC configured for communication loss does."""
        self.engine = PlcEngine(units, turnaround_s, comm_watchdog_ms)
        self.worlds: dict[int, PlcWorld] = {unit: world_factory() for unit in units}
        self.tcp = PlcTcpServer(self.engine, host, port) if port is not None else None
        self.rtu = PlcRtuServer(self.engine, rtu_link, baud, parity) if rtu_link else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self.tcp is not None:
            await self.tcp.start()
        if self.rtu is not None:
            await self.rtu.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.tcp is not None:
            await self.tcp.stop()
        if self.rtu is not None:
            await self.rtu.stop()

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.step(now - last)
            last = now

    def step(self, dt: float) -> None:
        """Advance every unit's world by ``dt`` seconds and publish its status."""
        for unit, world in self.worlds.items():
            image = self.engine.images[unit]
            if image.comm_tick(dt):
                log.warning("unit %d: no heartbeat for %d ms: belt stopped (communication loss)",
                            unit, image.comm_watchdog_ms)  # fmt: skip
            image.publish(world.step(dt, image.commands()))

    async def run_forever(self, ready: Callable[[PlcSimulator], None] | None = None) -> None:
        await self._start()
        if ready is not None:
            ready(self)
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self._stop()

    def start(self) -> PlcSimulator:
        """Run in a background thread; returns once the servers listen."""
        started = threading.Event()

        def main() -> None:
            asyncio.run(self.run_forever(lambda _sim: started.set()))

        self._thread = threading.Thread(target=main, name="sim plc", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("simulated PLC did not start within 10 s")
        return self

    def stop_soon(self) -> None:
        """Ask ``run_forever`` to end (from the simulator's own loop)."""
        if self._stopped is not None:
            self._stopped.set()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> PlcSimulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the simulator's loop from another thread."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- what tests and the CLI use ----------------------------------------------------------

    @property
    def port(self) -> int:
        assert self.tcp is not None, "no TCP server"
        return self.tcp.port

    def world(self, unit: int = 1) -> ConveyorWorld:
        world = self.worlds[unit]
        assert isinstance(world, ConveyorWorld)
        return world

    def fault(self, unit: int | None = None) -> FaultPlan:
        """The fault plan of one unit (created on first use) or, with None, of all units."""
        if unit is None:
            return self.engine.faults
        return self.engine.unit_faults.setdefault(unit, FaultPlan())

    def restart_tcp(self, down_s: float = 0.5) -> None:
        """Power-cycle the TCP side: close everything, stay down, listen again on the port."""
        assert self.tcp is not None
        tcp = self.tcp

        async def cycle() -> None:
            await tcp.stop()
            await asyncio.sleep(down_s)
            await tcp.start()

        self.call(cycle())

    def drop_connections(self) -> None:
        assert self.tcp is not None
        self.call(self.tcp.drop_connections())

    def pull_cable(self, seconds: float) -> None:
        assert self.rtu is not None
        self.call(self.rtu.pull_cable(seconds))
