"""Group commit and the in-memory hand-off of the outbox: concurrent writers keep per-channel
order and gap-free sequence numbers, a failed commit gives its numbers back, the sender gets
every row once and in order whether it comes from memory or from SQLite, ids never go back."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_link import outbox as outbox_mod
from fleet_link.config import OutboxConfig
from fleet_link.envelope import encode
from fleet_link.outbox import PRIORITY_EVENT, Outbox


def box(path: Path, **kw: object) -> Outbox:
    return Outbox(OutboxConfig(path=str(path / "o.sqlite3"), **kw))


def put(o: Outbox, chan: str, tag: str = "") -> int:
    return o.append(
        chan, f"t/{chan}", PRIORITY_EVENT, lambda seq: json.dumps({"seq": seq, "tag": tag}).encode()
    )


def check_store(o: Outbox, returned: dict[str, list[int]]) -> None:
    """Every row in id order: ids increasing, each channel's seqs 1..n without gap, payload
    carrying its own seq; and what each caller was told matches what is stored."""
    rows = []
    while more := o.fetch(rows[-1].id if rows else 0, 1000):  # as the sender reads
        rows.extend(more)
    ids = [r.id for r in rows]
    assert ids == sorted(set(ids))
    per_chan: dict[str, list[int]] = {}
    for r in rows:
        assert json.loads(r.payload)["seq"] == r.seq
        per_chan.setdefault(r.channel, []).append(r.seq)
    assert per_chan == {c: list(range(1, len(s) + 1)) for c, s in per_chan.items()}
    assert {c: sorted(s) for c, s in returned.items() if s} == per_chan


def wait_until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@settings(max_examples=15, deadline=None)
@given(
    plans=st.lists(
        st.lists(st.sampled_from(["events/a", "events/b", "telemetry/c"]), max_size=60),
        min_size=2,
        max_size=6,
    )
)
def test_concurrent_writers_keep_per_channel_order_and_sequence(plans, tmp_path_factory):
    path = tmp_path_factory.mktemp("o")
    o = box(path)
    returned: dict[str, list[int]] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(plans))

    def writer(plan: list[str]) -> None:
        mine: dict[str, list[int]] = {}
        start.wait()
        for chan in plan:
            mine.setdefault(chan, []).append(put(o, chan))
        for chan, seqs in mine.items():
            assert seqs == sorted(seqs)  # one caller's messages keep their order
            with lock:
                returned.setdefault(chan, []).extend(seqs)

    threads = [threading.Thread(target=writer, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    total = sum(len(p) for p in plans)
    assert o.stats().depth == total
    assert o.commits <= total
    check_store(o, returned)
    # as after a kill -9: not closed, everything committed is there for the next process
    again = box(path)
    check_store(again, returned)
    assert {c: again.last_seq(c) for c in returned} == {c: len(s) for c, s in returned.items()}
    again.close()
    o.close()


def test_appends_waiting_behind_a_commit_share_the_next_one(tmp_path: Path):
    o = box(tmp_path)
    put(o, "events/a")
    commits = o.commits
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(put(o, "events/a"))) for _ in range(6)
    ]
    with o._lock:  # the writing connection is busy (a slow disk, a long prune)
        for t in threads:
            t.start()
        wait_until(lambda: len(o._queue) == 6)  # all numbered and queued, none committed
        assert o.stats().depth == 1
    for t in threads:
        t.join(10)
    assert sorted(results) == [2, 3, 4, 5, 6, 7]
    assert o.commits - commits == 1  # the first to get the lock committed all six
    check_store(o, {"events/a": [1, *results]})


def test_a_failed_commit_fails_its_callers_and_gives_their_numbers_back(tmp_path: Path):
    o = box(tmp_path)
    assert put(o, "events/a") == 1
    o._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.channel = 'events/bad' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        put(o, "events/bad")
    assert o.last_seq("events/bad") == 0
    assert put(o, "events/a") == 2  # the outbox goes on
    # in a group: the failing message takes down those committed with it; none leaves a gap
    errors: list[BaseException] = []

    def attempt(chan: str) -> None:
        try:
            put(o, chan)
        except sqlite3.Error as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in ("events/a", "events/bad")]
    with o._lock:
        for n, t in enumerate(threads, 1):
            t.start()
            wait_until(lambda n=n: len(o._queue) == n)
    for t in threads:
        t.join(10)
    assert len(errors) == 2 and o._failed == {}
    o._db.execute("DROP TRIGGER refuse")
    assert put(o, "events/a") == 3  # 1, 2, then this: the failed 3 was given back
    assert put(o, "events/bad") == 1
    assert o.stats().depth == 4
    check_store(o, {"events/a": [1, 2, 3], "events/bad": [1]})


def test_payload_errors_number_nothing(tmp_path: Path):
    o = box(tmp_path)

    def bad(_seq: int) -> bytes:
        raise TypeError("not serialisable")

    with pytest.raises(TypeError):
        o.append("events/a", "t/events/a", PRIORITY_EVENT, bad)
    assert put(o, "events/a") == 1 and o.stats().depth == 1


def test_sender_gets_every_row_once_from_memory_or_sqlite(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(outbox_mod, "_FRESH_MAX", 50)
    o = box(tmp_path)
    for _ in range(120):  # more than the in-memory queue holds: the rest is read back
        put(o, "events/a")
    got: list[int] = []
    cursor = 0
    while rows := o.fetch(cursor, 30):
        got.extend(r.seq for r in rows)
        cursor = rows[-1].id
    assert got == list(range(1, 121))
    for _ in range(10):  # the sender keeps up: new rows come from memory, still in order
        put(o, "events/a")
    rows = o.fetch(cursor, 100)
    assert [r.seq for r in rows] == list(range(121, 131))
    # a reconnect starts again at the watermark: what was handed out but not acknowledged
    o.acknowledged(100, 100)
    assert [r.seq for r in o.fetch(0, 1000)] == list(range(101, 131))
    assert o.fetch(rows[-1].id, 10) == []


def test_ids_never_go_back_even_when_every_row_was_deleted(tmp_path: Path):
    o = box(tmp_path, keep_sent=0)
    for _ in range(5):
        put(o, "events/a")
    rows = o.fetch(0, 10)
    o.acknowledged(5, rows[-1].id)
    assert o.prune_kept() == 5
    # no close(): as after a kill -9 right after the prune
    again = box(tmp_path, keep_sent=0)
    put(again, "events/a")
    (row,) = again.fetch(0, 10)
    assert row.id > rows[-1].id and row.seq == 6


def test_a_store_made_with_autoincrement_ids_goes_on_above_them(tmp_path: Path):
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    db.executescript(
        """
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
            payload BLOB NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,
            priority INTEGER NOT NULL, size INTEGER NOT NULL);
        INSERT INTO messages(topic, payload, channel, seq, priority, size)
            VALUES ('t', x'7b7d', 'events/a', 1, 1, 70), ('t', x'7b7d', 'events/a', 2, 1, 70);
        DELETE FROM messages WHERE seq = 2;
        """
    )
    db.commit()
    db.close()
    o = box(tmp_path)
    assert put(o, "events/a") == 2  # seq continues from what was stored
    assert [r.id for r in o.fetch(0, 10)] == [1, 3]  # id 2 was used once: not again
    o.close()


@settings(max_examples=200, deadline=None)
@given(
    node=st.text(min_size=1, max_size=8),
    session=st.integers(0, 2**40),
    seq=st.integers(0, 2**40),
    body=st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in ("node", "session", "seq", "ts")),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    ),
)
def test_encode_writes_the_same_bytes_as_json_dumps(node, session, seq, body):
    ts = "2026-11-23T11:22:26.123Z"
    ref = json.dumps(
        {"node": node, "session": session, "seq": seq, "ts": ts, **body},
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    assert encode(node, session, seq, body, ts) == ref


def test_replayed_copies_never_lower_a_channel_counter(tmp_path: Path):
    o = box(tmp_path, keep_sent=0)
    for _ in range(5):
        put(o, "events/a")
    rows = o.fetch(0, 10)
    o.acknowledged(5, rows[-1].id)
    assert o.requeue("events/a", 2, 3) == 2  # copies carry seq 2 and 3
    copies = o.fetch(rows[-1].id, 10)
    assert [r.seq for r in copies] == [2, 3]
    o.acknowledged(2, copies[-1].id)
    assert o.prune_kept() == 7  # every row gone: the counter alone remembers 5
    again = box(tmp_path)
    assert put(again, "events/a") == 6
