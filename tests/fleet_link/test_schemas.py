"""The documented schemas are the truth: every payload a node really publishes validates."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion
from ruamel.yaml import YAML

from fleet_link import schemas, topics
from fleet_link.brain import Brain
from fleet_link.link import EdgeLink
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import REPO, Mosquitto

SCHEMA_OF_KIND = {
    "state": "state.json",
    "telemetry": "telemetry.json",
    "events": "event.json",
    "cmd_result": "command-result.json",
}


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_points_at_the_schemas_the_code_uses():
    doc = YAML(typ="safe").load((REPO / "docs" / "asyncapi.yaml").read_text())
    files = [r for r in _refs(doc) if not r.startswith("#")]
    assert files, "no payload schemas referenced"
    for ref in files:
        path = (REPO / "docs" / ref).resolve()
        assert path.parent == schemas.SCHEMA_DIR and path.is_file(), ref
    for kind in ("state", "telemetry", "events", "cmd", "cmd_result"):
        assert any(
            f"/{kind}/" in c["address"] or c["address"].endswith(f"/{kind}")
            for c in doc["channels"].values()
        ), kind
    for path in schemas.SCHEMA_DIR.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_every_published_payload_validates(tmp_path: Path, mosquitto: Mosquitto):
    seen: list[tuple[str, bytes]] = []
    ready = threading.Event()
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy")
    spy.on_connect = lambda c, *_a: (c.subscribe("wolfpack/v1/#", qos=1), ready.set())
    spy.on_message = lambda _c, _u, m: seen.append((m.topic, bytes(m.payload)))
    spy.connect("127.0.0.1", mosquitto.port)
    spy.loop_start()
    assert ready.wait(5)
    brain = Brain(mosquitto.url, "site").start()
    link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "edge-1").start()
    try:
        assert link.connected.wait(10)
        time.sleep(0.3)
        link.publish_event(
            "parcel",
            {  # as edge/cell/record.py ParcelRecord.to_json builds it
                "parcel_id": 1,
                "outcome": "sorted",
                "chute": "chute-3",
                "actual_chute": "chute-3",
                "confirmed": True,
                "reason": "brain",
                "decision_source": "brain",
                "label": "JJD1",
                "label_source": "scanner",
                "class": None,
                "size_mm": None,
                "lead_count": 1200,
                "scheduled_count": 3400,
                "fired_count": 3401,
                "divert_error_mm": 0.4,
                "latency_ms": {"label_to_decision": 3.1},
                "story": [],
            },
        )
        link.set_fault("estop", True, severity="critical", message="e-stop pressed")
        link.publish_event("safety", {"from": "running", "to": "estop", "cause": "e-stop pressed"})
        link.report_telemetry("belt", {"speed_mps": 1.2, "running": True})
        brain.command("edge-1", "ping", {}, timeout=5)
        brain.command("edge-1", "ping", {"x": 1}, timeout=5)  # an error result
        brain.send_raw("edge-1", "ping", b"not json")
        assert link.wait_drained(5)
        time.sleep(0.5)
    finally:
        link.stop()
        brain.stop()
        time.sleep(0.3)
        spy.loop_stop()
        spy.disconnect()
    checked: set[str] = set()
    for topic, payload in seen:
        parsed = topics.parse(topic)
        if parsed.kind == "cmd":
            if payload != b"not json":
                assert schemas.validate("command.json", json.loads(payload)) == [], topic
            continue
        obj = json.loads(payload)
        assert schemas.validate(SCHEMA_OF_KIND[parsed.kind], obj) == [], (topic, obj)
        if parsed.kind == "events":
            assert schemas.validate(f"event-{parsed.name}.json", obj["data"]) == [], obj
        checked.add(parsed.channel)
    assert {
        "state",
        "events/parcel",
        "events/fault",
        "events/safety",
        "telemetry/belt",
        "cmd_result/ping",
    } <= checked


def test_the_state_schema_describes_every_outbox_figure_the_node_sends():
    from dataclasses import fields

    from fleet_link.outbox import OutboxStats

    assert schemas.load("state.json")["properties"]["outbox"] == {"$ref": "outbox-stats.json"}
    described = set(schemas.load("outbox-stats.json")["properties"])
    assert {f.name for f in fields(OutboxStats)} <= described
