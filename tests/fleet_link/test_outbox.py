"""The durable outbox: order, sequence numbers across reopen, acknowledgement, size policy."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_link.config import OutboxConfig
from fleet_link.outbox import PRIORITY_EVENT, PRIORITY_TELEMETRY, Outbox


def box(path: Path, **kw: object) -> Outbox:
    return Outbox(OutboxConfig(path=str(path / "o.sqlite3"), **kw))


def put(o: Outbox, chan: str, priority: int = PRIORITY_EVENT, size: int = 10) -> int:
    return o.append(
        chan,
        f"t/{chan}",
        priority,
        lambda seq: json.dumps({"seq": seq, "pad": "x" * size}).encode(),
    )


def test_sequence_numbers_per_channel_survive_reopen(tmp_path: Path):
    o = box(tmp_path)
    assert [put(o, "events/a") for _ in range(3)] == [1, 2, 3]
    assert put(o, "events/b") == 1
    rows = o.fetch(0, 100)
    o.acknowledged(len(rows), rows[-1].id)
    o.prune_kept()  # keep_sent default keeps them; counters persist either way
    o.close()
    o = box(tmp_path, keep_sent=0)
    assert o.stats().depth == 0
    o.prune_kept()  # deletes every row: the counters must still be there
    o.close()
    o = box(tmp_path)
    assert put(o, "events/a") == 4
    assert put(o, "events/b") == 2


def test_unclosed_outbox_keeps_everything_and_rows_come_in_order(tmp_path: Path):
    o = box(tmp_path)
    for _ in range(50):
        put(o, "events/a")
        put(o, "telemetry/t", PRIORITY_TELEMETRY)
    # no close(): as after a kill -9
    o2 = box(tmp_path)
    rows = o2.fetch(0, 1000)
    assert len(rows) == 100 and o2.stats().depth == 100
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.seq for r in rows if r.channel == "events/a"] == list(range(1, 51))
    assert put(o2, "events/a") == 51


def test_acknowledged_rows_are_kept_then_not_resent(tmp_path: Path):
    o = box(tmp_path, keep_sent=5)
    for _ in range(10):
        put(o, "events/a")
    rows = o.fetch(0, 4)
    o.acknowledged(4, rows[-1].id)
    o.save_progress()
    assert o.stats().depth == 6 and o.stats().kept == 4
    assert [r.seq for r in o.fetch(0, 100)] == [5, 6, 7, 8, 9, 10]
    o.close()
    o = box(tmp_path, keep_sent=5)
    assert [r.seq for r in o.fetch(0, 100)] == [5, 6, 7, 8, 9, 10]


def test_watermark_not_saved_means_resent_never_lost(tmp_path: Path):
    o = box(tmp_path)
    for _ in range(10):
        put(o, "events/a")
    rows = o.fetch(0, 10)
    o.acknowledged(10, rows[-1].id)  # acknowledged, but the process dies before saving
    o2 = box(tmp_path)
    assert len(o2.fetch(0, 100)) == 10  # at least once: sent again, deduplicated by seq


def test_requeue_appends_copies_of_kept_messages(tmp_path: Path):
    o = box(tmp_path)
    for _ in range(5):
        put(o, "events/a")
        put(o, "events/b")
    rows = o.fetch(0, 100)
    o.acknowledged(len(rows), rows[-1].id)
    assert o.requeue("events/a", 2, 4) == 3
    again = o.fetch(0, 100)
    assert [(r.channel, r.seq) for r in again] == [
        ("events/a", 2),
        ("events/a", 3),
        ("events/a", 4),
    ]
    assert again[0].payload == next(
        r.payload for r in rows if r.channel == "events/a" and r.seq == 2
    )
    assert o.available("events/a", 1, 10) == 5


def test_full_outbox_drops_telemetry_oldest_first_before_any_event(tmp_path: Path):
    o = box(tmp_path, max_bytes=64 * 1024, keep_sent=0)
    for _ in range(100):
        put(o, "events/e", PRIORITY_EVENT, size=100)
    for _ in range(2000):
        put(o, "telemetry/t", PRIORITY_TELEMETRY, size=100)
    s = o.stats()
    assert s.bytes <= 64 * 1024
    assert s.dropped_telemetry > 0 and s.dropped_events == 0
    rows = o.fetch(0, 10000)
    assert [r.seq for r in rows if r.channel == "events/e"] == list(range(1, 101))
    tele = [r.seq for r in rows if r.channel == "telemetry/t"]
    assert tele == list(range(2001 - len(tele), 2001))  # the newest telemetry survived
    assert s.depth == len(rows)
    # only events now: the oldest events go, and are counted
    for _ in range(1000):
        put(o, "events/e", PRIORITY_EVENT, size=100)
    s = o.stats()
    assert s.dropped_events > 0 and s.bytes <= 64 * 1024
    o.close()
    assert box(tmp_path).stats().dropped_events == s.dropped_events  # counts persist


@settings(max_examples=30, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["events/a", "events/b", "telemetry/c"]), st.integers(0, 3)),
        max_size=40,
    )
)
def test_any_append_ack_sequence_keeps_per_channel_order(ops: list, tmp_path_factory):
    o = box(tmp_path_factory.mktemp("o"))
    sent: dict[str, list[int]] = {}
    expected: dict[str, int] = {}
    cursor = 0
    for chan, acks in ops:
        expected[chan] = expected.get(chan, 0) + 1
        assert put(o, chan) == expected[chan]
        rows = o.fetch(cursor, acks)
        for r in rows:
            sent.setdefault(r.channel, []).append(r.seq)
            cursor = r.id
        o.acknowledged(len(rows), cursor)
    for r in o.fetch(cursor, 1000):
        sent.setdefault(r.channel, []).append(r.seq)
    assert {c: s for c, s in sent.items()} == {
        c: list(range(1, n + 1)) for c, n in expected.items()
    }
    o.close()


def test_recent_gives_a_channels_last_stored_payloads_newest_first(tmp_path: Path):
    o = box(tmp_path)
    for _ in range(5):
        put(o, "events/parcel")
        put(o, "events/fault")
    rows = o.fetch(0, 100)
    o.acknowledged(len(rows), rows[-1].id)  # sent and acknowledged rows are kept: still there
    got = [json.loads(p)["seq"] for p in o.recent("events/parcel", 3)]
    assert got == [5, 4, 3]
    assert o.recent("events/none", 3) == [] and o.recent("events/parcel", 0) == []
    o.close()
    o = box(tmp_path)  # what a restarted node reads: the dead one's committed messages
    assert [json.loads(p)["seq"] for p in o.recent("events/parcel", 10)] == [5, 4, 3, 2, 1]
    o.close()
