"""The vehicle node on a real mosquitto, its drive MCU simulated on a real pty (no world: the
wheels are the simulated firmware's), when its network path to the broker is lost.

What the standard and docs/sim-amr.md say, checked against what the vehicle publishes:
CONNECTIONBROKEN is retained by the broker within 1.5 x keepalive of the loss (the broker
learns of it only by the keepalive: the path is a black hole, not a closed socket); the
vehicle keeps driving its released base and stops at its last released node, the horizon
untouched; when the path is back it publishes ONLINE (retained) and a full state. Every
message it publishes validates against the official 2.1.0 schemas with no unknown fields."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli.sim_amr import LinkProxy
from edge.config import load_board_config
from tests.fleet_link.mosquitto import Mosquitto
from tests.fleet_link.vda5050.helpers import assert_valid

REPO = Path(__file__).resolve().parents[2]
SERIAL = "sim-amr-01"
PREFIX = f"uagv/v2/wolfpack/{SERIAL}"
KEEPALIVE_S = 5
MAP = "wolfpack-demo-1"
FIELD_PIN, ESTOP_PIN = 1, 0


class Observer:
    """A master's-eye view: every message on the vehicle's topics, with its time and retain."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, str, dict[str, Any], bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{id(self):x}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{PREFIX}/#", qos=1)
        self.client.loop_start()
        self._header = 0

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        topic = msg.topic.rsplit("/", 1)[1]
        with self.lock:
            self.got.append((time.monotonic(), topic, json.loads(msg.payload), bool(msg.retain)))

    def of(self, topic: str) -> list[tuple[float, dict[str, Any], bool]]:
        with self.lock:
            return [(t, b, r) for t, tp, b, r in self.got if tp == topic]

    def state(self) -> dict[str, Any] | None:
        states = self.of("state")
        return states[-1][1] if states else None

    def send(self, topic: str, body: dict[str, Any]) -> None:
        self._header += 1
        head = {
            "headerId": self._header,
            "timestamp": "2026-12-02T05:00:00.000Z",
            "version": "2.1.0",
            "manufacturer": "wolfpack",
            "serialNumber": SERIAL,
        }
        self.client.publish(f"{PREFIX}/{topic}", json.dumps({**head, **body}), qos=0)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(what: str, pred: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def vehicle_node(
    tmp_path: Path, broker_port: int
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The simulated drive MCU on a pty and `wolfpack run` of configs/sim-amr.yaml on it."""
    from sim_hardware.mcu import SimMcuOptions, SimMcuThread
    from sim_hardware.mcu.drive import DriveFirmware

    link = tmp_path / "mcu"
    sim = SimMcuThread(SimMcuOptions(link=str(link), seed=1, watchdog_ms=1000))
    sim.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        assert sim.sim is not None
        sim.call(sim.sim.firmware.register_extension, DriveFirmware())
        sim.call(sim.sim.firmware.set_input, FIELD_PIN, 1)  # active low: 1 = clear
        sim.call(sim.sim.firmware.set_input, ESTOP_PIN, 1)
        data = load_board_config(REPO / "configs" / "sim-amr.yaml").model_dump(
            mode="json", exclude_none=True
        )
        data["mcus"][0]["port"] = str(link)
        data["mqtt"]["broker"] = f"mqtt://127.0.0.1:{broker_port}"
        data["mqtt"]["keepalive_s"] = KEEPALIVE_S
        data["mqtt"]["outbox"]["path"] = str(tmp_path / "outbox.sqlite")
        data["amr"]["floor_codes"].pop("camera", None)  # none here: initPosition places it
        cfg = tmp_path / "vehicle.yaml"
        cfg.write_text(json.dumps(data))
        log = tmp_path / "node.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli.main", "run", str(cfg), "--start"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        yield proc, log
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        sim.stop()


def init_position(obs: Observer, x: float, y: float, theta: float, node: str) -> None:
    params = {"x": x, "y": y, "theta": theta, "mapId": MAP, "lastNodeId": node}
    obs.send(
        "instantActions",
        {
            "actions": [
                {
                    "actionId": f"init-{node}",
                    "actionType": "initPosition",
                    "blockingType": "NONE",
                    "actionParameters": [{"key": k, "value": v} for k, v in params.items()],
                }
            ]
        },
    )


def order_body(
    order_id: str, points: list[tuple[str, float, float]], released: int
) -> dict[str, Any]:
    """Nodes along ``points``; the first ``released`` nodes (and edges between them) are the
    base, the rest the horizon."""
    nodes, edges = [], []
    for i, (nid, x, y) in enumerate(points):
        pos = {"x": x, "y": y, "mapId": MAP, "allowedDeviationXY": 0.05}
        nodes.append(
            {
                "nodeId": nid,
                "sequenceId": 2 * i,
                "released": i < released,
                "nodePosition": pos,
                "actions": [],
            }
        )
        if i:
            a = points[i - 1][0]
            edges.append(
                {
                    "edgeId": f"{a}-{nid}",
                    "sequenceId": 2 * i - 1,
                    "released": i < released,
                    "startNodeId": a,
                    "endNodeId": nid,
                    "maxSpeed": 0.8,
                    "actions": [],
                }
            )
    return {"orderId": order_id, "orderUpdateId": 0, "nodes": nodes, "edges": edges}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path).start()
    try:
        yield m
    finally:
        m.stop()


def test_link_lost_mid_edge_will_retained_base_finished_online_and_full_state_after(
    tmp_path: Path, broker: Mosquitto
) -> None:
    proxy = LinkProxy("127.0.0.1", broker.port).start()
    obs = Observer(broker.port)
    try:
        with vehicle_node(tmp_path, proxy.port) as (proc, log):
            wait_for("a first state", obs.state, 30)
            init_position(obs, 0.0, 0.0, 0.0, "A")
            wait_for("the position", lambda: (obs.state() or {}).get("lastNodeId") == "A", 10)
            # A -> B -> C released, D horizon: 2.4 m of base on a straight line
            obs.send(
                "order",
                order_body(
                    "o1", [("A", 0, 0), ("B", 1.2, 0), ("C", 2.4, 0), ("D", 3.6, 0)], released=3
                ),
            )
            wait_for("driving", lambda: (obs.state() or {}).get("driving"), 20)
            cut_at = time.monotonic()
            proxy.cut = True
            broken = wait_for(
                "CONNECTIONBROKEN",
                lambda: [
                    t
                    for t, b, _ in obs.of("connection")
                    if b["connectionState"] == "CONNECTIONBROKEN"
                ],
                1.5 * KEEPALIVE_S + 5,
            )
            # MQTT: the broker drops a client silent for 1.5 x keepalive; mosquitto looks at
            # its clients' keepalives about once a second, and a loaded machine adds more
            took = broken[0] - cut_at
            print(f"CONNECTIONBROKEN {took:.1f} s after the path went silent")
            assert 1.5 * KEEPALIVE_S - 1.0 <= took <= 1.5 * KEEPALIVE_S + 3.0
            # a master that subscribes now finds the will retained
            late = Observer(broker.port)
            try:
                wait_for("the retained will", lambda: late.of("connection"), 5)
                _, body, retained = late.of("connection")[-1]
                assert retained and body["connectionState"] == "CONNECTIONBROKEN"
            finally:
                late.stop()
            time.sleep(max(0.0, broken[0] + 1.0 - time.monotonic()))
            heal_at = time.monotonic()
            proxy.cut = False
            online = wait_for(
                "ONLINE again",
                lambda: [
                    t
                    for t, b, _ in obs.of("connection")
                    if b["connectionState"] == "ONLINE" and t > heal_at
                ],
                15,
            )
            state = wait_for(
                "a state after ONLINE",
                lambda: [b for t, b, _ in obs.of("state") if t >= online[0]],
                5,
            )[0]
            # the base was driven to its last released node, the horizon left alone
            final = wait_for(
                "standing at C",
                lambda: [
                    b
                    for t, b, _ in obs.of("state")
                    if t >= online[0] and b["lastNodeId"] == "C" and not b["driving"]
                ],
                10,
            )[-1]
            assert [(n["nodeId"], n["released"]) for n in final["nodeStates"]] == [("D", False)]
            assert [(e["edgeId"], e["released"]) for e in final["edgeStates"]] == [("C-D", False)]
            assert final["agvPosition"]["x"] == pytest.approx(2.4, abs=0.05)
            assert not [e for e in final["errors"] if e["errorLevel"] == "FATAL"], final["errors"]
            # a full state: everything the schema requires, nothing it does not know
            for key in (
                "orderId",
                "nodeStates",
                "edgeStates",
                "actionStates",
                "batteryState",
                "safetyState",
                "agvPosition",
                "errors",
                "driving",
            ):
                assert key in state
            assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        obs.stop()
        proxy.stop()
    for _, topic, body, _ in obs.got:
        if topic in ("state", "connection", "visualization", "factsheet"):
            assert_valid(topic, body)


@pytest.mark.parametrize("name", ["configs/examples/amr-tote-carrier.yaml", "configs/sim-amr.yaml"])
def test_vehicle_configs_build_their_machine_on_the_runtime(name: str) -> None:
    from edge.cli.run_cmd import build_node

    node = build_node(load_board_config(REPO / name), "test", None, False)
    assert node.machine.kind == "amr"
    assert node.machine.devices == frozenset({"mcu"})
