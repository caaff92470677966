"""Failover of the fleet link between broker members: two real mosquittos, real paho, the
real outbox. The node moves to the next member on loss with its outbox, session counter and
sequence numbers; nothing is lost, and what is seen twice is only what was unacknowledged."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from fleet_link.config import MqttConfig
from fleet_link.envelope import decode
from fleet_link.link import EdgeLink
from tests.fleet_link.mosquitto import Mosquitto
from tests.fleet_link.tcp_proxy import TcpProxy


class Collector:
    """A raw subscriber on one broker: every (channel, seq, session) it received, in order."""

    def __init__(self, port: int, site: str) -> None:
        self.got: list[tuple[str, int, int]] = []
        self.states: list[dict] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: c.subscribe(f"wolfpack/v1/{site}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5)

    def _on_message(self, _c, _u, msg) -> None:
        env = decode(bytes(msg.payload))
        chan = msg.topic.split("/", 4)[4]
        with self.lock:
            if chan == "state":
                self.states.append(env.body)
            else:
                self.got.append((chan, env.seq, env.session))

    def seqs(self, chan: str) -> list[int]:
        with self.lock:
            return [s for c, s, _ in self.got if c == chan]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _cfg(tmp_path: Path, urls: list[str]) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "broker": urls[0],
            "brokers": urls[1:],
            "protocol": "3.1.1",
            "keepalive_s": 5,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 1.0,
            "state_interval_s": 1.0,
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        }
    )


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.fixture
def two_brokers(tmp_path):
    a = Mosquitto(tmp_path).start()
    b = Mosquitto(tmp_path).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_link_moves_to_the_next_member_with_its_outbox_and_numbers(tmp_path, two_brokers):
    a, b = two_brokers
    proxy = TcpProxy(a.port).start()  # the path to member A, so it can vanish at once
    on_a, on_b = Collector(a.port, "s"), Collector(b.port, "s")
    link = EdgeLink(_cfg(tmp_path, [f"mqtt://127.0.0.1:{proxy.port}", b.url]), "s", "n1")
    stop = threading.Event()
    sent: list[int] = []

    def publish() -> None:  # a steady event stream while the member goes away
        while not stop.is_set():
            sent.append(link.publish_event("parcel", {"i": len(sent)}))
            time.sleep(0.002)

    try:
        link.start()
        assert link.connected.wait(5)
        first_session = link.session
        writer = threading.Thread(target=publish)
        writer.start()
        assert _wait(lambda: len(on_a.seqs("events/parcel")) > 200, 10)
        t_cut = time.monotonic()
        proxy.stop()  # member A is gone: connections closed, nothing listens
        assert _wait(lambda: link.connected.is_set() and link.broker_url == b.url, 5)
        moved_after = time.monotonic() - t_cut
        assert _wait(lambda: len(on_b.seqs("events/parcel")) > 200, 10)
        stop.set()
        writer.join()
        assert link.wait_drained(10)
        assert _wait(lambda: on_b.seqs("events/parcel")[-1:] == [sent[-1]], 5)
    finally:
        stop.set()
        link.stop()
        on_a.close()
        on_b.close()
        proxy.stop()
    # within the first reconnect delay (0.1 s, jittered) plus the connect: no backoff growth
    assert moved_after < 1.5, moved_after
    assert link.failovers == 1 and link.session == first_session + 1
    seen_a, seen_b = on_a.seqs("events/parcel"), on_b.seqs("events/parcel")
    # each member saw its part in order; together every sequence number, none lost
    assert seen_a == sorted(seen_a) and seen_b == sorted(seen_b)
    assert sorted(set(seen_a) | set(seen_b)) == sent == list(range(1, len(sent) + 1))
    # the only repeats are what was unacknowledged at the cut (at most the send window)
    again = set(seen_a) & set(seen_b)
    assert len(again) <= link.cfg.outbox.max_inflight
    if again:
        assert min(seen_b) == min(again) and max(again) == max(seen_a)
    # a resent message is the stored one (its envelope names the session it was made in);
    # what was made after the move carries the next session number
    made_after = [sess for c, seq, sess in on_b.got if c == "events/parcel" and seq not in again]
    assert set(made_after) <= {first_session, first_session + 1}
    assert made_after[-1] == first_session + 1 and made_after == sorted(made_after)
    assert any(s.get("status") == "online" for s in on_b.states)


def test_link_cycles_through_members_that_die_and_come_back(tmp_path, two_brokers):
    a, b = two_brokers
    link = EdgeLink(_cfg(tmp_path, [a.url, b.url]), "s", "n2")
    counts: dict[str, int] = defaultdict(int)
    try:
        link.start()
        assert link.connected.wait(5)
        assert link.broker_url == a.url
        for step, (dead, alive) in enumerate(((a, b), (b, a))):
            on_alive = Collector(alive.port, "s")
            try:
                dead.kill()  # SIGKILL: a crash
                assert _wait(lambda al=alive: link.broker_url == al.url and
                             link.connected.is_set(), 5)  # fmt: skip
                first = link.publish_event("parcel", {"step": step})
                for _ in range(49):
                    link.publish_event("parcel", {"step": step})
                assert _wait(lambda o=on_alive, f=first: set(o.seqs("events/parcel")) >=
                             set(range(f, f + 50)), 5)  # fmt: skip
                counts[alive.url] += 50
            finally:
                on_alive.close()
            dead.start()  # the member comes back (same port), ready for the next failover
    finally:
        link.stop()
    assert link.failovers == 2 and counts == {b.url: 50, a.url: 50}


def test_broker_list_is_checked_where_it_is_written(tmp_path):
    base = {"outbox": {"path": str(tmp_path / "o.sqlite3")}}
    with pytest.raises(ValidationError, match=r"brokers\[1\]"):
        MqttConfig.model_validate({**base, "brokers": ["mqtt://a:1", "http://b:2"]})
    with pytest.raises(ValidationError, match=r"brokers\[0\] is mqtts:// but broker is mqtt://"):
        MqttConfig.model_validate({**base, "brokers": ["mqtts://a:8883"]})
    cfg = MqttConfig.model_validate(
        {**base, "broker": "mqtt://a:1", "brokers": ["mqtt://b:2", "mqtt://a:1"]}
    )
    assert cfg.endpoints == ["mqtt://a:1", "mqtt://b:2"]


_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)
_urls = st.builds(lambda h, p: f"mqtt://{h}:{p}", _hosts, st.integers(1, 65535))


@settings(max_examples=30)
@given(st.lists(_urls, min_size=1, max_size=8))
def test_endpoints_keep_the_written_order_without_repeats(urls):
    cfg = MqttConfig.model_validate({"broker": urls[0], "brokers": urls[1:]})
    eps = cfg.endpoints
    assert eps[0] == urls[0] and len(eps) == len(set(eps)) and set(eps) == set(urls)
    assert eps == sorted(set(urls), key=urls.index)


def test_depth_stays_true_when_a_member_confirmed_out_of_order_before_it_died(tmp_path):
    """RabbitMQ confirms each queue on its own: rows above the watermark can be acknowledged
    before a lower one. After a failover the sender sends every row above the watermark
    again; counted twice, the depth went negative and a drain never ended."""
    from fleet_link.config import OutboxConfig
    from fleet_link.outbox import Outbox

    box = Outbox(OutboxConfig(path=str(tmp_path / "o.sqlite3")))
    try:
        for i in range(10):
            box.append("events/x", "t", 1, lambda seq, i=i: f'{{"i":{i},"seq":{seq}}}'.encode())
        rows = box.fetch(0, 100)
        assert [r.id for r in rows] == list(range(1, 11))
        box.acknowledged(3, 0)  # rows 5..7 confirmed; row 1 still out: watermark 0
        assert box.stats().depth == 7
        box.resync_pending()  # the next member: every row above the watermark goes again
        assert box.stats().depth == 10
        again = box.fetch(0, 100)
        box.acknowledged(len(again), again[-1].id)
        assert box.stats().depth == 0
    finally:
        box.close()
