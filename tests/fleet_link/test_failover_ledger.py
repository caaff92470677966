"""The brain pool's side of failover: what at-least-once delivers after a broker member or a
worker died (a node's resent tail, a dead worker's unacknowledged messages redelivered to
another, local reordering) is applied exactly once and in order, through the real SQLite
ledger and journal. And the fleet report's judge counts lost, duplicated and out of order
exactly. The cluster itself runs in tests/system/test_fleet_cluster.py (soak)."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cli.sim_fleet import analyse
from fleet_link.brain_pool import JOURNAL_SQL, BrainWorker, Ledger, journal_handler
from fleet_link.envelope import encode

SITE = "s"
CHANNELS = (("n1", "events", "parcel"), ("n1", "telemetry", "belt"), ("n2", "events", "parcel"))


class Acks:
    """Where a worker's acknowledgements go (the AMQP channel's basic_ack)."""

    def __init__(self) -> None:
        self.tags: list[int] = []

    def basic_ack(self, tag: int) -> None:
        self.tags.append(tag)


def _delivery(node: str, kind: str, name: str, seq: int) -> tuple[str, bytes]:
    """A message as the pool receives it (AMQP routing key, envelope); events are all
    route_request events, whatever ``name`` says, so each channel has a valid schema."""
    if kind == "events":
        body = {"kind": "route_request", "data": {"parcel": seq, "label": "x", "deadline_ms": 1}}
        name = "route_request"
    else:
        body = {"group": name, "reason": "periodic", "values": {"speed_mm_s": 1.0}}
    key = f"wolfpack.v1.{SITE}.{node}.{kind}.{name}"
    return key, encode(node, 1, seq, body)


@st.composite
def at_least_once(draw: st.DrawFn) -> tuple[int, list[int]]:
    """n, and a delivery order of 1..n as brokers and workers produce it: segments that each
    start at or before the next new number (resends and redeliveries) and neighbours swapped."""
    n = draw(st.integers(1, 40))
    out: list[int] = []
    top = 0
    while top < n:
        start = draw(st.integers(max(1, top - 10), top + 1))
        end = draw(st.integers(max(start, top + 1), min(n, top + 15)))
        out.extend(range(start, end + 1))
        top = max(top, end)
    for _ in range(draw(st.integers(0, 4))):
        if len(out) > 1:
            i = draw(st.integers(0, len(out) - 2))
            out[i], out[i + 1] = out[i + 1], out[i]
    return n, out


def _worker(ledger_path, name: str, from_start: bool = True) -> BrainWorker:
    return BrainWorker(
        ["amqp://127.0.0.1:1/%2F"],
        SITE,
        ledger_path,
        journal_handler(name),
        from_start=from_start,
        name=name,
        gap_timeout_s=3600,
    )


def _journal(path) -> list[tuple[str, str, int, str]]:
    db = sqlite3.connect(str(path))
    try:
        return list(db.execute("SELECT node, channel, seq, worker FROM applied ORDER BY id"))
    finally:
        db.close()


@settings(max_examples=30, deadline=None)
@given(
    streams=st.lists(at_least_once(), min_size=len(CHANNELS), max_size=len(CHANNELS)),
    interleave=st.randoms(use_true_random=False),
    batches=st.lists(st.integers(1, 25), min_size=1, max_size=40),
    crash_after=st.integers(0, 6),
)
def test_redeliveries_are_applied_once_and_in_order_across_a_worker_crash(
    tmp_path_factory, streams, interleave, batches, crash_after
):
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(str(path))
    db.execute(JOURNAL_SQL)
    db.close()
    # one queue's worth of deliveries: each channel's order kept, channels interleaved
    queues = [[(c, s) for s in order] for c, (_n, order) in zip(CHANNELS, streams, strict=True)]
    merged: list[tuple[tuple[str, str, str], int]] = []
    while any(queues):
        q = interleave.choice([q for q in queues if q])
        merged.append(q.pop(0))
    deliveries = [(tag, *_delivery(*c, s)) for tag, (c, s) in enumerate(merged, 1)]
    first, second = _worker(path, "w0"), _worker(path, "w1")
    ledger0, ledger1 = Ledger(path), Ledger(path)
    acks0, acks1 = Acks(), Acks()
    pos = 0
    for i, size in enumerate(batches):
        if i == crash_after:
            break
        first._inbox.extend(deliveries[pos : pos + size])
        first._apply(acks0, ledger0)  # type: ignore[arg-type]
        pos += size
    # the first worker dies: what it did not acknowledge goes to the second (queue order),
    # then the rest of the queue; whatever it held in memory is gone with it
    redelivered = [d for d in deliveries[:pos] if d[0] not in set(acks0.tags)]
    rest = redelivered + deliveries[pos:]
    for j in range(0, len(rest), 7):
        second._inbox.extend(rest[j : j + 7])
        second._apply(acks1, ledger1)  # type: ignore[arg-type]
    second._apply(acks1, ledger1)  # type: ignore[arg-type]
    ledger0.close()
    ledger1.close()
    rows = _journal(path)
    for (node, kind, _name), (n, _order) in zip(CHANNELS, streams, strict=True):
        chan = f"{kind}/{'route_request' if kind == 'events' else 'belt'}"
        seqs = [r[2] for r in rows if r[0] == node and r[1] == chan]
        assert seqs == list(range(1, n + 1))  # every one, once, in order
    # everything was acknowledged in the end, each delivery by exactly one of the workers
    assert sorted(set(acks0.tags) | set(acks1.tags)) == sorted(set(t for t, *_ in deliveries))
    assert second.stats.applied + first.stats.applied == len(rows)


def test_a_gap_that_never_fills_is_given_up_and_reported(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(str(path))
    db.execute(JOURNAL_SQL)
    db.close()
    gaps = []
    worker = BrainWorker(
        ["amqp://127.0.0.1:1/%2F"], SITE, path, journal_handler("w"), from_start=True,
        gap_timeout_s=0.0, on_gap=gaps.append,
    )  # fmt: skip
    ledger, acks = Ledger(path), Acks()
    worker._inbox = [(1, *_delivery("n1", "events", "parcel", 1)),
                     (2, *_delivery("n1", "events", "parcel", 4))]  # fmt: skip
    worker._apply(acks, ledger)  # type: ignore[arg-type]
    assert acks.tags == [1] and worker.stats.held == 1
    worker._apply(acks, ledger)  # type: ignore[arg-type]  # the timeout passed
    ledger.close()
    assert acks.tags == [1, 2] and worker.stats.gaps == 2
    assert [(g.from_seq, g.to_seq) for g in gaps] == [(2, 3)]
    assert [r[2] for r in _journal(path)] == [1, 4]


@st.composite
def judged(draw: st.DrawFn):
    published = {}
    rows = []
    for node in ("a", "b"):
        published[node] = {}
        for chan in ("events/parcel", "telemetry/belt"):
            top = draw(st.integers(0, 30))
            published[node][chan] = top
            rows += [(node, chan, s, 1.0, "w") for s in range(1, top + 1)]
    lost = draw(st.sets(st.integers(0, max(0, len(rows) - 1)), max_size=5)) if rows else set()
    kept = [r for i, r in enumerate(rows) if i not in lost]
    dups = draw(st.lists(st.integers(0, max(0, len(kept) - 1)), max_size=5)) if kept else []
    out = list(kept)
    for i in dups:
        out.append(kept[i])  # a repeat, applied again later
    return published, out, len(lost), len(dups)


@given(judged())
def test_the_report_counts_lost_and_duplicated_exactly(case):
    published, rows, lost, dups = case
    report = analyse(published, rows)
    assert report["lost"] == lost and report["duplicated"] == dups
    assert report["messages"] == sum(sum(c.values()) for c in published.values())
    assert report["out_of_order"] == 0  # a gap is a loss, a repeat a duplicate: neither is this


def test_the_report_counts_one_out_of_order_per_late_message():
    published = {"a": {"events/parcel": 5}}
    order = [1, 3, 2, 4, 5]  # 2 applied after 3
    report = analyse(published, [("a", "events/parcel", s, 1.0, "w") for s in order])
    assert report["out_of_order"] == 1 and report["lost"] == 0 and report["duplicated"] == 0
