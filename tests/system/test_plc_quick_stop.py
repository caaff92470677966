"""A fault's belt stop uses the drive's quick-stop ramp: the node's PlcBelt against the
simulated PLC over real Modbus TCP. An operator's stop keeps the normal ramp."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge.config.loader import load_board_config
from edge.node.plc_belt import PlcBelt
from sim_hardware.plc.register_map import HR_RAMP
from sim_hardware.plc.simulator import PlcSimulator

REPO = Path(__file__).resolve().parents[2]


def _belt(port: int, loop: asyncio.AbstractEventLoop) -> PlcBelt:
    board = load_board_config(REPO / "configs" / "sim-cell.yaml")
    assert board.cell is not None and board.cell.plc is not None and board.modbus is not None
    dev = board.modbus.devices[0]
    assert dev.tcp is not None
    dev = dev.model_copy(update={"tcp": dev.tcp.model_copy(update={"port": port})})
    modbus = board.modbus.model_copy(update={"devices": [dev]})
    return PlcBelt(modbus, board.cell.plc, loop, lambda _st: None)


def _time_to_rest(sim: PlcSimulator, limit_s: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if sim.world().speed <= 0.0:
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError(f"belt still at {sim.world().speed} m/s after {limit_s} s")


def _run_then_stop(sim: PlcSimulator, quick: bool) -> tuple[float, int]:
    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        belt = _belt(sim.port, loop)
        belt.start()
        try:
            errors: list[BaseException] = []
            assert await belt.drive(True, 2500.0, lambda _r, e: errors.append(e)), errors
            deadline = time.monotonic() + 5
            while sim.world().speed < 2.5 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert sim.world().speed >= 2.5
            task = belt.drive(False, None, lambda *_a: None, quick=quick)
            rest = await loop.run_in_executor(None, _time_to_rest, sim)
            assert await task
            ramp = sim.engine.images[1].tables["holding_register"][HR_RAMP]
            return rest, ramp
        finally:
            belt.stop()

    return asyncio.run(main())


def test_a_faults_stop_is_a_quick_stop_and_an_operators_stop_ramps_as_configured() -> None:
    with PlcSimulator() as sim:
        rest, ramp = _run_then_stop(sim, quick=True)
        assert ramp == 10000
        assert rest < 0.45  # 2.5 m/s at 10 m/s^2: 0.25 s, plus a write and a tick or two
        rest, ramp = _run_then_stop(sim, quick=False)  # the start wrote the run ramp back
        assert ramp == 1000
        assert 2.2 < rest < 3.0  # 2.5 m/s at 1 m/s^2
