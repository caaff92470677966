"""The Sparkplug bridge inside a real CellNode on the simulated cell, with no broker to reach:
the cell starts, runs and stops as without it (the bridge samples on the loop and never
waits for the network), the samples reach the Sparkplug worker, and shutdown is bounded."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.board import BoardConfig
from edge.config.loader import load_board_config
from edge.node.cell_node import CellNode
from edge.safety.machine import State
from sim_hardware.world.cell import SimCell
from sim_hardware.world.config import ArrivalConfig, ScannerStation, WorldConfig

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[SimCell]:
    world = WorldConfig(seed=7, routes={"1": 0, "WP1": 1}, arrivals=ArrivalConfig(rate_pph=3000),
                        scanners=[ScannerStation(position_mm=1200)])  # fmt: skip
    sim = SimCell(world, tmp_path / "mcu", scanner_tcp_port=0).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_a_cell_with_sparkplug_and_no_broker_runs_and_stops(cell: SimCell, tmp_path: Path):
    data = load_board_config(REPO / "configs" / "sim-cell.yaml").model_dump(
        mode="json", exclude_none=True
    )
    data["mcus"][0]["port"] = cell.mcu_link
    data["modbus"]["devices"][0]["tcp"]["port"] = cell.plc_port
    data["line_devices"][0]["tcp"]["port"] = cell.scanner_port
    data["cell"].pop("camera", None)
    data["cell"]["safety"]["device_loss"].pop("brain", None)
    data["mqtt"]["broker"] = f"mqtt://127.0.0.1:{_closed_port()}"
    data["mqtt"]["outbox"]["path"] = str(tmp_path / "outbox.sqlite")
    data["sparkplug"] = {"sample_interval_s": 0.1}
    node = CellNode(BoardConfig.model_validate(data))
    lags: list[float] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(node.run(stop))
        try:
            deadline = time.monotonic() + 20
            while node.safety.state is not State.READY:
                assert time.monotonic() < deadline, f"not ready: {node.safety.state}"
                await asyncio.sleep(0.05)
            assert node.sparkplug is not None
            assert node.command("start")["state"] == "running"
            for _ in range(40):  # the loop keeps its 50 ms pace while Sparkplug cannot connect
                t = time.monotonic()
                await asyncio.sleep(0.05)
                lags.append(time.monotonic() - t - 0.05)
            edge = node.sparkplug.edge
            assert not edge.connected and not edge.born.is_set()
            assert edge._values["cell"]["State"] == "running"  # the samples arrived
        finally:
            stop.set()
            t = time.monotonic()
            await asyncio.wait_for(task, 20)
            assert time.monotonic() - t < 10, "shutdown waited on the unreachable broker"

    asyncio.run(main())
    assert max(lags) < 0.5, f"the loop stalled {max(lags):.2f} s"
    assert node.sparkplug.edge.stats()["errors"] == 0
