"""An independent Sparkplug B host (Eclipse Tahu's JavaScript payload library and MQTT.js,
tests/system/sparkplug_host.js; nothing of ours decodes here) against a real mosquitto and
a node process running the simulated cell: it sees NBIRTH/DBIRTH/DDATA, rebirths the node,
takes it through its own STATE going offline and back, and sees the NDEATH of kill -9 with
the bdSeq of the NBIRTH it ends (issue 17, item 3)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config.board import BoardConfig
from edge.config.loader import load_board_config
from sim_hardware.world.cell import SimCell
from sim_hardware.world.config import ArrivalConfig, ScannerStation, WorldConfig
from tests.fleet_link.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[2]
HOST_JS = Path(__file__).with_name("sparkplug_host.js")
GROUP, EDGE, HOST_ID = "dc-test", "cell-spb", "scada-test"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    done = subprocess.run(["bash", str(REPO / "scripts" / "sparkplug-tools.sh")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


class Host:
    """The JS host process: JSON lines out (collected by a thread), commands in."""

    def __init__(self, modules: Path, url: str) -> None:
        self.proc = subprocess.Popen(
            ["node", str(HOST_JS), url, GROUP, HOST_ID],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SPARKPLUG_TOOLS_MODULES": str(modules)},
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, what: str, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                tail = [(m.get("event"), m.get("type"), m.get("seq")) for m in self.seen[-8:]]
                raise AssertionError(f"the host did not see {what} in {timeout} s; last: {tail}")
            try:
                msg = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.seen.append(msg)
            if match(msg):
                return msg

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _msg(kind: str, device: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("event") == "message" and m["type"] == kind and (
        device is None or m["device"] == device)  # fmt: skip


def _values(msg: dict[str, Any]) -> dict[str, Any]:
    return {m["resolved"]: m["value"] for m in msg["metrics"]}


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[SimCell]:
    world = WorldConfig(seed=5, routes={"1": 0, "WP1": 1}, arrivals=ArrivalConfig(rate_pph=6000),
                        scanners=[ScannerStation(position_mm=1200)])  # fmt: skip
    sim = SimCell(world, tmp_path / "mcu", scanner_tcp_port=0).start()
    try:
        yield sim
    finally:
        sim.stop()


def _config(cell: SimCell, tmp: Path, broker_url: str) -> Path:
    board = load_board_config(REPO / "configs" / "sim-cell.yaml")
    data = board.model_dump(mode="json", exclude_none=True)
    data["node"]["id"], data["node"]["site"] = EDGE, GROUP
    data["mcus"][0]["port"] = cell.mcu_link
    data["modbus"]["devices"][0]["tcp"]["port"] = cell.plc_port
    data["line_devices"][0]["tcp"]["port"] = cell.scanner_port
    data["cell"].pop("camera", None)
    data["cell"]["safety"]["device_loss"].pop("brain", None)
    data["mqtt"]["broker"] = broker_url
    data["mqtt"]["outbox"]["path"] = str(tmp / "outbox.sqlite")
    data["sparkplug"] = {"primary_host_id": HOST_ID, "sample_interval_s": 0.2, "commands": True}
    config = tmp / "node.yaml"
    config.write_text(
        json.dumps(BoardConfig.model_validate(data).model_dump(mode="json", exclude_none=True))
    )
    return config


def test_an_independent_host_sees_births_data_rebirth_and_death(
    node_modules: Path, cell: SimCell, tmp_path: Path
):
    broker = Mosquitto(tmp_path).start()
    host = Host(node_modules, broker.url)
    node = None
    try:
        host.wait("its own STATE published", lambda m: m.get("event") == "ready", 15)
        config = _config(cell, tmp_path, broker.url)
        node = subprocess.Popen(
            [sys.executable, "-m", "edge.cli.main", "run", str(config), "--start",
             "--health-file", str(tmp_path / "health.json")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        nbirth = host.wait("NBIRTH", _msg("NBIRTH"), 30)
        assert nbirth["edge"] == EDGE and nbirth["seq"] == 0
        birth = {m["name"]: m for m in nbirth["metrics"]}
        assert birth["bdSeq"]["type"] == "Int64"
        bdseq = int(birth["bdSeq"]["value"])
        assert birth["Node Control/Rebirth"] == {**birth["Node Control/Rebirth"],
                                                 "type": "Boolean", "value": False}  # fmt: skip
        assert birth["Properties/Node"]["value"] == EDGE

        dbirth = host.wait("DBIRTH of the cell", _msg("DBIRTH", "cell"), 5)
        assert dbirth["seq"] == 1
        metrics = {m["name"]: m for m in dbirth["metrics"]}
        types = {name: m["type"] for name, m in metrics.items()}
        assert types["State"] == "String" and types["Belt/Speed"] == "Float"
        assert types["Belt/Running"] == "Boolean" and types["Parcels/Sorted"] == "UInt64"
        assert types["Devices/MCU"] == types["Devices/PLC"] == "Boolean"
        aliases = [m["alias"] for m in dbirth["metrics"]] + [birth["Node Control/Rebirth"]["alias"]]
        assert None not in aliases and len(set(aliases)) == len(aliases)

        # DDATA by alias only, with the cell starting: state, then the belt speeding up
        speeds: list[float] = []
        states: list[str] = []

        def running_at_speed(m: dict[str, Any]) -> bool:
            if not _msg("DDATA", "cell")(m):
                return False
            assert all(x["name"] is None and x["resolved"] for x in m["metrics"]), m
            v = _values(m)
            speeds.extend([v["Belt/Speed"]] if "Belt/Speed" in v else [])
            states.extend([v["State"]] if "State" in v else [])
            return bool(speeds) and speeds[-1] > 2000 and "running" in states

        host.wait("DDATA: running, belt at speed", running_at_speed, 20)
        assert len(set(speeds)) >= 2, speeds  # values that change, each sent once moved

        host.send(cmd="rebirth", edge=EDGE)
        again = host.wait("NBIRTH after the rebirth", _msg("NBIRTH"), 10)
        assert again["seq"] == 0 and int(_values(again)["bdSeq"]) == bdseq  # same session
        rebirth = host.wait("DBIRTH after the rebirth", _msg("DBIRTH", "cell"), 5)
        assert rebirth["seq"] == 1 and _values(rebirth)["State"] == "running"
        assert {m["name"]: m["alias"] for m in rebirth["metrics"]} == {
            n: m["alias"] for n, m in metrics.items()}  # fmt: skip

        # the primary host goes offline: the node ends its session; back: a new session
        host.send(cmd="state", online=False)
        death = host.wait("NDEATH on host offline", _msg("NDEATH"), 10)
        assert int(_values(death)["bdSeq"]) == bdseq
        host.send(cmd="state", online=True)
        reborn = host.wait("NBIRTH of a new session", _msg("NBIRTH"), 15)
        bdseq2 = int(_values(reborn)["bdSeq"])
        assert bdseq2 == (bdseq + 1) % 256 and reborn["seq"] == 0
        host.wait("DBIRTH of the new session", _msg("DBIRTH", "cell"), 5)

        # a DCMD through the operator path: the cell stops as for cmd/stop
        host.send(cmd="dcmd", edge=EDGE, device="cell", name="Command/Stop", type="Boolean",
                  value=True)  # fmt: skip
        host.wait("DDATA: the cell stopped by a DCMD",
                  lambda m: _msg("DDATA", "cell")(m)
                  and _values(m).get("State") in ("stopping", "ready"), 10)  # fmt: skip

        os.kill(node.pid, signal.SIGKILL)
        node.wait(5)
        will = host.wait("NDEATH (the will) after kill -9", _msg("NDEATH"), 10)
        assert int(_values(will)["bdSeq"]) == bdseq2 and will["online"] is False
        while not host.lines.empty():
            host.seen.append(host.lines.get())
        findings = [m for m in host.seen if m.get("event") == "finding"]
        assert findings == [], findings  # seq continuity, aliases, bdSeq: all as a host expects
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.wait(5)
        host.stop()
        broker.stop()
