"""The outbox degrades, never dies (issue 13, finding 1): a full disk is counted and reported,
messages wait in memory under their sequence numbers (and are sent from there), the network
thread survives, and once space comes back everything is stored and arrives in order.

The disk is filled for real: SQLite's ``max_page_count`` on the outbox file, set by the
simulator's fault hook (``WOLFPACK_FAULT_OUTBOX_FULL`` names a file; while it exists the file
may not grow), so every write path meets the same "database or disk is full" a full
filesystem gives.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link.config import OutboxConfig
from fleet_link.link import EdgeLink
from fleet_link.outbox import (
    FAULT_OUTBOX_FULL_ENV,
    PRIORITY_EVENT,
    PRIORITY_TELEMETRY,
    Outbox,
    OutboxUnavailable,
    Row,
)
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def full_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fault hook's file: create it to fill the disk, remove it to free it."""
    flag = tmp_path / "outbox-full"
    monkeypatch.setenv(FAULT_OUTBOX_FULL_ENV, str(flag))
    return flag


def box(tmp_path: Path, **kw: object) -> Outbox:
    return Outbox(OutboxConfig(path=str(tmp_path / "o.sqlite3"), **kw))


def put(o: Outbox, chan: str, priority: int = PRIORITY_EVENT, size: int = 400) -> int:
    body = {"pad": "x" * size}
    return o.append(
        chan, f"t/{chan}", priority, lambda seq: json.dumps({"seq": seq, **body}).encode()
    )


def fill(o: Outbox, flag: Path, chan: str = "events/a") -> list[int]:
    """Make the disk full and append until a write has been refused (and a little more)."""
    flag.touch()
    time.sleep(0.15)  # the hook looks at most every 100 ms
    seqs = []
    for _ in range(2000):
        seqs.append(put(o, chan))
        if o.stats().store_errors:
            break
    assert o.stats().store_errors, "the disk never filled"
    seqs += [put(o, chan) for _ in range(20)]
    return seqs


def fetch_all(o: Outbox) -> list[Row]:
    """What the sender would get, turn after turn, from the start."""
    rows: list[Row] = []
    while batch := o.fetch(rows[-1].id if rows else 0, 1000):
        rows += batch
    return rows


def stored(path: Path) -> dict[str, list[int]]:
    db = sqlite3.connect(str(path))
    out: dict[str, list[int]] = {}
    for chan, seq in db.execute("SELECT channel, seq FROM messages ORDER BY id"):
        out.setdefault(chan, []).append(seq)
    db.close()
    return out


def test_full_disk_never_raises_spills_in_order_and_stores_when_space_comes_back(
    tmp_path: Path, full_flag: Path
):
    o = box(tmp_path)
    first = [put(o, "events/a") for _ in range(5)]
    seqs = first + fill(o, full_flag)
    st = o.stats()
    assert st.storage == "failing" and st.spilled > 0 and st.depth == len(seqs)
    assert seqs == list(range(1, len(seqs) + 1))  # numbered for good, no number given back
    # the sender gets stored rows, then the spilled ones, in order, without a gap
    assert [r.seq for r in fetch_all(o)] == seqs
    assert o.bump("session") == 1  # counters too are held in memory, not raised
    errors = o.stats().store_errors
    o.save_progress()
    o.prune_kept()
    o.retry()  # nothing raises while the disk is full

    full_flag.unlink()
    time.sleep(0.15)
    o.retry()
    st = o.stats()
    assert st.storage == "ok" and st.spilled == 0 and st.store_errors >= errors
    more = [put(o, "events/a") for _ in range(3)]
    assert more == [len(seqs) + 1, len(seqs) + 2, len(seqs) + 3]
    o.close()
    assert stored(tmp_path / "o.sqlite3") == {"events/a": seqs + more}
    o = box(tmp_path)
    assert o.counter("session") == 1 and put(o, "events/a") == len(seqs) + 4
    o.close()


def test_spill_is_bounded_telemetry_goes_first_and_is_counted(tmp_path: Path, full_flag: Path):
    o = box(tmp_path, spill_max_bytes=64 * 1024)
    fill(o, full_flag)
    for i in range(400):  # ~190 KB more than the spill may hold
        put(o, "telemetry/belt", PRIORITY_TELEMETRY)
        if i % 4 == 0:
            put(o, "events/b")
    st = o.stats()
    assert st.dropped_telemetry > 0 and st.dropped_events == 0
    assert o._spill_bytes <= 64 * 1024
    assert st.depth == len(fetch_all(o))  # what is counted is what is there
    full_flag.unlink()
    time.sleep(0.15)
    o.retry()
    assert o.stats().storage == "ok"
    kept = stored(tmp_path / "o.sqlite3")
    assert kept["events/b"] == list(range(1, 101))  # events kept whole, in order
    telemetry = kept["telemetry/belt"]
    assert telemetry == sorted(telemetry) and telemetry[-1] == 400  # oldest telemetry went
    o.close()
    assert box(tmp_path).stats().dropped_telemetry == st.dropped_telemetry  # persisted


def test_strict_policy_raises_outbox_unavailable_and_gives_the_number_back(
    tmp_path: Path, full_flag: Path
):
    o = box(tmp_path, on_store_error="raise")
    full_flag.touch()
    time.sleep(0.15)
    raised = 0
    for _ in range(2000):
        try:
            put(o, "events/a")
        except OutboxUnavailable as exc:
            assert "database or disk is full" in str(exc)
            raised += 1
            break
    assert raised and o.stats().spilled == 0 and o.stats().storage == "failing"
    last = o.last_seq("events/a")
    full_flag.unlink()
    time.sleep(0.15)
    assert put(o, "events/a") == last + 1  # no gap
    assert o.stats().storage == "ok"
    o.close()


def test_fault_hook_refuses_growth_only_while_the_file_exists(tmp_path: Path, full_flag: Path):
    o = box(tmp_path)
    put(o, "events/a")
    normal = o._scalar("PRAGMA max_page_count")
    full_flag.touch()
    time.sleep(0.15)
    put(o, "events/a")
    assert o._scalar("PRAGMA max_page_count") == o._scalar("PRAGMA page_count") < normal
    full_flag.unlink()
    time.sleep(0.15)
    put(o, "events/a")
    assert o._scalar("PRAGMA max_page_count") == normal
    o.close()


class Collector:
    """A plain subscriber to the site: every message's (topic, JSON)."""

    def __init__(self, url: str) -> None:
        self.got: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="collector")
        self.client.on_connect = lambda c, *_: c.subscribe("wolfpack/v1/site/#", qos=1)
        self.client.on_message = self._on_message
        host, port = url.removeprefix("mqtt://").split(":")
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, json.loads(msg.payload)))

    def on(self, channel: str) -> list[dict]:
        with self._lock:
            return [m for t, m in self.got if t.endswith("/" + channel)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collector(mosquitto: Mosquitto) -> Iterator[Collector]:
    c = Collector(mosquitto.url)
    time.sleep(0.3)
    yield c
    c.close()


def test_link_survives_a_full_disk_reports_it_and_delivers_everything_in_order(
    tmp_path: Path, mosquitto: Mosquitto, collector: Collector, full_flag: Path
):
    link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "edge-1").start()
    wait_until(link.connected.is_set)
    parcels = [link.publish_event("parcel", {"i": i, "pad": "x" * 300}) for i in range(20)]
    full_flag.touch()
    time.sleep(0.15)
    while link.outbox.stats().store_errors == 0:  # publish while the disk fills
        parcels.append(link.publish_event("parcel", {"i": len(parcels), "pad": "x" * 300}))
        link.publish_telemetry("belt", {"speed": len(parcels)})
        assert len(parcels) < 3000, "the disk never filled"
    parcels += [link.publish_event("parcel", {"i": n, "pad": "x" * 300}) for n in range(30)]
    link.set_fault("jam", True)  # the whole reporting API goes on working
    link.request_state()
    # delivered from memory while the disk is still full; the state says so
    wait_until(lambda: any(m["outbox"]["storage"] == "failing" for m in collector.on("state")))
    wait_until(lambda: {m["seq"] for m in collector.on("events/parcel")} == set(parcels))
    assert link._threads[0].is_alive() and link.connected.is_set()
    failing = [m for m in collector.on("state") if m["outbox"]["storage"] == "failing"][-1]
    assert failing["outbox"]["store_errors"] > 0 and failing["outbox"]["spilled"] > 0
    assert "jam" in failing["faults"]

    full_flag.unlink()  # space comes back
    parcels += [link.publish_event("parcel", {"i": n}) for n in range(10)]
    assert parcels == list(range(1, len(parcels) + 1))  # every number given once, no gap
    assert link.wait_drained(15)
    wait_until(lambda: link.outbox.stats().spilled == 0)
    got = [m["seq"] for m in collector.on("events/parcel")]
    assert sorted(set(got)) == parcels and got == sorted(got)  # all of them, in order
    link.request_state()
    wait_until(lambda: collector.on("state")[-1]["outbox"]["storage"] == "ok")
    assert link.connects == 1  # the full disk never cost the connection
    link.stop()
    assert stored(tmp_path / "outbox.sqlite3")["events/parcel"] == parcels  # all stored


def test_network_thread_survives_an_exception_and_goes_on_delivering(
    tmp_path: Path, mosquitto: Mosquitto, collector: Collector
):
    link = EdgeLink(link_config(tmp_path, mosquitto.url), "site", "edge-1")
    real = link.outbox.save_progress
    broken = {"left": 2}

    def flaky() -> None:  # any bug on the sender's path, twice
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("boom")
        real()

    link.outbox.save_progress = flaky  # type: ignore[method-assign]
    link.start()
    for i in range(25):
        link.publish_event("parcel", {"i": i})
    wait_until(lambda: link.loop_errors == 2)  # it failed, twice, and went on
    for i in range(25, 50):
        link.publish_event("parcel", {"i": i})
    assert link.wait_drained(15)
    wait_until(lambda: len({m["seq"] for m in collector.on("events/parcel")}) == 50)
    assert link._threads[0].is_alive() and link.connects >= 2
    link.stop()
