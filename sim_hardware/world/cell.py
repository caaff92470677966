"""A whole simulated cell in one object: the world in real time, the simulated PLC (Modbus
TCP) as its conveyor, and the simulated MCU (a pty) as its encoder, diverter outputs and
photo-eye inputs. A node reaches it only through the TCP port and the pty, as on a real cell.

    with SimCell(WorldConfig(seed=1), mcu_link=tmp / "mcu") as cell:
        ...  # Modbus on 127.0.0.1:cell.plc_port, McuLink(cell.mcu_link); truth: cell.world
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim_hardware.mcu import SimMcuOptions, SimMcuThread
from sim_hardware.pipe_rpc import PipeClient, resolve_path
from sim_hardware.plc import PlcSimulator
from sim_hardware.world.clock import RealClock
from sim_hardware.world.config import WorldConfig
from sim_hardware.world.mcu_link import WorldEncoder, connect_eyes, connect_outputs
from sim_hardware.world.plc_link import PlcWorldAdapter
from sim_hardware.world.runner import RealTimeRunner
from sim_hardware.world.world import CellWorld


class SimCell:
    def __init__(
        self,
        config: WorldConfig,
        mcu_link: str | Path,
        *,
        plc_port: int = 0,
        diverter_pins: Mapping[int, int] | None = None,
        eye_pins: Mapping[int, int] | None = None,
        arrivals: bool = True,
        mcu_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``diverter_pins``: MCU output pin -> station (default pin i drives station i);
        ``eye_pins``: photo-eye -> MCU input pin (default eye i on input i)."""
        self.clock = RealClock()
        self.world = CellWorld(config, start_s=self.clock.now(), arrivals=arrivals)
        self.mcu_link = str(mcu_link)
        self.diverter_pins = dict(diverter_pins or {i: i for i in range(len(config.stations))})
        self.eye_pins = dict(eye_pins or {i: i for i in range(len(config.photo_eyes_mm))})
        world, clock = self.world, self.clock
        lag = self.runner_lag_s = 0.005
        self.plc = PlcSimulator(
            port=plc_port, world_factory=lambda: PlcWorldAdapter(world, clock, lag_s=lag)
        )
        options = SimMcuOptions(link=self.mcu_link, **dict(mcu_options or {}))
        self.mcu = SimMcuThread(options, encoder=WorldEncoder(world))
        self.runner = RealTimeRunner(world, clock, lag_s=lag)
        self._switch_interval: float | None = None

    @property
    def plc_port(self) -> int:
        return self.plc.port

    def start(self) -> SimCell:
        # The MCU shares this process's GIL with the world and the PLC: switch threads often
        # so its timers are not held up for the default 5 ms.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)
        self.mcu.start()
        sim = self.mcu

        def wire() -> None:
            assert sim.sim is not None
            connect_outputs(sim.sim.firmware, self.world, self.diverter_pins)
            connect_eyes(asyncio.get_running_loop(), sim.sim.firmware, self.world, self.eye_pins)

        sim.call(wire)
        self.plc.start()
        self.runner.start()
        return self

    def stop(self) -> None:
        try:
            self.runner.stop()
        finally:
            self.plc.stop()
            self.mcu.stop()
            if self._switch_interval is not None:
                sys.setswitchinterval(self._switch_interval)

    def __enter__(self) -> SimCell:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cell_main(config: WorldConfig, mcu_link: str, kwargs: dict[str, Any], conn: Any) -> None:
    """Child process: run a SimCell and answer ``(kind, path, args)`` requests until 'stop'."""
    from sim_hardware.mcu.device import request_realtime

    request_realtime()  # as a real MCU has a CPU to itself; a no-op where not permitted
    with SimCell(config, mcu_link, **kwargs) as cell:
        conn.send(("ok", cell.plc_port))
        while True:
            try:
                kind, path, args = conn.recv()
            except EOFError:
                return
            if kind == "stop":
                conn.send(("ok", None))
                return
            try:
                target = resolve_path(cell, path)
                conn.send(("ok", target(*args) if kind == "call" else target))
            except Exception as exc:  # sent back to the caller, raised there
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class SimCellProcess(PipeClient):
    """A SimCell in its own process, so the node under test does not share its GIL (the
    simulated MCU's timing then does not suffer from the node's load). Control and truth over
    a pipe: ``call("world.set_estop", True)``, ``call("world.score.summary")``,
    ``get("world.late_inputs")``; every argument and result must be picklable."""

    rpc_name = "simulated cell"

    def __init__(self, config: WorldConfig, mcu_link: str | Path, **kwargs: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.mcu_link = str(mcu_link)
        self._proc = ctx.Process(
            target=_cell_main, args=(config, self.mcu_link, kwargs, child), daemon=True
        )
        self.plc_port = 0

    def start(self, timeout: float = 30.0) -> SimCellProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated cell process did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated cell process failed to start: {value}")
        self.plc_port = int(value)
        return self

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self._ask("stop", "", ())
            except (OSError, TimeoutError, RuntimeError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)

    def __enter__(self) -> SimCellProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
