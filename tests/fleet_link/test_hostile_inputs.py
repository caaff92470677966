"""Finding 3 and 7 of issue 13: one message used to deafen a site. The brain SDK and
``wolfpack monitor`` died on a 5000-digit integer (ValueError), deep nesting (RecursionError)
or a ``state`` whose ``acked`` is a list (AttributeError), a retained one killed every brain
started later, and the node's command handler gave huge integers and deep JSON no answer.

Each decoder (the bounded JSON decoder, the brain SDK's paho callback, the monitor's view, the
node's command handler) is fed arbitrary bytes and arbitrary JSON-like structures: nothing
escapes, a refusal is counted by reason, a command is always answered. Then the poison for
real, retained on a mosquitto, before a brain and a monitor start.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link import inbound, safe_json, schemas
from fleet_link.brain import Brain, Message, NodeState
from fleet_link.commands import CommandRegistry
from fleet_link.config import MqttConfig
from fleet_link.envelope import encode
from fleet_link.link import EdgeLink
from fleet_link.monitor import FleetView, render
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import REPO, Mosquitto

HEAD = {"node": "cell-1", "session": 1, "seq": 1, "ts": "2026-11-23T11:22:26.123Z"}
HUGE_INT = b"1" * 5000
DEEP = b"[" * 10000 + b"]" * 10000
POISON_STATES = {  # what each did to the brain before, and the reason it is refused now
    "huge_number": json.dumps({**HEAD, "status": "online", "acked": {}})
    .encode()
    .replace(b'"acked": {}', b'"acked": {"events/parcel": ' + HUGE_INT + b"}"),
    "too_deep": json.dumps({**HEAD, "status": "online"}).encode()[:-1] + b', "x": ' + DEEP + b"}",
    "invalid_schema": json.dumps({**HEAD, "status": "online", "acked": ["events/parcel"]}).encode(),
}
WOLFPACK = [sys.executable, "-m", "edge.cli.main"]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- strategies ----------------------------------------------------------------------------
tricky_text = st.text(
    alphabet=st.sampled_from(list('ab[]{}"\\:,\x00\x1b\u00e9\U0001f600 ')) | st.characters(),
    max_size=12,
)
big_ints = st.integers() | st.integers(min_value=10**30, max_value=10**60).map(
    lambda n: n if n % 2 else -n
)
scalars = (
    st.none()
    | st.booleans()
    | big_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deep_json(draw: st.DrawFn) -> Any:
    """A structure, sometimes wrapped far deeper than any limit."""
    value = draw(json_like)
    for _ in range(draw(st.integers(0, 90))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


def depth_of(value: Any) -> int:
    stack, deepest = [(value, 0)], 0
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            d += 1
            deepest = max(deepest, d)
            stack.extend((c, d) for c in (node.values() if isinstance(node, dict) else node))
    return deepest


def int_digits(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return len(str(abs(value)))
    if isinstance(value, dict):
        return max((int_digits(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((int_digits(v) for v in value), default=0)
    return 0


# ---- the bounded decoder -------------------------------------------------------------------
@given(st.binary(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_decoder_refuses_any_bytes_with_decode_error_only(data: bytes):
    try:
        safe_json.loads(data)
    except safe_json.DecodeError as exc:
        assert exc.reason and exc.message


@given(deep_json())
@settings(max_examples=300, deadline=None)
def test_decoder_round_trips_within_limits_and_names_the_limit_beyond(value: Any):
    text = json.dumps(value)
    assert safe_json.nesting_depth(text) == depth_of(value)
    limits = safe_json.Limits(max_bytes=10**7)
    try:
        got = safe_json.loads(text, limits)
    except safe_json.DecodeError as exc:
        if depth_of(value) > limits.max_depth:
            assert exc.reason == safe_json.TOO_DEEP
        else:
            assert exc.reason == safe_json.HUGE_NUMBER
            assert int_digits(value) > limits.max_int_digits
    else:
        assert depth_of(value) <= limits.max_depth
        assert int_digits(value) <= limits.max_int_digits
        assert got == value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"a": ' + HUGE_INT + b"}", "huge_number"),
        (b'{"a": -' + HUGE_INT + b"}", "huge_number"),
        (DEEP, "too_deep"),
        (b"[" * 1_000_000, "too_deep"),
        (b'{"a": NaN}', "malformed_json"),
        (b'{"a": -Infinity}', "malformed_json"),
        (b'{"a": 1e999}', "huge_number"),
        (b'{"a": 1' + b"0" * 500 + b".5}", "huge_number"),
        ('{"a": 1}'.encode("utf-16"), "not_utf8"),
        (b'\xef\xbb\xbf{"a": 1}', "malformed_json"),  # a BOM: not JSON text
        (b'"' + b'\\"' * 200_000, "malformed_json"),  # no quadratic scan of escapes
        (b"x" * (safe_json.MAX_BYTES + 1), "too_large"),
    ],
)
def test_decoder_limits(payload: bytes, reason: str):
    t0 = time.perf_counter()
    with pytest.raises(safe_json.DecodeError) as err:
        safe_json.loads(payload)
    assert err.value.reason == reason
    assert time.perf_counter() - t0 < 1.0


def test_strings_full_of_brackets_are_not_nesting():
    text = json.dumps({"a": "[" * 500, "b": ['\\"{{{{', "]]]"]})
    assert safe_json.nesting_depth(text) == 2
    assert safe_json.loads(text)["a"] == "[" * 500


def test_request_id_is_recovered_from_a_refused_payload():
    payload = b'{"request_id": "r-7", "args": {"n": ' + HUGE_INT + b"}}"
    assert safe_json.recover_request_id(payload) == "r-7"
    assert safe_json.recover_request_id(b'{"request_id": 5}') is None
    assert safe_json.recover_request_id(b"\xff\xfe") is None


# ---- the schemas' fast path is sound -------------------------------------------------------
field_values = st.one_of(
    json_like,
    st.sampled_from(["cell-1", "parcel", "periodic", "change", "Bad Kind", "", "r1"]),
    st.dictionaries(st.sampled_from(["a", "code", "message", "path"]), json_like, max_size=3),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["events", "telemetry", "cmd_result"]))
    valid = {
        "events": {"kind": "parcel", "data": {"parcel_id": "P1"}},
        "telemetry": {"group": "belt", "reason": "change", "values": {"speed": 1.5, "on": True}},
        "cmd_result": {
            "request_id": "r1",
            "command": "ping",
            "ok": False,
            "error": {"code": "rate_limited", "message": "later"},
        },
    }[kind]
    obj: dict[str, Any] = {**HEAD, **valid}
    for key in draw(st.lists(st.sampled_from([*obj, "result", "replayed", "extra"]), max_size=3)):
        if draw(st.booleans()):
            obj[key] = draw(field_values)
        else:
            obj.pop(key, None)
    return kind, obj


@given(messages())
@settings(max_examples=400, deadline=None)
def test_hand_written_checks_accept_only_what_the_schema_accepts(msg: tuple[str, dict]):
    kind, obj = msg
    if inbound.vouched(kind, obj):
        assert schemas.validate(inbound.SCHEMA_OF_KIND[kind], obj) == []
    assert (inbound.problems(kind, obj) == []) == (
        schemas.validate(inbound.SCHEMA_OF_KIND[kind], obj) == []
    )


def test_what_nodes_send_is_vouched_for_without_jsonschema():
    for kind, body in (
        ("events", {"kind": "parcel", "data": {"parcel_id": "P1"}}),
        ("telemetry", {"group": "belt", "reason": "periodic", "values": {"speed_mps": 1.2}}),
        ("cmd_result", {"request_id": None, "command": "ping", "ok": True, "result": {}}),
    ):
        assert inbound.vouched(kind, {**HEAD, **body}), kind


# ---- the brain SDK's paho callback ---------------------------------------------------------
class Fed:
    """A real Brain (not connected) fed through its real paho callback."""

    def __init__(self, raising: bool = False) -> None:
        self.messages: list[Message] = []
        self.states: list[NodeState] = []
        self.raising = raising
        self.view = FleetView()
        self.brain = Brain(
            "mqtt://127.0.0.1:1",
            "site",
            on_message=self._on_message,
            on_state=self._on_state,
            from_start=True,
        )

    def _on_message(self, m: Message) -> None:
        self.messages.append(m)
        self.view.on_message(m)
        if self.raising:
            raise RuntimeError("a consumer bug")

    def _on_state(self, s: NodeState) -> None:
        self.states.append(s)
        self.view.on_state(s)
        if self.raising:
            raise KeyError("a consumer bug")

    def feed(self, channel: str, payload: bytes, node: str = "cell-1") -> None:
        msg = mqtt.MQTTMessage(topic=f"wolfpack/v1/site/{node}/{channel}".encode())
        msg.payload = payload
        self.brain._on_mqtt_message(self.brain._client, None, msg)

    @property
    def taken(self) -> int:
        return len(self.messages) + len(self.states) + self.brain.duplicates

    def check_view(self) -> None:
        text = render(self.view.rows(), "site", self.fed_rejections())
        for line in text.splitlines():
            assert line.isprintable(), line
        text.encode("utf-8")  # no lone surrogates

    def fed_rejections(self) -> dict[str, int]:
        return {**self.brain.rejected.snapshot(), **self.view.rejected.snapshot()}


CHANNELS = ["state", "events/parcel", "events/fault", "telemetry/belt", "cmd_result/ping"]


@given(st.sampled_from([*CHANNELS, "bogus", "events/Bad"]), st.binary(max_size=600))
@SETTINGS
def test_brain_survives_any_bytes_and_counts_each_refusal(channel: str, payload: bytes):
    fed = Fed(raising=True)
    fed.feed(channel, payload)
    assert fed.brain.rejected.total == 1 and fed.taken == 0
    fed.check_view()


@given(st.sampled_from(CHANNELS), json_like, st.booleans())
@SETTINGS
def test_brain_takes_what_conforms_and_counts_what_does_not(
    channel: str, body: Any, as_fields: bool
):
    fed = Fed(raising=True)
    kind = channel.split("/")[0]
    if as_fields and isinstance(body, dict):
        obj: Any = {**body, **HEAD}
    else:
        obj = {**HEAD, "kind": "fault", "data": body, "status": "online", "values": body}
    payload = json.dumps(obj).encode()
    fed.feed(channel, payload)
    try:
        whole = safe_json.loads(payload)
        conforms = inbound.problems(kind, whole) == []
    except safe_json.DecodeError:
        conforms = False
    if conforms:
        assert fed.taken == 1 and fed.brain.rejected.total == 0
    else:
        assert fed.taken == 0 and fed.brain.rejected.total == 1
    fed.check_view()  # the monitor's view of whatever got through renders


@given(json_like)
@SETTINGS
def test_monitor_view_refuses_fault_data_against_its_schema(data: Any):
    fed = Fed()
    fed.feed(
        "events/fault",
        encode("cell-1", 1, 1, {"kind": "fault", "data": {"code": data, "active": True}}),
    )
    if int_digits(data) > safe_json.MAX_INT_DIGITS:  # the brain SDK refuses it already
        assert fed.brain.rejected.snapshot() == {"huge_number": 1} and fed.messages == []
    else:
        ok = isinstance(data, str) and data != ""
        assert fed.view.rejected.total == (0 if ok else 1)
        assert fed.brain.rejected.total == 0 and len(fed.messages) == 1
        assert [r.faults for r in fed.view.rows()] == [[data] if ok else []]
    fed.check_view()


def test_monitor_prints_no_terminal_escapes_from_the_wire():
    fed = Fed()
    fed.feed("state", encode("cell-1", 1, 1, {"status": "online", "faults": ["\x1b[2Jx\ud800"]}))
    fed.check_view()
    assert "x?" in render(fed.view.rows(), "site")


@pytest.mark.parametrize("reason", sorted(POISON_STATES))
def test_each_poison_state_is_refused_by_reason_and_the_next_good_one_taken(reason: str):
    fed = Fed()
    fed.feed("state", POISON_STATES[reason])
    assert fed.brain.rejected.snapshot() == {reason: 1} and fed.states == []
    assert fed.brain.stats()["rejected"] == 1
    fed.feed("state", encode("cell-1", 1, 2, {"status": "online", "acked": {"events/parcel": 1}}))
    fed.feed("events/parcel", encode("cell-1", 1, 1, {"kind": "parcel", "data": {}}))
    assert fed.brain.nodes["cell-1"].online and [m.seq for m in fed.messages] == [1]
    assert "rejected messages: 1 (" + reason in render(
        fed.view.rows(), "site", fed.fed_rejections()
    )


# ---- the node's command handler ------------------------------------------------------------
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeLink, list[dict]]]:
    """A real EdgeLink (outbox and all, no broker needed to answer), rate limits out of the
    way; its answers are read where they are stored."""
    tmp = tmp_path_factory.mktemp("node")
    base = link_config(tmp, "mqtt://127.0.0.1:1")
    cfg = MqttConfig.model_validate(
        {
            **base.model_dump(),
            "commands": {"default_rate_limit": {"per_s": 1e9, "burst": 10**9}},
        }
    )
    link = EdgeLink(cfg, "site", "edge-1")
    answers: list[dict] = []
    real_append = link._append

    def spy(where: Any, priority: int, body: dict) -> int:
        answers.append(body)
        return real_append(where, priority, body)

    link._append = spy  # type: ignore[method-assign]
    link.commands.register("set_speed", lambda a: {"speed": a.get("speed")})
    try:
        yield link, answers
    finally:
        link.stop()


def answer(link: EdgeLink, answers: list[dict], name: str, payload: bytes) -> dict:
    before = len(answers)
    msg = mqtt.MQTTMessage(topic=f"wolfpack/v1/site/edge-1/cmd/{name}".encode())
    msg.payload = payload
    link._on_message(None, None, msg)
    item = link.inbox.take("bulk", 0)
    assert item is not None
    link._handle_command(item)
    assert len(answers) == before + 1, "not answered exactly once"
    return answers[-1]


@given(st.binary(max_size=600))
@SETTINGS
def test_command_handler_answers_any_bytes(node: tuple[EdgeLink, list[dict]], payload: bytes):
    link, answers = node
    refused = sum(link.commands.rejected.snapshot().values())
    body = answer(link, answers, "set_speed", payload)
    assert body["command"] == "set_speed" and isinstance(body["ok"], bool)
    if not body["ok"]:
        assert sum(link.commands.rejected.snapshot().values()) == refused + 1
    assert schemas.validate("command-result.json", {**HEAD, **body}) == []


@given(deep_json(), st.text(min_size=1, max_size=20))
@SETTINGS
def test_command_handler_answers_any_structure(
    node: tuple[EdgeLink, list[dict]], args: Any, rid: str
):
    link, answers = node
    rid = f"{time.monotonic_ns()}-{rid}"  # fresh: not a replay of an earlier example
    payload = json.dumps({"request_id": rid, "args": args}).encode()
    body = answer(link, answers, "set_speed", payload)
    plain = json.dumps(rid)[1:-1] == rid  # written as is: the raw bytes show the id
    if depth_of(args) + 1 > link.cfg.commands.max_depth:
        assert body["error"]["code"] == "too_deep"
        assert body["request_id"] == (rid if plain else None)
    elif int_digits(args) > safe_json.MAX_INT_DIGITS:
        assert body["error"]["code"] == "huge_number"
    elif not isinstance(args, dict):
        assert body["error"]["code"] == "invalid_schema" and body["request_id"] == rid
    else:
        assert body["ok"] and body["request_id"] == rid
    assert schemas.validate("command-result.json", {**HEAD, **body}) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"request_id": "h1", "args": {"speed": ' + HUGE_INT + b"}}", "huge_number"),
        (b'{"request_id": "d1", "args": ' + b"[" * 10000 + b"]" * 10000 + b"}", "too_deep"),
        (b'{"request_id": "n1", "args": {"speed": NaN}}', "malformed_json"),
        (b'{"request_id": "b1", "args": {"x": "' + b"y" * 70000 + b'"}}', "too_large"),
    ],
)
def test_hostile_commands_are_answered_with_their_request_id(
    node: tuple[EdgeLink, list[dict]], payload: bytes, code: str
):
    link, answers = node
    body = answer(link, answers, "set_speed", payload)
    assert body["error"]["code"] == code
    if code != "malformed_json":  # JSON text refused by a limit: the id is worth recovering
        assert body["request_id"] == payload[16:18].decode()


def test_request_ids_are_scoped_by_command_name(node: tuple[EdgeLink, list[dict]]):
    link, answers = node
    runs: list[str] = []
    link.commands.register("status", lambda _a: runs.append("status") or {"s": 1})
    link.commands.register("reset", lambda _a: runs.append("reset") or {"r": 1})
    first = answer(link, answers, "status", b'{"request_id": "same"}')
    other = answer(link, answers, "reset", b'{"request_id": "same"}')
    again = answer(link, answers, "reset", b'{"request_id": "same"}')
    assert runs == ["status", "reset"]  # the reused id ran the other command, once
    assert first["result"] == {"s": 1} and other["result"] == {"r": 1}
    assert other["command"] == "reset" and "replayed" not in other
    assert again["replayed"] and again["result"] == {"r": 1}


def test_a_result_stored_under_a_bare_id_still_replays_for_its_own_command(
    node: tuple[EdgeLink, list[dict]],
):
    link, answers = node
    old = {"request_id": "legacy", "command": "set_speed", "ok": True, "result": {"speed": 1}}
    link.outbox.store_result("legacy", "set_speed", json.dumps(old), time.time(), 100)
    again = answer(link, answers, "set_speed", b'{"request_id": "legacy", "args": {"speed": 2}}')
    assert again["replayed"] and again["result"] == {"speed": 1}
    fresh = answer(link, answers, "ping", b'{"request_id": "legacy"}')
    assert fresh["ok"] and "replayed" not in fresh


def test_registry_decoder_counts_by_reason():
    reg = CommandRegistry(max_payload_bytes=1024, max_depth=4)
    reg.register("x", lambda _a: {})
    for payload in (b"[[[[[[]]]]]]", b'{"request_id": "a", "args": {"n": 1e999}}', b"\xff"):
        assert not reg.execute("x", payload).body["ok"]
    assert reg.rejected.snapshot() == {"too_deep": 1, "huge_number": 1, "not_utf8": 1}


# ---- for real: retained poison on a mosquitto ----------------------------------------------
def test_retained_poison_deafens_no_brain_and_no_monitor(tmp_path: Path, mosquitto: Mosquitto):
    poisoner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="poisoner")
    poisoner.connect("127.0.0.1", mosquitto.port)
    poisoner.loop_start()
    for i, reason in enumerate(sorted(POISON_STATES), start=2):
        info = poisoner.publish(
            f"wolfpack/v1/site/cell-{i}/state", POISON_STATES[reason], qos=1, retain=True
        )
        info.wait_for_publish(5)
    poisoner.loop_stop()
    poisoner.disconnect()

    got: list[Message] = []
    brain = Brain(mosquitto.url, "site", on_message=got.append).start()
    link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "cell-1").start()
    try:
        assert link.connected.wait(10)
        for i in range(5):
            link.publish_event("parcel", {"parcel_id": f"P{i}", "outcome": "sorted"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(got) < 5:
            time.sleep(0.05)
        assert [m.data["parcel_id"] for m in got] == [f"P{i}" for i in range(5)]
        assert brain.rejected.snapshot() == dict.fromkeys(POISON_STATES, 1)
        assert brain.nodes["cell-1"].online and brain.command("cell-1", "ping", timeout=5).ok

        done = subprocess.run(
            [
                *WOLFPACK,
                "monitor",
                "--broker",
                mosquitto.url,
                "--site",
                "site",
                "--once",
                "--settle",
                "1.5",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout.startswith("site site: 1/1 nodes online"), done.stdout
        assert "cell-1" in done.stdout and "online" in done.stdout
        assert "rejected messages: 3 (" in done.stdout
        for reason in POISON_STATES:
            assert f"{reason} 1" in done.stdout
    finally:
        link.stop()
        brain.stop()


def test_hostile_commands_over_a_broker_get_answers(tmp_path: Path, mosquitto: Mosquitto):
    brain = Brain(mosquitto.url, "site").start()
    link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "edge-1")
    link.commands.register("status", lambda _a: {"state": "running"})
    link.commands.register("reset", lambda _a: {"reset": True})
    link.start()
    try:
        assert link.connected.wait(10)
        time.sleep(0.3)
        huge = brain.expect_result("h1")
        brain.send_raw(
            "edge-1", "status", b'{"request_id": "h1", "args": {"n": ' + HUGE_INT + b"}}"
        )
        deep = brain.expect_result("d1")
        brain.send_raw("edge-1", "status", b'{"request_id": "d1", "args": ' + DEEP + b"}")
        assert huge.result(5).error["code"] == "huge_number"
        assert deep.result(5).error["code"] == "too_deep"
        first = brain.command("edge-1", "status", request_id="again", timeout=5)
        second = brain.command("edge-1", "reset", request_id="again", timeout=5)
        assert first.result == {"state": "running"} and second.result == {"reset": True}
        assert not second.replayed
        assert brain.command("edge-1", "reset", request_id="again", timeout=5).replayed
        assert all(t.is_alive() for t in link._threads)
    finally:
        link.stop()
        brain.stop()


def test_monitor_refuses_a_bad_site_in_one_line():
    done = subprocess.run(
        [*WOLFPACK, "monitor", "--broker", "mqtt://127.0.0.1:1", "--site", "SIM", "--once"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "site 'SIM' is not a valid topic level" in lines[0], lines


@pytest.mark.parametrize(
    ("broker", "site", "words"),
    [
        ("mqtt://127.0.0.1:1", "a/b", "site 'a/b'"),
        ("mqtt://127.0.0.1:1", "#", "site '#'"),
        ("http://x:1", "sim", "mqtt://host:port"),
        ("mqtt://", "sim", "mqtt://host:port"),
    ],
)
def test_monitor_refuses_bad_arguments_in_one_line(
    broker: str, site: str, words: str, capsys: pytest.CaptureFixture[str]
):
    from edge.cli.main import build_parser

    args = build_parser().parse_args(["monitor", "--broker", broker, "--site", site, "--once"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and err[0].startswith("wolfpack monitor: "), err


def test_decoding_is_not_quadratic():
    for payload in (b'"' + b'\\"' * 400_000, b'"' + b'"\\' * 400_000, b"[" * 1_000_000):
        t0 = time.perf_counter()
        with pytest.raises(safe_json.DecodeError):
            safe_json.loads(payload)
        assert time.perf_counter() - t0 < 1.0
    assert math.isfinite(safe_json.loads(b"1.7976931348623157e308"))


def test_monitor_refuses_an_unreadable_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from edge.cli.main import build_parser

    for path in (tmp_path / "missing", tmp_path):
        argv = ["monitor", "--broker", "mqtt://127.0.0.1:1", "--site", "sim", "--once"]
        args = build_parser().parse_args([*argv, "--password-file", str(path)])
        assert args.handler(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--password-file {path}: " in err[0], err
