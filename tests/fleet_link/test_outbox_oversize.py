"""One oversized message never wedges the outbox (issue 13, finding 4): a 36 KB command result
over the embedded broker's 20 KB limit, or a 1.2 MB parcel record, was resent first after
every reconnect (143 sessions a minute) and every later message stayed stuck.

Now it goes out as a small placeholder under its own seq (``truncated``), the original is kept
as a dead letter and a fault is raised; the rest flows on the same connection. Against the
real brokers: the embedded one (rumqttd via iotcore, which drops the connection on a packet
over 20,480 bytes) and mosquitto with a small ``message_size_limit`` / ``max_packet_size``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_link import inbound
from fleet_link.config import MqttConfig
from fleet_link.embedded import EmbeddedBroker
from fleet_link.link import DEAD_LETTER_FAULT, EdgeLink, _placeholder, _placeholder_body
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto, free_port
from tests.fleet_link.test_outbox_faults import Collector, wait_until

BIG_RESULT = {"request_id": "r-1", "ok": True, "blob": "x" * 36_000}  # finding 4's 36 KB
BIG_RECORD = {  # a parcel record grown by late answers (finding 4's was 1.2 MB)
    "parcel_id": 7,
    "outcome": "sorted",
    "chute": "c3",
    "story": [
        {"t": i, "count": i, "stage": "late_answer", "detail": "y" * 80} for i in range(12_000)
    ],
}


def config(tmp_path: Path, url: str, **update: object) -> MqttConfig:
    return link_config(tmp_path, url).model_copy(update=update)


@pytest.fixture
def embedded() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port()) as broker:
        yield broker


def send_big_then_small(link: EdgeLink) -> tuple[list[int], int, int]:
    small = [link.publish_event("parcel", {"parcel_id": i, "outcome": "sorted"}) for i in range(5)]
    result_seq = link.publish_event("status", BIG_RESULT)
    record_seq = link.publish_event("parcel", BIG_RECORD)
    small += [
        link.publish_event("parcel", {"parcel_id": i, "outcome": "sorted"}) for i in range(5, 25)
    ]
    return small, result_seq, record_seq


def test_oversize_messages_go_as_placeholders_and_the_rest_flows_embedded_broker(
    tmp_path: Path, embedded: EmbeddedBroker
):
    got = Collector(embedded.url)
    time.sleep(0.3)
    link = EdgeLink(config(tmp_path, embedded.url, protocol="3.1.1"), "site", "edge-1").start()
    wait_until(link.connected.is_set)
    _small, result_seq, record_seq = send_big_then_small(link)
    assert link.wait_drained(10)
    wait_until(lambda: len(got.on("events/parcel")) >= 26)
    parcels = got.on("events/parcel")
    assert [m["seq"] for m in parcels] == list(range(1, 27))  # no gap, in order
    placeholder = next(m for m in parcels if m["seq"] == record_seq)
    assert placeholder["truncated"] is True and placeholder["original_bytes"] > 1_000_000
    assert placeholder["data"]["parcel_id"] == 7 and placeholder["data"]["outcome"] == "sorted"
    assert "data.story" in placeholder["dropped"] and len(json.dumps(placeholder)) < 4096
    # a consumer's schema checks accept the placeholder (the brain SDK would not drop it)
    assert inbound.problems("events", placeholder) == []
    assert inbound.event_data_problems("parcel", placeholder["data"]) == []
    [status] = got.on("events/status")
    assert status["seq"] == result_seq and status["truncated"] is True
    assert status["data"] == {"request_id": "r-1", "ok": True}  # the small members stay
    faults = [m["data"] for m in got.on("events/fault") if m["data"]["code"] == DEAD_LETTER_FAULT]
    assert {(f["channel"], f["seq"]) for f in faults} == {
        ("events/status", result_seq),
        ("events/parcel", record_seq),
    }
    assert all(f["active"] and f["bytes"] > 36_000 and f["head"].startswith("{") for f in faults)
    assert link.connects == 1  # never a reconnect
    letters = link.outbox.dead_letters()
    assert [(d["channel"], d["seq"]) for d in letters] == [
        ("events/status", result_seq),
        ("events/parcel", record_seq),
    ]
    assert json.loads(letters[0]["head"])["data"] == BIG_RESULT  # the original is kept
    link.request_state()
    wait_until(lambda: got.on("state")[-1]["outbox"]["dead_lettered"] == 2)
    assert DEAD_LETTER_FAULT in got.on("state")[-1]["faults"]
    link.stop()
    got.close()


def test_a_row_the_broker_drops_the_connection_over_is_replaced_after_three_sessions(
    tmp_path: Path, embedded: EmbeddedBroker
):
    # the knob set above the broker's real limit: the broker, not the node, refuses the row
    cfg = config(tmp_path, embedded.url, protocol="3.1.1", max_message_bytes=64 * 1024)
    got = Collector(embedded.url)
    time.sleep(0.3)
    link = EdgeLink(cfg, "site", "edge-1").start()
    wait_until(link.connected.is_set)
    first = link.publish_event("parcel", {"parcel_id": 1, "outcome": "sorted"})
    big = link.publish_event("parcel", {"parcel_id": 2, "outcome": "sorted", "pad": "z" * 30_000})
    rest = [
        link.publish_event("parcel", {"parcel_id": i, "outcome": "sorted"}) for i in range(3, 23)
    ]
    assert link.wait_drained(15)
    wait_until(lambda: len({m["seq"] for m in got.on("events/parcel")}) == 22)
    seqs = [m["seq"] for m in got.on("events/parcel")]
    assert sorted(set(seqs)) == [first, big, *rest] and seqs == sorted(seqs)
    assert next(m for m in got.on("events/parcel") if m["seq"] == big)["truncated"] is True
    assert 4 <= link.connects <= 6  # a probe, three sessions lost on it, then it flowed
    [fault] = [m["data"] for m in got.on("events/fault")]
    assert fault["code"] == DEAD_LETTER_FAULT and fault["seq"] == big
    assert "3 sessions lost" in fault["message"]
    link.stop()
    got.close()


@pytest.mark.parametrize("limit", ["max_packet_size 6000", "message_size_limit 6000"])
def test_mosquitto_with_a_small_limit(tmp_path: Path, limit: str):
    broker = Mosquitto(tmp_path, extra=limit).start()
    try:
        got = Collector(broker.url)
        time.sleep(0.3)
        link = EdgeLink(config(tmp_path, broker.url), "site", "edge-1").start()  # MQTT 5
        wait_until(link.connected.is_set)
        big = link.publish_event("parcel", {"parcel_id": 1, "outcome": "sorted", "pad": "q" * 9000})
        rest = [link.publish_event("parcel", {"parcel_id": i, "outcome": "ok"}) for i in range(10)]
        assert link.wait_drained(15)
        wait_until(lambda: len({m["seq"] for m in got.on("events/parcel")}) == 11)
        seqs = [m["seq"] for m in got.on("events/parcel")]
        assert sorted(set(seqs)) == [big, *rest] and seqs == sorted(seqs)
        assert got.on("events/parcel")[0]["truncated"] is True
        if limit.startswith("max_packet_size"):
            assert link.connects == 1  # announced in the CONNACK: replaced before sending
        else:
            assert 4 <= link.connects <= 6  # not announced: three sessions lost on it
        assert link.outbox.stats().dead_lettered == 1
        link.stop()
        got.close()
    finally:
        broker.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=300),
    lambda kids: (
        st.lists(kids, max_size=8) | st.dictionaries(st.text(max_size=80), kids, max_size=8)
    ),
    max_leaves=60,
)


@settings(max_examples=40, deadline=None)
@given(body=st.dictionaries(st.text(max_size=200), json_values, max_size=30))
def test_a_placeholder_is_small_and_marked_whatever_the_body(body: dict):
    body = {k: v for k, v in body.items() if k not in ("node", "session", "seq", "ts")}
    out = _placeholder_body(body, 10**9, 16384)
    assert out["truncated"] is True and out["original_bytes"] == 10**9
    payload = _placeholder("edge-1", 1, 42, None, body, 10**9, 16384)
    assert len(payload) <= 4096 and json.loads(payload)["seq"] == 42


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("events", {"kind": "parcel", "data": BIG_RECORD}),
        ("telemetry", {"group": "belt", "reason": "forced", "values": {"a": 1, "b": "x" * 40_000}}),
        (
            "cmd_result",
            {"request_id": "r-9", "command": "status", "ok": True, "result": BIG_RESULT},
        ),
    ],
)
def test_placeholders_conform_to_their_channel_schema(kind: str, body: dict):
    out = json.loads(_placeholder("edge-1", 3, 17, None, body, 10**6, 16384))
    assert out["truncated"] is True and inbound.problems(kind, out) == []


def test_a_small_message_the_broker_refuses_is_kept_not_thrown_away(tmp_path: Path):
    # a broker refusing 2 KB (here max_packet_size 1000; in the field a denied topic) is not
    # a size problem the node can solve: the row stays first, loudly, and nothing is lost
    broker = Mosquitto(tmp_path, extra="max_packet_size 1000").start()
    try:
        link = EdgeLink(config(tmp_path, broker.url, protocol="3.1.1"), "site", "edge-1")
        link.start()
        wait_until(link.connected.is_set)
        link.publish_event("parcel", {"parcel_id": 1, "outcome": "sorted", "pad": "s" * 2000})
        link.publish_event("parcel", {"parcel_id": 2, "outcome": "sorted"})
        wait_until(lambda: link.connects >= 5, timeout=20)
        stats = link.outbox.stats()
        assert stats.dead_lettered == 0 and stats.depth == 2
        link.stop()
    finally:
        broker.stop()


def test_a_placeholder_of_names_that_grow_when_escaped_stays_under_its_bound():
    """Found by hypothesis: astral-plane names take 12 bytes each once JSON-escaped."""
    name = "\U00065fda" * 5
    body = {f"{name}{i}": {f"{name}{j}": None for j in range(8)} for i in range(30)}
    payload = _placeholder("edge-1", 1, 42, None, body, 10**9, 16384)
    assert len(payload) <= 4096 and json.loads(payload)["truncated"] is True
