"""The payload schemas are checked against the code that builds the payloads, so they cannot
drift: a cell node (CellNode with its FleetBridge and EdgeLink, no network) goes through
ready, running, degraded, e-stop, refused and accepted operator commands, alarms of every
kind, a task crash, route requests, parcel records of every outcome, a dead letter and every
command error the link and its handlers send. Every message it stored for sending is then
checked against the channel docs/asyncapi.yaml gives its topic: valid, and no member that no
schema describes. Enums of the schemas are compared with the code's own types."""

from __future__ import annotations

import ast
import asyncio
import json
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cell.events import Alarm, AlarmKind, AskBrain, PublishRecord
from edge.cell.record import STAGES, DecisionSource, Outcome, ParcelRecord, StoryEntry
from edge.config import load_board_config
from edge.node import config_apply
from edge.node.cell_node import CellNode
from edge.node.fleet import FleetBridge
from edge.safety.machine import SafetyAlarm, State
from fleet_link import schemas
from fleet_link.commands import CommandError, Inbound, error_body
from fleet_link.config import LimitConfig
from fleet_link.envelope import encode
from fleet_link.link import EdgeLink
from tests.fleet_link import contract
from tests.fleet_link.conftest import link_config

REPO = contract.REPO
SITE, NODE = "dc-1", "cell-07"
PREFIX = f"wolfpack/v1/{SITE}/{NODE}"


class Cell:
    """A real CellNode and FleetBridge on a loop of their own; the link is never started:
    what the node would send stays in its outbox, where the test reads it."""

    def __init__(self, tmp_path: Path) -> None:
        self.board = load_board_config(REPO / "configs" / "sim-cell.yaml")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.node = CellNode(self.board, journal_file=tmp_path / "parcels.json")
        self.node.loop = self.loop
        cfg = link_config(tmp_path, "mqtt://127.0.0.1:1")
        self.bridge = FleetBridge(
            cfg, SITE, NODE, self.board.cell.brain, self.loop,  # type: ignore[union-attr]
            self.node._on_route, self.node._on_operator, reporter=self.node.reporter,
            on_ask_failed=self.node._ask_failed, config_version="12",
        )  # fmt: skip
        self.node.fleet = self.bridge
        self.link: EdgeLink = self.bridge.link
        self.link.extra_state = self.node._state_extra  # type: ignore[attr-defined]

    def command(self, name: str, payload: bytes | dict[str, Any]) -> None:
        """One command through admission, a lane and the link's answer, as from the broker."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.link.inbox.offer(name, raw)
        self.answer(name)

    def answer(self, name: str) -> None:
        item = self.link.inbox.take(self.link.inbox.lane_of(name), 5.0)
        assert isinstance(item, Inbound), name
        self.link._handle_command(item)

    def safety(self, actions: list[Any]) -> None:
        self.node.apply_safety(actions)

    def rows(self) -> list[tuple[str, bytes]]:
        assert self.node.reporter.flush(10.0)
        return [(r.topic, r.payload) for r in self.link.outbox.fetch(0, 100_000)]

    def close(self) -> None:
        self.node.reporter.close(3.0)
        self.link.outbox.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[Cell]:
    c = Cell(tmp_path)
    try:
        yield c
    finally:
        c.close()


def _record(outcome: str, source: str | None, **over: Any) -> ParcelRecord:
    fields: dict[str, Any] = dict(
        parcel_id=41, outcome=outcome, chute="chute-3", actual_chute="chute-3", confirmed=True,
        reason="brain", decision_source=source, label="1.2345", label_source="scanner",
        class_name="box", size_mm=(400.0, 300.0, 120.5), lead_count=120_000,
        scheduled_count=130_000, fired_count=130_004, divert_error_mm=0.4,
        latency_ms={"seen_to_label": 12.5, "label_to_decision": 6.25},
        story=(StoryEntry(1.5, 120_000, "seen", "photo-eye"),),
    )  # fmt: skip
    fields.update(over)
    return ParcelRecord(**fields)


def _ask(c: Cell) -> None:
    now = time.monotonic()
    c.bridge.ask(AskBrain(7, "1.234", None, None, now + 0.4), now)
    c.bridge.ask(AskBrain(8, "WP1-9", "box", (400.0, 300.0, 200.0), now + 0.4), now)


def _run_the_cell(c: Cell) -> None:
    node, now = c.node, time.monotonic()
    for device in sorted(node.safety.devices):
        c.safety(node.safety.device_up(device, now))
    assert node.safety.state is State.READY
    c.command("start", {"request_id": "s1"})
    c.safety(node.safety.device_lost("brain", "3 answers late in a row", now))  # degrades
    c.safety(node.safety.device_up("brain", now))
    _ask(c)
    for outcome in typing.get_args(Outcome):
        for source in (*typing.get_args(DecisionSource), None):
            node._act(PublishRecord(_record(outcome, source)))
    node._act(PublishRecord(_record(
        "lost", None, actual_chute=None, confirmed=False, label=None, label_source=None,
        class_name=None, size_mm=None, scheduled_count=None, fired_count=None,
        divert_error_mm=None, latency_ms={}, story=(),
    )))  # fmt: skip
    for kind in typing.get_args(AlarmKind):
        node._act(Alarm(kind, f"{kind} at chute-3", now))
    node._task_crashed("scanner scanner-1", RuntimeError("line reset"), 2, 0.4)
    c.safety(node.safety.estop(True, now))
    c.command("reset", {"request_id": "r1"})  # refused: the e-stop is still pressed
    c.safety(node.safety.estop(False, now))
    c.command("reset", {"request_id": "r2"})
    c.command("stop", {"request_id": "t1"})  # refused: not running
    c.command("status", {"request_id": "q1"})
    c.command("start", {"request_id": "s2", "args": {}})
    c.command("stop", {"request_id": "t2"})
    c.safety(node.safety.fault("jam: photo-eye induction blocked", now))
    c.safety([SafetyAlarm("the belt did not stop within 800 ms", now)])


def _telemetry(c: Cell) -> None:
    """The node's telemetry task, one step at a time, with the camera feed's figures moving
    (no PLC here: the simulated run's capture has its plc group)."""
    from edge.node.telemetry import NodeTelemetry, effective_groups

    stats = dict.fromkeys(("frames", "processed", "skipped", "labels", "unlabelled"), 0.0)
    c.node.camera = SimpleNamespace(stats={**stats, "process_ms_mean": 0.0})
    task = NodeTelemetry(c.node, effective_groups({}), c.bridge.telemetry)
    now = time.monotonic()
    for step in range(3):  # an empty window, then rates; nothing processed, then some
        c.node.camera.stats.update(frames=10.0 * step, processed=4.0 * (step // 2),
                                   process_ms_mean=12.5)  # fmt: skip
        task.step(now + 6.0 * step)
    c.bridge.telemetry("system", task.system.sample(), "periodic")
    c.node.camera = None


def _every_command_error(c: Cell) -> None:
    limit = c.link.cfg.commands.max_payload_bytes
    c.command("ping", {"request_id": "p1"})
    c.command("ping", {"request_id": "p1"})  # a replay of the first result
    c.command("ping", {"request_id": "p2", "args": {"x": 1}})  # invalid_schema
    c.command("ping", b"not json")  # malformed_json
    c.command("ping", b'{"request_id": "big", "x": "' + b"a" * limit + b'"}')  # too_large
    c.command("ping", b'{"request_id": "deep", "args": ' + b"[" * 40 + b"]" * 40 + b"}")
    c.command("ping", b'{"request_id": "huge", "args": {"n": ' + b"9" * 60 + b"}}")
    c.command("nope", {"request_id": "n1"})  # unknown_command
    c.command(
        "replay",
        {"request_id": "rp1", "args": {"channel": "events/parcel", "from_seq": 1, "to_seq": 3}},
    )
    c.command(
        "replay",
        {"request_id": "rp2", "args": {"channel": "events/parcel", "from_seq": 5, "to_seq": 3}},
    )
    c.command("route", {"request_id": "rt1", "args": {"parcel": 7, "chute": 3}})
    c.command(
        "route",
        {"request_id": "rt2", "args": {"parcel": 8, "chute": None, "reason": "no such label"}},
    )
    c.link.commands.limits["route"] = {"parcel": LimitConfig(max=1000)}
    c.command("route", {"request_id": "rt3", "args": {"parcel": 5000, "chute": 1}})
    c.command("config_push", {"request_id": "cp1", "args": {"config": "node: {}"}})

    def boom(_args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("handler bug")

    c.link.commands.register("boom", boom)
    c.command("boom", {"request_id": "b1"})  # handler_failed (cmd_result/<any other name>)
    for i in range(60):  # ping's bucket holds 50: the rest are rate_limited
        c.link.inbox.offer("ping", json.dumps({"request_id": f"flood-{i}"}).encode())
    for _ in range(60):
        c.answer("ping")
    # a dead letter: an event over max_message_bytes goes out as a placeholder, and the fault
    c.link.publish_event(
        "task_crashed",
        {"task": "x" * c.link.cfg.max_message_bytes, "error": "", "restarts": 0, "retry_in_s": 0},
    )
    c.link.set_fault("outbox_dead_letter", False)


def test_every_message_the_node_builds_matches_its_channel(cell: Cell) -> None:
    _run_the_cell(cell)
    _telemetry(cell)
    _every_command_error(cell)
    rows = cell.rows()
    link = cell.link
    for status, reason in (("online", ""), ("offline", "connection lost"), ("offline", "shutdown")):
        payload = encode(link.node, link.session, 1, link.state(status, reason))
        rows.append((f"{PREFIX}/state", payload))
    chans = contract.channels()
    problems = [p for topic, payload in rows for p in contract.check(topic, payload, chans)]
    assert problems == []
    hit = {contract.channel_of(topic, chans).id for topic, _ in rows}  # type: ignore[union-attr]
    published = {c.id for c in chans if not c.id.startswith("cmd")}
    # what this test does not make: config/status (its own test), plc telemetry (no PLC)
    assert published - hit == {"configStatus", "telemetryPlc"}
    codes = set()
    for topic, payload in rows:
        body = json.loads(payload)
        if "/cmd_result/" in topic and "error" in body:
            codes.add(body["error"]["code"])
    assert codes >= {
        "malformed_json", "too_large", "too_deep", "huge_number", "invalid_schema",
        "unknown_command", "out_of_range", "rate_limited", "handler_failed", "refused",
        "unsupported",
    }  # fmt: skip
    replayed = [json.loads(p) for t, p in rows if t.endswith("/cmd_result/ping")]
    assert any(r.get("replayed") for r in replayed)
    kinds = {json.loads(p)["data"]["kind"] for t, p in rows if t.endswith("/events/alarm")}
    assert kinds == set(typing.get_args(AlarmKind))
    # and no member is documented that the node never sends (the old parcel schema's drift)
    for kind in ("parcel", "fault", "route_request", "degraded", "safety", "task_crashed"):
        sent = {k for t, p in rows if t.endswith(f"/events/{kind}") for k in json.loads(p)["data"]}
        assert set(schemas.load(f"event-{kind}.json")["properties"]) == sent, kind
    for name, schema in (("status", "cmd-status-result.json"), ("ping", "cmd-ping-result.json"),
                         ("replay", "cmd-replay-result.json"), ("route", "cmd-route-result.json"),
                         ("start", "cmd-safety-result.json")):  # fmt: skip
        sent = {k for t, p in rows if t.endswith(f"/cmd_result/{name}")
                for k in json.loads(p).get("result", {})}  # fmt: skip
        assert set(schemas.load(schema)["properties"]) == sent, name


def test_the_checks_catch_a_record_that_drifts(cell: Cell) -> None:
    """A member the record gains, or a type it changes, is found (the test above can fail)."""
    chans = contract.channels()
    good = _record("sorted", "brain").to_json()
    topic = f"{PREFIX}/events/parcel"

    def check(data: dict[str, Any]) -> list[str]:
        body = {"kind": "parcel", "data": data}
        return contract.check(topic, encode(NODE, 1, 1, body), chans)

    assert check(good) == []
    assert check({**good, "parcel_id": "41"})
    assert check({**good, "outcome": "missorted"})
    assert check({**good, "destination": "chute-3"})
    assert check({k: v for k, v in good.items() if k != "size_mm"})


def test_the_commands_args_schemas_are_the_registered_ones(cell: Cell) -> None:
    """Each command the node registers has its channel, and the args schema the document
    gives it is the one the node checks commands with."""
    doc, chans = contract.document(), contract.channels()
    ignore = {"$schema", "$id", "title", "description"}

    def bare(schema: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in schema.items() if k not in ignore}

    for name in cell.link.commands.names():
        chan = contract.channel_of(f"{PREFIX}/cmd/{name}", chans)
        assert chan is not None, f"command {name!r} is not in docs/asyncapi.yaml"
        result = contract.channel_of(f"{PREFIX}/cmd_result/{name}", chans)
        assert result is not None and result.id != "resultUnknown", name
        (args_file,) = contract.file_refs(chan.payload["allOf"][1]["properties"]["args"])
        registered = cell.link.commands._specs[name].validator.schema
        assert bare(schemas.load(args_file)) == bare(registered), name
    documented = {
        c["address"].rsplit("/", 1)[1] for c in doc["channels"].values() if "/cmd/" in c["address"]
    }
    assert documented == {*cell.link.commands.names()} - {"route"} | {"{answerCommand}"}


def _codes_in_source() -> set[str]:
    """Every error code a command result can carry, read from the code: CommandError(...)
    and error_body(...) literals, RATE_LIMITED, and the decoder's reasons it passes on."""
    from fleet_link import commands, safe_json

    found = {commands.RATE_LIMITED, *commands._DECODE_CODE.values()}
    found |= {getattr(safe_json, n) for n in ("TOO_LARGE", "TOO_DEEP", "HUGE_NUMBER")}
    for package in ("fleet_link", "edge"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "CommandError(" not in text and "error_body(" not in text:
                continue
            for call in ast.walk(ast.parse(text)):
                if not isinstance(call, ast.Call):
                    continue
                name = getattr(call.func, "id", getattr(call.func, "attr", ""))
                index = {"CommandError": 0, "error_body": 1}.get(name)
                if index is None or len(call.args) <= index:
                    continue
                arg = call.args[index]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


def test_every_error_code_the_code_sends_is_listed() -> None:
    listed = schemas.load("command-result.json")["properties"]["error"]["properties"]["code"]
    assert set(listed["examples"]) == _codes_in_source()
    for code in listed["examples"]:
        assert f"'{code}'" in listed["description"], code
    # the ones the run above cannot make in a test's time, as their raisers build them
    chans = contract.channels()
    for name, code in (("start", "timeout"), ("config_push", "busy"), ("config_push", "invalid"),
                       ("config_push", "signature"), ("config_push", "store")):  # fmt: skip
        exc = CommandError(code, "why", "args.config")
        body = {"request_id": "x", **error_body(name, exc.code, exc.message, exc.path)}
        topic = f"{PREFIX}/cmd_result/{name}"
        assert contract.check(topic, encode(NODE, 1, 1, body), chans) == []


def test_the_config_status_the_node_publishes(tmp_path: Path) -> None:
    """config/status as config_apply writes it for publishing (plain JSON, no envelope)."""
    chans = contract.channels()
    ctx = config_apply.NodeConfigContext(tmp_path, None, 4)
    for outcome, active in (("applied", None), ("rolled_back", 3), ("rollback_failed", None)):
        pending = {"version": 4, "previous": 3, "request_id": "cp-1"}
        config_apply._finish(ctx, pending, outcome, "health check", active, publish=False)
        status = json.loads((tmp_path / config_apply.STATUS_NAME).read_text())
        body = {k: v for k, v in status.items() if k != "published"}  # as it is published
        topic = config_apply.status_topic(SITE, NODE)
        assert contract.check(topic, json.dumps(body).encode(), chans) == [], outcome


def test_the_enums_are_the_codes_types() -> None:
    from edge.node.telemetry import GROUPS

    groups = [c["address"].rsplit("/", 1)[1] for c in contract.document()["channels"].values()
              if "/telemetry/" in c["address"]]  # fmt: skip
    assert groups == list(GROUPS)
    parcel = schemas.load("event-parcel.json")["properties"]
    assert parcel["outcome"]["enum"] == list(typing.get_args(Outcome))
    assert parcel["decision_source"]["enum"] == [*typing.get_args(DecisionSource), None]
    assert set(parcel["latency_ms"]["properties"]) == {name for name, _a, _b in STAGES}
    alarm = schemas.load("event-alarm.json")["properties"]["kind"]["enum"]
    assert alarm == list(typing.get_args(AlarmKind))
    states = [s.value for s in State]
    assert schemas.load("event-safety.json")["properties"]["to"]["enum"] == states
    assert schemas.load("cmd-safety-result.json")["properties"]["state"]["enum"] == states
    assert schemas.load("state.json")["properties"]["cell"]["properties"]["state"]["enum"] == states


texts = st.text(max_size=300)
maybe_text = st.none() | texts
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)
stories = st.lists(
    st.builds(StoryEntry, numbers, st.integers(-(2**40), 2**40), texts, texts), max_size=40
)
milestones = st.dictionaries(
    st.sampled_from(["seen", "label", "decided", "scheduled", "accepted", "fired", "confirmed"]),
    numbers,
)


@st.composite
def records(draw: st.DrawFn) -> ParcelRecord:
    from edge.cell.record import stage_latencies

    return ParcelRecord(
        parcel_id=draw(st.integers(1, 2**40)),
        outcome=draw(st.sampled_from(typing.get_args(Outcome))),
        chute=draw(texts),
        actual_chute=draw(maybe_text),
        confirmed=draw(st.booleans()),
        reason=draw(texts),
        decision_source=draw(st.sampled_from([*typing.get_args(DecisionSource), None])),
        label=draw(maybe_text),
        label_source=draw(maybe_text),
        class_name=draw(maybe_text),
        size_mm=draw(st.none() | st.tuples(numbers, numbers, numbers)),
        lead_count=draw(st.integers(-(2**40), 2**40)),
        scheduled_count=draw(st.none() | st.integers(0, 2**40)),
        fired_count=draw(st.none() | st.integers(0, 2**40)),
        divert_error_mm=draw(st.none() | numbers),
        latency_ms=stage_latencies(draw(milestones)),
        story=tuple(draw(stories)),
    )


@given(records())
@settings(max_examples=200, deadline=None)
def test_any_record_the_code_can_build_matches_the_schema(record: ParcelRecord) -> None:
    chans = contract.channels()
    body = {"kind": "parcel", "data": record.to_json()}
    payload = encode(NODE, 1, 1, body)
    assert contract.check(f"{PREFIX}/events/parcel", payload, chans) == []


_PARCEL_MEMBERS = set(schemas.load("event-parcel.json")["properties"])


@given(records(), st.text(min_size=1, max_size=20).filter(lambda k: k not in _PARCEL_MEMBERS))
@settings(max_examples=40, deadline=None)
def test_a_member_no_schema_describes_is_always_found(record: ParcelRecord, key: str) -> None:
    chans = contract.channels()
    data = {**record.to_json(), key: 1}
    payload = encode(NODE, 1, 1, {"kind": "parcel", "data": data})
    found = contract.check(f"{PREFIX}/events/parcel", payload, chans)
    assert found == [f"{PREFIX}/events/parcel (eventParcel): data.{key} is sent but no schema "
                     "describes it"]  # fmt: skip
