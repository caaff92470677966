"""The safety path against the simulated cell's real interfaces (MCU on a pty, PLC on Modbus
TCP, scanner on TCP): a stop reaches the devices whatever the reporting path does, the PLC's
communication watchdog stops the belt while the node is dead, a restarted node stops a
moving belt and waits for a start, and a belt stop the PLC did not take is retried until it
is confirmed (issue 13, findings 1 and 2)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from edge.config.board import BoardConfig
from edge.config.loader import load_board_config
from edge.node.cell_node import CellNode
from edge.safety.machine import State
from sim_hardware.plc.register_map import COIL_RUN, DI_COMM_LOST
from sim_hardware.world.cell import SimCell
from sim_hardware.world.config import ArrivalConfig, ScannerStation, WorldConfig

REPO = Path(__file__).resolve().parents[3]
WATCHDOG_MS = 300


def _world() -> WorldConfig:
    return WorldConfig(
        seed=3,
        routes={"1": 0, "WP1": 1},
        arrivals=ArrivalConfig(rate_pph=6000),
        scanners=[ScannerStation(position_mm=1200)],
    )


def _board(cell: SimCell, tmp: Path, *, mqtt_port: int | None) -> BoardConfig:
    board = load_board_config(REPO / "configs" / "sim-cell.yaml")
    data = board.model_dump(mode="json", exclude_none=True)
    data["mcus"][0]["port"] = cell.mcu_link
    data["modbus"]["devices"][0]["tcp"]["port"] = cell.plc_port
    data["line_devices"][0]["tcp"]["port"] = cell.scanner_port
    data["cell"].pop("camera", None)
    if mqtt_port is None:
        data.pop("mqtt")
        data["cell"]["safety"]["device_loss"].pop("brain", None)
    else:  # a broker that is not there: every report goes to the outbox only
        data["mqtt"]["broker"] = f"mqtt://127.0.0.1:{mqtt_port}"
        data["mqtt"]["outbox"]["path"] = str(tmp / "outbox.sqlite")
    return BoardConfig.model_validate(data)


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[SimCell]:
    sim = SimCell(
        _world(), tmp_path / "mcu", scanner_tcp_port=0, plc_comm_watchdog_ms=WATCHDOG_MS
    ).start()
    try:
        yield sim
    finally:
        sim.stop()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _speed(cell: SimCell) -> float:
    return cell.world.belt.speed_at(cell.clock.now())


def _run_coil(cell: SimCell) -> int:
    return cell.plc.engine.images[1].tables["coil"][COIL_RUN]


async def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        await asyncio.sleep(0.02)


def _run_node(node: CellNode, body: Callable[[CellNode], Any]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(node.run(stop))
        try:
            await body(node)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    asyncio.run(main())


def test_estop_stops_belt_and_strokes_when_every_report_fails(cell: SimCell, tmp_path: Path):
    """Finding 1: with the outbox's disk full, the e-stop raised from the safety event's
    publish before the belt stop and the stroke cancel ran."""
    board = _board(cell, tmp_path, mqtt_port=_closed_port())
    bad_dir = tmp_path / "no-such-dir"
    node = CellNode(board, health_file=bad_dir / "health.json")

    def disk_full(*_a: Any, **_k: Any) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    async def body(node: CellNode) -> None:
        await _until("fleet link up", lambda: node.fleet is not None, 10)
        assert node.fleet is not None
        link = node.fleet.link
        link.publish_event = disk_full  # type: ignore[method-assign]
        link.set_fault = disk_full  # type: ignore[method-assign]
        link.request_state = disk_full  # type: ignore[method-assign]
        await _until("ready", lambda: node.safety.state is State.READY, 20)
        assert node.command("start")["state"] == "running"
        await _until("belt at speed", lambda: _speed(cell) > 2000, 10)
        await _until("parcels tracked", lambda: len(node.core.active) >= 2, 15)
        pressed = cell.clock.now()
        cell.world.set_estop(True)
        await _until("estop state", lambda: node.safety.state is State.ESTOP, 2)
        await _until("run coil off", lambda: _run_coil(cell) == 0, 2)
        await _until("belt still", lambda: _speed(cell) == 0, 2)
        cell.world.set_estop(False)
        await asyncio.sleep(1.0)
        assert _speed(cell) == 0, "the belt restarted by itself after the e-stop's release"
        assert _run_coil(cell) == 0
        assert node.safety.state is State.ESTOP  # a reset is still needed
        late = [s for s in cell.world.stroke_starts if s[0] > pressed + 0.1]
        assert late == [], f"strokes fired after the e-stop: {late}"
        assert node.reporter.errors > 0, "the failing reports were not counted"
        assert node.reporter._thread is not None and node.reporter._thread.is_alive()

    _run_node(node, body)


def test_a_belt_stop_that_raises_does_not_skip_the_stroke_cancels(cell: SimCell, tmp_path: Path):
    """The machine acts on every safety action even when one of them raises (a dead writer
    thread): the e-stop's belt command failing must not leave its strokes scheduled."""
    board = _board(cell, tmp_path, mqtt_port=_closed_port())
    node = CellNode(board, health_file=tmp_path / "health.json")

    async def body(node: CellNode) -> None:
        await _until("ready", lambda: node.safety.state is State.READY, 20)
        assert node.command("start")["state"] == "running"
        await _until("belt at speed", lambda: _speed(cell) > 2000, 10)
        await _until("strokes pending", lambda: any(
            p.stroke_pending for p in node.core.active.values()), 15)  # fmt: skip
        machine = node.machine
        real = machine._drive_belt

        def broken(run: bool, cause: str, quick: bool = False) -> None:
            if not run:
                raise RuntimeError("the PLC's writer thread is gone")
            real(run, cause, quick)

        machine._drive_belt = broken  # type: ignore[method-assign]
        pressed = cell.clock.now()
        cell.world.set_estop(True)  # the hardwired e-stop stops the belt in the world
        await _until("estop state", lambda: node.safety.state is State.ESTOP, 2)
        await _until("belt still", lambda: _speed(cell) == 0, 2)
        await asyncio.sleep(0.5)
        late = [s for s in cell.world.stroke_starts if s[0] > pressed + 0.1]
        assert late == [], f"strokes fired after the e-stop: {late}"
        firmware = cell.mcu.sim.firmware  # type: ignore[union-attr]
        pending = cell.mcu.call(lambda: sorted(firmware._scheduled))
        assert pending == [], f"strokes still scheduled on the MCU after the e-stop: {pending}"
        assert node.counters["safety_act_errors"] >= 1
        machine._drive_belt = real  # type: ignore[method-assign]

    _run_node(node, body)


@pytest.mark.parametrize("report_fails", [False, True], ids=["reported", "report_raises"])
def test_a_belt_stop_the_plc_did_not_take_is_retried_until_confirmed(
    tmp_path: Path, report_fails: bool
):
    """Finding 2: the belt-stop write failed once and was never retried; the belt ran on in
    fault. Here the PLC has no communication watchdog, so only the retry can stop it, even
    when reporting the failed write raises."""
    sim = SimCell(_world(), tmp_path / "mcu", scanner_tcp_port=0).start()
    try:
        node = CellNode(_board(sim, tmp_path, mqtt_port=None))
        if report_fails:
            real = node._belt_failed

            def failing(run: bool, exc: BaseException) -> None:
                real(run, exc)  # the fault still goes in; then its report blows up
                raise sqlite3.OperationalError("database or disk is full")

            node._belt_failed = failing  # type: ignore[method-assign]

        async def body(node: CellNode) -> None:
            await _until("ready", lambda: node.safety.state is State.READY, 20)
            node.command("start")
            await _until("belt at speed", lambda: _speed(sim) > 2000, 10)
            sim.set_plc_faults(silent=True)  # the PLC answers nothing, for 2.5 s
            await _until("fault", lambda: node.safety.state is State.FAULT, 5)
            await asyncio.sleep(1.0)
            assert _run_coil(sim) == 1, "the stop reached a silent PLC?"
            assert node.plc is not None and node.plc.write_failures >= 1
            sim.set_plc_faults(silent=False)
            await _until("run coil off", lambda: _run_coil(sim) == 0, 5)
            await _until("belt still", lambda: _speed(sim) == 0, 5)
            assert node.plc.confirmed_run is False

        _run_node(node, body)
    finally:
        sim.stop()


def _plc(port: int) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    assert client.connect()
    return client


def _node_process(config: Path, health: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "edge.cli.main", "run", str(config), "--health-file",
           str(health), *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _health(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.02)


def _started_node_process(
    cell: SimCell, tmp_path: Path
) -> tuple[BoardConfig, Path, Path, subprocess.Popen[bytes]]:
    """`wolfpack run CONFIG --start` against the cell, waited for until it runs."""
    board = _board(cell, tmp_path, mqtt_port=None)
    config = tmp_path / "node.yaml"
    config.write_text(json.dumps(board.model_dump(mode="json", exclude_none=True)))
    health = tmp_path / "health.json"
    node = _node_process(config, health, "--start")
    try:
        _wait("running", lambda: _health(health).get("state") == "running", 30)
    except BaseException:
        node.kill()
        node.wait(5)
        raise
    return board, config, health, node


def test_node_killed_the_plc_stops_the_belt_and_a_restart_waits_for_start(
    cell: SimCell, tmp_path: Path
):
    """Finding 2: kill -9 of the node left the belt running; a node restarted as systemd does
    went ready with the belt moving and fired strokes before any start."""
    _board_cfg, config, health, node = _started_node_process(cell, tmp_path)
    try:
        _wait("belt at speed", lambda: _speed(cell) > 2000, 10)
        time.sleep(1.0)
        killed = cell.clock.now()
        os.kill(node.pid, signal.SIGKILL)
        node.wait(5)
        _wait("belt still", lambda: _speed(cell) == 0, 3)
        still = cell.world.standstill_after(killed)
        assert still is not None
        stop_s = still - killed
        # heartbeat period + watchdog + the quick-stop ramp from 2.5 m/s, with a poll's margin
        assert stop_s < (100 + WATCHDOG_MS + 250 + 300) / 1000, f"stopped after {stop_s:.2f} s"
        assert cell.plc.engine.images[1].tables["discrete_input"][DI_COMM_LOST] == 1
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(5)

    # someone runs the belt from a panel while the node is away (feeding the watchdog);
    # then systemd restarts the node
    panel_on = threading.Event()
    panel_on.set()

    def panel() -> None:
        plc = _plc(cell.plc_port)
        try:
            beat = 0
            while panel_on.is_set():
                beat += 1
                plc.write_register(10, beat % 60000, device_id=1)
                if beat == 1:
                    plc.write_coil(COIL_RUN, True, device_id=1)
                time.sleep(0.05)
        finally:
            plc.close()

    feeder = threading.Thread(target=panel, daemon=True)
    feeder.start()
    _wait("belt moving again", lambda: _speed(cell) > 300, 5)
    restarted = cell.clock.now()
    health.unlink(missing_ok=True)
    node = _node_process(config, health)  # as systemd does: no --start
    try:
        _wait("ready", lambda: _health(health).get("state") == "ready", 30)
        panel_on.clear()
        feeder.join(5)
        _wait("belt stopped by the restarted node", lambda: _speed(cell) == 0, 6)
        time.sleep(1.5)
        assert _health(health).get("state") == "ready", "the node left ready by itself"
        assert _speed(cell) == 0 and _run_coil(cell) == 0
        fired = [s for s in cell.world.stroke_starts if s[0] > restarted]
        assert fired == [], f"strokes before any start: {fired}"
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)


def test_a_belt_the_plc_stopped_by_itself_faults_the_cell(cell: SimCell, tmp_path: Path):
    """The PLC cleared the run command (its watchdog after a hung loop, or its panel): the
    node must not go on diverting as if the belt ran; it faults and waits for a reset."""
    node = CellNode(_board(cell, tmp_path, mqtt_port=None))

    async def body(node: CellNode) -> None:
        await _until("ready", lambda: node.safety.state is State.READY, 20)
        node.command("start")
        await _until("belt at speed", lambda: _speed(cell) > 2000, 10)
        await asyncio.sleep(1.0)
        plc = _plc(cell.plc_port)
        try:
            plc.write_coil(COIL_RUN, False, device_id=1)  # the panel's stop button
        finally:
            plc.close()
        await _until("fault", lambda: node.safety.state is State.FAULT, 3)
        assert "PLC stopped the belt" in node.safety.history[-1].cause
        assert node.core.halted is not None

    _run_node(node, body)


def test_a_restarted_node_takes_back_the_parcels_on_the_belt(cell: SimCell, tmp_path: Path):
    """Finding 2: 19-22 parcels per crash ran off the end with no record. The journal gives
    the restarted node the parcels in flight; after a start none rides off the belt."""
    board, config, health, node = _started_node_process(cell, tmp_path)
    try:
        time.sleep(4.0)  # the belt full of parcels
        on_belt = set(cell.world.on_belt())
        assert len(on_belt) >= 4
        os.kill(node.pid, signal.SIGKILL)
        node.wait(5)
        killed = cell.clock.now()
        _wait("belt still", lambda: _speed(cell) == 0, 3)
        journal = json.loads((tmp_path / f"{board.node.id}.parcels.json").read_text())
        assert journal["parcels"], "nothing journaled"
        node = _node_process(config, health, "--start")
        _wait("running again", lambda: _health(health).get("state") == "running", 30)
        _wait("the parcels of the crash off the belt",
              lambda: not (on_belt & set(cell.world.on_belt())), 15)  # fmt: skip
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            node.wait(15)
    records = cell.world.score.records
    after = [records[p] for p in sorted(on_belt)]
    ran_off = [r.parcel.id for r in after if r.actual == "end"]
    assert ran_off == [], f"parcels on the belt at the crash ran off its end: {ran_off}"
    final = json.loads(health.read_text())
    assert final["counters"].get("parcels_restored", 0) >= 1, final
    assert killed > 0
