"""Commands that arrive late or twice, over a real mosquitto (issue 17, item 5): a retained
command is refused, not run; a stale one is refused; a repeated request id gets the first
result marked as a replay; the last will says only what is true at death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link.brain import Brain, Message
from fleet_link.commands import (
    RETAINED,
    STALE,
    CommandInbox,
    CommandRegistry,
    stamp_epoch,
)
from fleet_link.config import CommandsConfig
from fleet_link.envelope import parse_stamp, utc_stamp
from fleet_link.link import EdgeLink
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto

SITE, NODE = "site", "edge-1"
TOPIC = f"wolfpack/v1/{SITE}/{NODE}"


def raw_client(url_port: int) -> mqtt.Client:
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{time.monotonic_ns()}")
    c.on_connect = lambda *_a: done.set()
    c.connect("127.0.0.1", url_port)
    c.loop_start()
    assert done.wait(5)
    return c


def command(rid: str, ts: str | None = "now") -> bytes:
    body: dict[str, object] = {"request_id": rid, "args": {}}
    if ts is not None:
        body["ts"] = utc_stamp() if ts == "now" else ts
    return json.dumps(body).encode()


def ago(seconds: float) -> str:
    return utc_stamp(time.time() - seconds)


@pytest.fixture
def cell(tmp_path: Path, mosquitto: Mosquitto):
    """A link with a 'start' that counts its runs, and a brain collecting results."""
    ran: list[str] = []
    results: list[Message] = []
    brain = Brain(mosquitto.url, SITE, on_message=results.append).start()
    link = EdgeLink(link_config(tmp_path, mosquitto.url), SITE, NODE)
    link.commands.register("start", lambda _a: ran.append("start") or {"state": "running"})
    yield mosquitto, brain, link, ran, results
    link.stop()
    brain.stop()


def result_of(results: list[Message], rid: str | None, n: int = 1, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m.body for m in results if m.kind == "cmd_result" and m.body["request_id"] == rid]
        if len(got) >= n:
            return got
        time.sleep(0.02)
    raise AssertionError(f"no {n} result(s) for {rid!r}: {[m.body for m in results]}")


def test_a_retained_command_is_refused_at_connect_and_not_run(cell):
    broker, _brain, link, ran, results = cell
    raw = raw_client(broker.port)
    # an operator's mistake: 'start' published with the retain flag before the node connects
    raw.publish(f"{TOPIC}/cmd/start", command("r-ret"), qos=1, retain=True).wait_for_publish(5)
    link.start()
    assert link.connected.wait(10)
    [body] = result_of(results, "r-ret")
    assert body["ok"] is False and body["error"]["code"] == RETAINED
    message = body["error"]["message"]
    assert "retain" in message and "mosquitto_pub -r -n" in message
    assert ran == []
    # cleared as the refusal says: the empty message is no command, and is answered so
    raw.publish(f"{TOPIC}/cmd/start", b"", qos=1, retain=True).wait_for_publish(5)
    [cleared] = result_of(results, None)
    assert cleared["error"]["code"] == "malformed_json" and ran == []
    # the refusal is not remembered: the same request sent properly runs
    raw.publish(f"{TOPIC}/cmd/start", command("r-ret"), qos=1).wait_for_publish(5)
    bodies = result_of(results, "r-ret", n=2)
    assert bodies[1]["ok"] is True and "replayed" not in bodies[1] and ran == ["start"]
    raw.loop_stop()


def test_a_live_command_on_a_node_subscribed_before_is_not_taken_for_retained(cell):
    broker, _brain, link, ran, results = cell
    link.start()
    assert link.connected.wait(10)
    time.sleep(0.3)
    raw = raw_client(broker.port)
    # published with the retain flag while the node listens: delivered live (flag cleared by
    # the broker), so it runs once; at the node's next connect the stored copy is refused
    raw.publish(f"{TOPIC}/cmd/start", command("r-live"), qos=1, retain=True).wait_for_publish(5)
    [body] = result_of(results, "r-live")
    assert body["ok"] is True and ran == ["start"]
    raw.publish(f"{TOPIC}/cmd/start", b"", qos=1, retain=True).wait_for_publish(5)
    raw.loop_stop()


def test_a_stale_command_is_refused_and_a_fresh_one_with_the_same_id_runs(cell):
    _broker, brain, link, ran, results = cell
    link.start()
    assert link.connected.wait(10)
    time.sleep(0.3)
    brain.send_raw(NODE, "start", command("r-old", ago(45)))
    [body] = result_of(results, "r-old")
    assert body["error"]["code"] == STALE and body["error"]["path"] == "ts"
    assert "older than mqtt.commands.max_age_s 30" in body["error"]["message"]
    brain.send_raw(NODE, "start", command("r-future", ago(-120)))
    [body] = result_of(results, "r-future")
    assert body["error"]["code"] == STALE and "in the future" in body["error"]["message"]
    brain.send_raw(NODE, "start", command("r-bad", "yesterday at noon"))
    [body] = result_of(results, "r-bad")
    assert body["error"]["code"] == "invalid_schema"
    assert ran == []
    brain.send_raw(NODE, "start", command("r-old"))  # sent again, fresh: runs
    assert result_of(results, "r-old", n=2)[1]["ok"] is True and ran == ["start"]
    brain.send_raw(NODE, "start", command("r-nots", None))  # no ts: not checked
    assert result_of(results, "r-nots")[0]["ok"] is True and ran == ["start", "start"]


def test_a_reused_request_id_gets_the_first_result_marked_replayed(cell):
    _broker, brain, link, ran, _results = cell
    link.start()
    assert link.connected.wait(10)
    time.sleep(0.3)
    first = brain.command(NODE, "start", {}, timeout=5, request_id="op-1")
    again = brain.command(NODE, "start", {}, timeout=5, request_id="op-1")
    assert first.ok and not first.replayed
    assert again.ok and again.replayed and again.result == first.result
    assert ran == ["start"]  # acted on once


def test_the_last_will_says_only_offline_and_why(tmp_path: Path, mosquitto: Mosquitto):
    """kill -9: the broker publishes the will; it carries no snapshot from connect time."""
    got: list[tuple[bytes, float]] = []
    raw = raw_client(mosquitto.port)
    raw.on_message = lambda _c, _u, m: got.append((bytes(m.payload), time.time()))
    raw.subscribe(f"{TOPIC}/state", qos=1)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet_link.edge_process", "--broker", mosquitto.url,
         "--db", str(tmp_path / "outbox.sqlite3")],
        stdout=subprocess.DEVNULL,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(got) < 2:  # two real states
            time.sleep(0.05)
        assert len(got) >= 2
        killed = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and b"connection lost" not in got[-1][0]:
            time.sleep(0.05)
        will = json.loads(got[-1][0])
        last_real = json.loads(got[-2][0])
        assert will["status"] == "offline" and will["reason"] == "connection lost"
        assert set(will) == {"node", "session", "seq", "ts", "status", "reason"}, will
        assert will["seq"] == 0 and will["session"] == last_real["session"]
        assert "outbox" in last_real and last_real["status"] == "online"
        assert got[-1][1] >= killed  # it came after the death, its ts is the connect's
        assert parse_stamp(will["ts"]) <= parse_stamp(last_real["ts"])
    finally:
        if proc.poll() is None:
            proc.kill()
        raw.loop_stop()


# ---- without a broker: the checks themselves ---------------------------------------------------


def test_the_inbox_refuses_a_retained_command_without_queueing_its_payload():
    reg = CommandRegistry()
    reg.register("start", lambda _a: {"ran": True})
    inbox = CommandInbox(reg, CommandsConfig())
    inbox.offer("start", command("r1"), retained=True)
    item = inbox.take("bulk", 0.1)
    assert item is not None and item.payload == b"" and item.refusal is not None
    assert item.refusal.request_id == "r1" and item.refusal.body["error"]["code"] == RETAINED
    assert not item.refusal.remember and inbox.stats()["refused"]["retained"] == 1


def test_the_age_check_uses_the_configured_age_and_can_be_off():
    now = 1_800_000_000.0
    reg = CommandRegistry(max_age_s=5, wall_clock=lambda: now)
    reg.register("start", lambda _a: {"ran": True})

    def run(ts: str) -> dict:
        return reg.execute("start", json.dumps({"request_id": "r", "ts": ts}).encode()).body

    assert run(utc_stamp(now - 4.9))["ok"] is True
    assert run(utc_stamp(now - 5.1))["error"]["code"] == STALE
    assert run(utc_stamp(now + 5.1))["error"]["code"] == STALE
    assert run("2027-01-15T08:00:00+01:00")["error"]["code"] == STALE  # offsets understood
    assert run("2027-01-15T08:00:00")["error"]["code"] == "invalid_schema"  # no zone
    off = CommandRegistry(max_age_s=0, wall_clock=lambda: now)
    off.register("start", lambda _a: {"ran": True})
    assert off.execute("start", command("r", utc_stamp(now - 1e6))).body["ok"] is True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.integers(), st.none(), st.floats()))
def test_stamp_epoch_never_raises(value):
    out = stamp_epoch(value)
    assert out is None or isinstance(out, float)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_stamp_epoch_reads_what_senders_write(when, offset_min):
    epoch = when.timestamp()
    assert stamp_epoch(utc_stamp(epoch)) == pytest.approx(epoch, abs=0.001)
    shifted = when.astimezone(
        __import__("datetime").timezone(timedelta(minutes=offset_min))
    ).isoformat()
    assert stamp_epoch(shifted) == pytest.approx(epoch, abs=1e-6)
    assert stamp_epoch(when.replace(tzinfo=None).isoformat()) is None  # no zone: refused
