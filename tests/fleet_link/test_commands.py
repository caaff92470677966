"""Commands over a real mosquitto: refusals get the right error result, replays the first
result (also after a restart), and the node keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet_link.brain import Brain, Message
from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto

SPEED_SCHEMA = {
    "type": "object",
    "required": ["speed_mps"],
    "additionalProperties": False,
    "properties": {"speed_mps": {"type": "number"}},
}


def make_link(tmp_path: Path, url: str, calls: list) -> EdgeLink:
    base = link_config(tmp_path, url)
    cfg = MqttConfig.model_validate(
        {
            **base.model_dump(),
            "commands": {"limits": {"set_belt_speed": {"speed_mps": {"min": 0, "max": 2.5}}}},
        }
    )
    link = EdgeLink(cfg, "site", "edge-1")
    link.commands.register(
        "set_belt_speed",
        lambda args: calls.append(args["speed_mps"]) or {"speed_mps": args["speed_mps"]},
        SPEED_SCHEMA,
        "set the belt speed",
    )
    return link.start()


@pytest.fixture
def setup(tmp_path: Path, mosquitto: Mosquitto):
    calls: list[float] = []
    results: list[Message] = []
    brain = Brain(mosquitto.url, "site", on_message=results.append).start()
    link = make_link(tmp_path, mosquitto.url, calls)
    assert link.connected.wait(10)
    time.sleep(0.3)  # the node's command subscription is in place
    yield brain, link, calls, results
    link.stop()
    brain.stop()


def wait_result(results: list[Message], pred, timeout: float = 5.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in results:
            if m.kind == "cmd_result" and pred(m):
                return m
        time.sleep(0.02)
    raise AssertionError("no such command result")


def test_malformed_json_gets_an_error_result(setup):
    brain, _link, calls, results = setup
    brain.send_raw("edge-1", "set_belt_speed", b'{"request_id": "r1", "args": {')
    m = wait_result(
        results,
        lambda m: m.body["error"]["code"] == "malformed_json" if not m.body["ok"] else False,
    )
    assert m.body["request_id"] is None and m.name == "set_belt_speed"
    assert "JSON" in m.body["error"]["message"]
    assert calls == []


def test_wrong_schema_gets_an_error_result_naming_the_field(setup):
    brain, _link, calls, _ = setup
    r = brain.command("edge-1", "set_belt_speed", {"speed_mps": "fast"}, timeout=5)
    assert not r.ok and r.error["code"] == "invalid_schema"
    assert "args.speed_mps" in r.error["message"] and "number" in r.error["message"]
    brain.send_raw("edge-1", "set_belt_speed", b'{"request_id": "r9", "speed": 1}')
    r = brain.expect_result("r9").result(5)
    assert r.error["code"] == "invalid_schema" and "speed" in r.error["message"]
    assert calls == []


def test_out_of_range_value_gets_an_error_result(setup):
    brain, _link, calls, _ = setup
    r = brain.command("edge-1", "set_belt_speed", {"speed_mps": 9.0}, timeout=5)
    assert not r.ok and r.error["code"] == "out_of_range"
    assert r.error["path"] == "args.speed_mps" and "2.5" in r.error["message"]
    assert calls == []


def test_unknown_command_gets_an_error_result(setup):
    brain, *_ = setup
    r = brain.command("edge-1", "self_destruct", {}, timeout=5)
    assert r.error["code"] == "unknown_command" and "set_belt_speed" in r.error["message"]


def test_replayed_request_id_returns_the_first_result_even_after_restart(
    setup, tmp_path, mosquitto
):
    brain, link, calls, _ = setup
    first = brain.command(
        "edge-1", "set_belt_speed", {"speed_mps": 1.0}, request_id="r5", timeout=5
    )
    assert first.ok and first.result == {"speed_mps": 1.0} and not first.replayed
    again = brain.command(
        "edge-1", "set_belt_speed", {"speed_mps": 2.0}, request_id="r5", timeout=5
    )
    assert again.replayed and again.result == {"speed_mps": 1.0}
    assert calls == [1.0]  # executed once
    link.stop()
    link2 = make_link(tmp_path, mosquitto.url, calls)
    try:
        assert link2.connected.wait(10)
        time.sleep(0.3)
        third = brain.command(
            "edge-1", "set_belt_speed", {"speed_mps": 2.0}, request_id="r5", timeout=5
        )
        assert third.replayed and third.result == {"speed_mps": 1.0} and calls == [1.0]
    finally:
        link2.stop()


def test_node_keeps_running_after_every_refusal_and_a_failing_handler(setup):
    brain, link, calls, _ = setup

    def broken(_args: dict) -> dict:
        raise RuntimeError("motor driver not ready")

    link.commands.register("jog", broken)
    for payload in (b"\xff\xfe", b"[]", b"null", b'{"request_id": ""}', b"{" * 10000):
        brain.send_raw("edge-1", "set_belt_speed", payload)
    r = brain.command("edge-1", "jog", {}, timeout=5)
    assert r.error["code"] == "handler_failed" and "motor driver" in r.error["message"]
    assert brain.command("edge-1", "ping", {}, timeout=5).ok
    assert all(t.is_alive() for t in link._threads)
    assert brain.command("edge-1", "set_belt_speed", {"speed_mps": 2.5}, timeout=5).ok
    assert calls == [2.5]


def test_only_this_nodes_command_topics_are_obeyed(setup):
    brain, _link, calls, _ = setup
    brain.send_raw("edge-2", "set_belt_speed", b'{"request_id": "x1", "args": {"speed_mps": 1}}')
    brain._client.publish(
        "wolfpack/v1/site/edge-1/cmd_result/set_belt_speed",
        b'{"request_id": "x2", "args": {"speed_mps": 1}}',
        qos=1,
    )
    brain._client.publish(
        "wolfpack/v1/other/edge-1/cmd/set_belt_speed",
        b'{"request_id": "x3", "args": {"speed_mps": 1}}',
        qos=1,
    )
    assert brain.command("edge-1", "ping", {}, timeout=5).ok  # processed after the three above
    time.sleep(0.3)
    assert calls == []


def test_events_telemetry_state_and_faults_reach_the_brain(setup):
    brain, link, _, results = setup
    link.publish_event("parcel", {"parcel_id": "P1", "outcome": "sorted"})
    link.report_telemetry("belt", {"speed_mps": 1.2})
    assert link.report_telemetry("belt", {"speed_mps": 1.2}) is None  # unchanged: not sent
    link.set_fault("estop", True, severity="critical")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "estop" not in brain.nodes.get("edge-1", _Empty()).faults:
        time.sleep(0.05)
    state = brain.nodes["edge-1"]
    assert state.online and state.session >= 1 and "estop" in state.faults
    kinds = {m.channel for m in results}
    assert {"events/parcel", "telemetry/belt", "events/fault"} <= kinds


class _Empty:
    faults: list[str] = []  # noqa: RUF012


def test_last_will_marks_a_killed_node_offline_and_shutdown_says_goodbye(
    tmp_path: Path, mosquitto: Mosquitto
):
    states: list[tuple[str, str, int]] = []
    brain = Brain(
        mosquitto.url,
        "site",
        on_state=lambda s: states.append((s.status, s.body.get("reason", ""), s.session)),
    )
    brain.start()
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fleet_link.edge_process",
            "--broker",
            mosquitto.url,
            "--db",
            str(tmp_path / "outbox.sqlite3"),  # the file link_config names
        ],
        stdout=subprocess.DEVNULL,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("online", "", 1) not in states:
            time.sleep(0.05)
        assert ("online", "", 1) in states
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and states[-1][0] != "offline":
            time.sleep(0.05)
        assert states[-1] == ("offline", "connection lost", 1)  # the last will, same session
        link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "edge-1").start()
        assert link.connected.wait(10)
        time.sleep(0.3)
        link.stop()
        time.sleep(0.3)
        assert states[-1] == ("offline", "shutdown", 2), states  # a new session, a goodbye
    finally:
        if proc.poll() is None:
            proc.kill()
        brain.stop()
