"""The Sparkplug B library (fleet_link/sparkplug): topic namespace, payload values, seq,
aliases, bdSeq and STATE parsing as properties; the session rules against a real mosquitto
(bdSeq per CONNECT and across restarts, seq wrapping through 255, report by exception, a
stale STATE ignored, an orderly stop's NDEATH)."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link.config import MqttConfig
from fleet_link.sparkplug.edge_node import SparkplugEdgeNode
from fleet_link.sparkplug.payload import (
    AliasTable,
    BdSeqStore,
    DataType,
    MetricDef,
    SeqCounter,
    changed,
    decode,
    encode,
    get_value,
    parse_state,
    state_payload,
)
from fleet_link.sparkplug.topics import (
    DEVICE_TYPES,
    MESSAGE_TYPES,
    NODE_TYPES,
    SparkplugTopicError,
    parse_topic,
    state_topic,
    topic,
)
from tests.fleet_link.mosquitto import Mosquitto

ids = st.text(st.characters(blacklist_characters="/+#\0", blacklist_categories=("Cs",)),
              min_size=1, max_size=20)  # fmt: skip


# ---- topics ----------------------------------------------------------------------------------
@given(ids, st.sampled_from(MESSAGE_TYPES), ids, ids)
def test_topic_round_trips(group: str, kind: str, edge: str, device: str):
    dev = device if kind in DEVICE_TYPES else None
    text = topic(group, kind, edge, dev)
    parsed = parse_topic(text)
    assert (parsed.group_id, parsed.message_type, parsed.edge_node_id, parsed.device_id) == (
        group, kind, edge, dev)  # fmt: skip
    assert str(parsed) == text


@given(ids)
def test_state_topic_round_trips(host: str):
    parsed = parse_topic(state_topic(host))
    assert parsed.message_type == "STATE" and parsed.host_id == host


@given(st.text(max_size=80))
def test_any_text_parses_or_says_why(text: str):
    try:
        parsed = parse_topic(text)
    except SparkplugTopicError as exc:
        assert str(exc)
    else:
        assert str(parsed) == text


@given(ids, ids, st.sampled_from(["/", "+", "#"]))
def test_an_id_with_a_separator_or_wildcard_is_refused(a: str, b: str, bad: str):
    with pytest.raises(SparkplugTopicError, match="Sparkplug id"):
        topic("g", "NBIRTH", a + bad + b)


def test_node_and_device_levels_are_checked():
    with pytest.raises(SparkplugTopicError, match="needs a device id"):
        parse_topic("spBv1.0/g/DDATA/e")
    with pytest.raises(SparkplugTopicError, match="has no device level"):
        parse_topic("spBv1.0/g/NBIRTH/e/d")
    with pytest.raises(SparkplugTopicError, match="unknown message type"):
        parse_topic("spBv1.0/g/NDUMP/e")
    assert all(t.startswith("N") for t in NODE_TYPES)


# ---- payload values ----------------------------------------------------------------------------
_RANGES = {DataType.Int8: (-(2**7), 2**7 - 1), DataType.Int16: (-(2**15), 2**15 - 1),
           DataType.Int32: (-(2**31), 2**31 - 1), DataType.Int64: (-(2**63), 2**63 - 1),
           DataType.UInt8: (0, 2**8 - 1), DataType.UInt16: (0, 2**16 - 1),
           DataType.UInt32: (0, 2**32 - 1), DataType.UInt64: (0, 2**64 - 1),
           DataType.DateTime: (0, 2**64 - 1)}  # fmt: skip


@st.composite
def typed_values(draw: Any) -> tuple[DataType, Any]:
    kind = draw(st.sampled_from(list(DataType)))
    if kind in _RANGES:
        low, high = _RANGES[kind]
        return kind, draw(st.integers(low, high))
    if kind is DataType.Boolean:
        return kind, draw(st.booleans())
    if kind is DataType.Float:
        return kind, draw(st.floats(width=32, allow_nan=False))
    if kind is DataType.Double:
        return kind, draw(st.floats(allow_nan=False))
    return kind, draw(st.text(max_size=30) | st.none())


@settings(max_examples=50)
@given(st.lists(typed_values(), max_size=8), st.integers(0, 255), st.booleans())
def test_values_round_trip_through_the_protobuf(values: list, seq: int, named: bool):
    metrics = [(MetricDef(f"m{i}", kind), i + 1, value, named)
               for i, (kind, value) in enumerate(values)]  # fmt: skip
    decoded = decode(encode(metrics, seq=seq))
    assert decoded.seq == seq
    for (mdef, alias, value, _), m in zip(metrics, decoded.metrics, strict=True):
        assert get_value(m) == value and m.alias == alias and m.datatype == mdef.datatype
        assert (m.name == mdef.name) if named else not m.name


@given(st.sampled_from(list(_RANGES)), st.integers(-(2**65), 2**65))
def test_an_integer_outside_its_type_is_refused(kind: DataType, value: int):
    low, high = _RANGES[kind]
    if low <= value <= high:
        return
    with pytest.raises(ValueError, match="outside"):
        encode([(MetricDef("x", kind), 1, value, True)], seq=0)


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_say_why(data: bytes):
    try:
        decode(data)
    except ValueError as exc:
        assert "not a Sparkplug B payload" in str(exc)


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 100))
def test_a_float_is_reported_only_past_its_deadband(old: float, new: float, band: float):
    assert changed(MetricDef("s", DataType.Float, band), old, new) == (abs(new - old) > band)


# ---- seq, aliases, bdSeq, STATE ------------------------------------------------------------------
@given(st.lists(st.sampled_from(["birth", "next"]), max_size=700))
def test_seq_is_zero_at_birth_and_wraps_after_255(steps: list[str]):
    seq, expected = SeqCounter(), 0
    for step in steps:
        got = seq.birth() if step == "birth" else seq.next()
        expected = 0 if step == "birth" else (expected + 1) % 256
        assert got == expected and 0 <= got <= 255


@given(st.lists(st.tuples(st.none() | st.sampled_from(["a", "b"]), st.sampled_from("xyz"))))
def test_aliases_are_unique_across_devices_and_stable(keys: list):
    table = AliasTable()
    first = {key: table.alias(*key) for key in keys}
    assert len(set(first.values())) == len(first)
    assert all(table.alias(*key) == alias and table.lookup(alias) == key
               for key, alias in first.items())  # fmt: skip


@settings(max_examples=5)
@given(n=st.integers(0, 520))
def test_bdseq_counts_per_connect_and_survives_a_restart(tmp_path_factory: Any, n: int):
    path = tmp_path_factory.mktemp("bd") / "bdseq"
    store = BdSeqStore(path)
    got = [store.next() for _ in range(n)]
    assert got == [i % 256 for i in range(n)]
    assert BdSeqStore(path).next() == n % 256  # the next process goes on from there


def test_an_unreadable_bdseq_file_starts_again_at_zero(tmp_path: Path):
    path = tmp_path / "bdseq"
    path.write_text("not a number")
    assert BdSeqStore(path).next() == 0
    path.write_text("999")
    assert BdSeqStore(path).next() == 0


@given(st.booleans(), st.integers(0, 2**53))
def test_state_round_trips(online: bool, ts: int):
    state = parse_state(state_payload(online, ts))
    assert (state.online, state.timestamp) == (online, ts)


@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_state_payload_parses_or_says_why(data: bytes):
    try:
        parse_state(data)
    except ValueError as exc:
        assert "STATE" in str(exc)


# ---- the session, against a real mosquitto ----------------------------------------------------
class Listener:
    """A bare paho subscriber decoding with the same protobuf module (the independent host
    check is tests/system/test_sparkplug_host.py)."""

    def __init__(self, url_port: int) -> None:
        self.got: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spb-listener")
        self.client.on_message = lambda _c, _u, m: self.got.put((m.topic, m.payload))
        self.client.connect("127.0.0.1", url_port)
        self.client.subscribe("spBv1.0/#", qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def next(self, kind: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text, data = self.got.get(timeout=0.2)
            except queue.Empty:
                continue
            if parse_topic(text).message_type == kind:
                return decode(data)
        raise AssertionError(f"no {kind} in {timeout} s")

    def publish(self, text: str, body: bytes, retain: bool = False) -> None:
        self.client.publish(text, body, qos=1, retain=retain).wait_for_publish(5)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _bdseq(payload: Any) -> int:
    return next(get_value(m) for m in payload.metrics if m.name == "bdSeq")


def _node(port: int, tmp_path: Path, **kw: Any) -> SparkplugEdgeNode:
    cfg = MqttConfig(broker=f"mqtt://127.0.0.1:{port}", reconnect_min_s=0.2)
    devices = {"d": [MetricDef("n", DataType.Int64), MetricDef("s", DataType.Float, 1.0)]}
    return SparkplugEdgeNode(cfg, "g", "e", client_id="e-spb", devices=devices,
                             bdseq_path=tmp_path / "bdseq", **kw)  # fmt: skip


def test_seq_wraps_through_a_long_session_and_bdseq_goes_on_after_a_restart(tmp_path: Path):
    broker = Mosquitto(tmp_path).start()
    listener = Listener(broker.port)
    try:
        node = _node(broker.port, tmp_path)
        node.update("d", {"n": 0, "s": 0.0})  # known before the births: they carry it
        node.start()
        nbirth = listener.next("NBIRTH")
        assert nbirth.seq == 0 and _bdseq(nbirth) == 0
        assert listener.next("DBIRTH").seq == 1
        for i in range(300):  # report by exception: one DDATA per change, seq wrapping
            node.update("d", {"n": i + 1, "s": 0.5})  # s moves less than its deadband
        seqs = []
        for _ in range(300):
            data = listener.next("DDATA")
            seqs.append(data.seq)
            assert [m.name for m in data.metrics] == [""] and data.metrics[0].alias > 0
        assert seqs == [(2 + i) % 256 for i in range(300)]
        node.stop()
        assert _bdseq(listener.next("NDEATH")) == 0  # an orderly stop says so itself
        node = _node(broker.port, tmp_path).start()  # a new process: the next bdSeq
        assert _bdseq(listener.next("NBIRTH")) == 1
        node.stop()
    finally:
        listener.stop()
        broker.stop()


def test_births_wait_for_the_primary_host_and_a_stale_state_is_ignored(tmp_path: Path):
    broker = Mosquitto(tmp_path).start()
    listener = Listener(broker.port)
    host = state_topic("scada")
    try:
        listener.publish(host, state_payload(False, 1000), retain=True)
        node = _node(broker.port, tmp_path, primary_host_id="scada").start()
        time.sleep(1.0)
        assert not node.born.is_set() and node.connected and node.host_online is False
        listener.publish(host, state_payload(True, 2000), retain=True)
        assert _bdseq(listener.next("NBIRTH")) == 0
        listener.publish(host, state_payload(False, 1500), retain=True)  # older: ignored
        time.sleep(0.5)
        assert node.born.is_set() and node.stats()["host_offline_disconnects"] == 0
        listener.publish(host, state_payload(False, 3000), retain=True)
        assert _bdseq(listener.next("NDEATH")) == 0
        listener.publish(host, state_payload(True, 4000), retain=True)
        assert _bdseq(listener.next("NBIRTH")) == 1  # a new session, a new bdSeq
        node.stop()
    finally:
        listener.stop()
        broker.stop()


def test_a_sample_that_does_not_fit_its_type_is_refused_and_the_rest_go_on(tmp_path: Path):
    broker = Mosquitto(tmp_path).start()
    listener = Listener(broker.port)
    try:
        node = _node(broker.port, tmp_path).start()
        listener.next("DBIRTH")
        node.update("d", {"n": "many"})
        node.update("d", {"n": 7})
        data = listener.next("DDATA")
        assert [get_value(m) for m in data.metrics] == [7] and data.seq == 2
        assert node.stats()["bad_samples"] == 1
        node.stop()
    finally:
        listener.stop()
        broker.stop()
