"""Every message of a simulated run with faults, taken off a real mosquitto, against
docs/asyncapi.yaml: each topic is a channel of the document, each payload valid against that
channel's schema and without members no schema describes.

The run: `wolfpack sim` (the real node in its own process, the simulated cell, the reference
brain, the operator) on a mosquitto of its own, with an e-stop, the PLC going silent (the
cell faults), the brain away (degraded), a flood of status commands (rate_limited answers)
and a kill -9 of the node (its last will), restarted and started again by the operator; its
Sparkplug B edge node is on, so its topics are on the wire too (documented channels; their
protobuf payloads are checked by tests/system/test_sparkplug_host.py). A spy subscribed to
``#`` before the node started keeps every message the broker routed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.sim.faults import parse_faults
from edge.sim.run import DEFAULT_CONFIG, CellSimulation, SimOptions
from tests.fleet_link import contract
from tests.fleet_link.mosquitto import Mosquitto

FAULTS = "brain-absent@3+1.5,estop@6+1,plc-silent@9+1,command-flood=300@9+0.3,node-kill@13+1"


class Spy:
    """A plain paho client on ``#``: what any operator's tool would see."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="contract-spy")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "the spy could not subscribe"

    def _on_connect(self, client: mqtt.Client, *_a: object) -> None:
        client.subscribe("#", qos=1)
        self._ready.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.seen)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_every_message_of_a_run_with_faults_is_documented_and_valid(tmp_path: Path) -> None:
    config = tmp_path / "sim-cell.yaml"  # the sim's cell, with its Sparkplug B edge node on
    text = DEFAULT_CONFIG.read_text()
    if "\nsparkplug:" not in text:
        text += "\nsparkplug: {enabled: true}\n"
    config.write_text(text)
    broker = Mosquitto(tmp_path).start()
    spy = Spy(broker.port)
    try:
        sim = CellSimulation(
            SimOptions(
                rate_pph=12_000, duration_s=16, faults=parse_faults(FAULTS),
                broker=broker.url, workdir=tmp_path / "run", drain_timeout_s=5, config=config,
            )
        )  # fmt: skip
        report = sim.run()
        time.sleep(0.5)  # the last goodbye
    finally:
        spy.stop()
        broker.stop()
    brain = sim.board.cell.brain  # type: ignore[union-attr]
    chans = contract.channels(
        {"requestEvent": brain.request_event, "answerCommand": brain.answer_command}
    )
    seen = spy.messages()
    problems = [p for topic, payload, _r in seen for p in contract.check(topic, payload, chans)]
    assert problems[:20] == [], f"{len(problems)} problems in {len(seen)} messages"
    by_channel = Counter(
        contract.channel_of(topic, chans).id  # type: ignore[union-attr]
        for topic, _p, _r in seen
        if not topic.startswith(contract.SPARKPLUG)
    )
    # the run did what it is for: faults, refusals, a death and a restart were on the wire
    want = {"state", "telemetryBelt", "telemetryPlc", "telemetryMcu", "telemetryChutes",
            "telemetrySystem", "eventParcel", "eventRouteRequest", "eventFault",
            "eventSafety", "eventDegraded", "cmdRoute", "resultRoute", "cmdReset",
            "resultReset", "cmdStart", "resultStart", "cmdStatus"}  # fmt: skip
    assert want <= set(by_channel), by_channel
    assert any(b'"status":"offline"' in p for t, p, _r in seen if t.endswith("/state")), (
        "no last will after the kill"
    )
    spb = Counter(t.split("/")[2] for t, _p, _r in seen if t.startswith(contract.SPARKPLUG))
    assert {"NBIRTH", "DBIRTH", "DDATA", "NDEATH"} <= set(spb), spb
    assert by_channel["eventParcel"] >= report["node_records"] >= 1, (by_channel, report)
