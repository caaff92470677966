"""The brain as a pool of competing workers on a RabbitMQ cluster: exactly-once, in order.

Nodes publish over MQTT; RabbitMQ's MQTT plugin routes each message to the ``amq.topic``
exchange with the topic's ``/`` turned into ``.``. The pool declares (idempotently, any worker):

- a consistent-hash exchange ``wolfpack.<site>.brain`` bound from ``amq.topic`` for the site's
  events, telemetry, command results and states; it spreads the routing keys, so each
  (node, channel) always lands in the same partition;
- ``partitions`` durable **quorum queues** ``wolfpack.<site>.brain.p<k>`` (replicated on every
  member, so a member's death loses nothing it confirmed), each with **single active
  consumer**: every worker subscribes to every partition, RabbitMQ lets one consume it and
  hands it to the next subscriber when that one dies, with its unacknowledged messages.

So a (node, channel) is consumed by one worker at a time, in queue order. At-least-once (a
node resends what a dead member did not confirm; a dead worker's unacknowledged messages are
redelivered) becomes exactly-once with a **ledger**: per (node, channel) the last sequence
number applied, in a SQLite database shared by the workers. A batch of deliveries is applied
in one transaction: a message at or below the ledger's number is a duplicate (acknowledged,
not applied), the next number is applied (the handler writes its effects through the same
connection, in the same transaction), a later number waits unacknowledged until the ones
before it came (or ``gap_timeout_s`` passed: then it is applied and the gap reported). Only
after the commit are the deliveries acknowledged: a worker killed between the two gives its
messages to another worker, whose ledger check drops them. A site's brain puts the ledger
in its own database (same table, same transaction as its effects).

Order: per (node, channel), the unit the node's sequence numbers define (a node's channels are
independent streams, as in :mod:`fleet_link.brain`).

    python -m fleet_link.brain_pool --amqp URL[,URL...] --site S --ledger brain.sqlite3
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from fleet_link import inbound, safe_json, topics
from fleet_link.brain import Gap, Message, NodeState
from fleet_link.envelope import EnvelopeError, decode, parse_stamp

log = logging.getLogger("fleet_link.brain_pool")

KINDS = ("events", "telemetry", "cmd_result")
# A worker subscribes to another worker's partition (as its standby) once that partition has a
# consumer, or after _STANDBY_MAX_S without one (its worker is dead or late): so a pool whose
# workers start seconds apart on a loaded host still shares the partitions
_STANDBY_CHECK_S = 0.5
_STANDBY_MAX_S = 30.0
_BUSY_TIMEOUT_MS = 30_000


def exchange_name(site: str) -> str:
    return f"wolfpack.{site}.brain"


def queue_name(site: str, partition: int) -> str:
    return f"wolfpack.{site}.brain.p{partition}"


def routing_key_to_topic(key: str) -> str:
    """RabbitMQ's MQTT plugin maps ``/`` to ``.`` (and back); namespace levels hold neither."""
    return key.replace(".", "/")


def declare(channel: BlockingChannel, site: str, partitions: int) -> None:
    """Declare the pool's exchange, bindings and partition queues (idempotent)."""
    site = topics.check_level(site, "site")
    ex = exchange_name(site)
    channel.exchange_declare(ex, exchange_type="x-consistent-hash", durable=True)
    for kind in KINDS:
        channel.exchange_bind(ex, "amq.topic", routing_key=f"wolfpack.v1.{site}.*.{kind}.*")
    channel.exchange_bind(ex, "amq.topic", routing_key=f"wolfpack.v1.{site}.*.state")
    for k in range(partitions):
        q = queue_name(site, k)
        channel.queue_declare(
            q,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-single-active-consumer": True,
                "x-queue-leader-locator": "balanced",
            },
        )
        channel.queue_bind(q, ex, routing_key="1")  # the weight of this partition


class Ledger:
    """Per (node, channel) the last sequence number applied; shared by the workers."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS ledger(node TEXT NOT NULL, channel TEXT NOT NULL, "
            "last INTEGER NOT NULL, PRIMARY KEY(node, channel)) WITHOUT ROWID"
        )

    def last(self, node: str, channel: str) -> int | None:
        row = self.db.execute(
            "SELECT last FROM ledger WHERE node=? AND channel=?", (node, channel)
        ).fetchone()
        return None if row is None else int(row[0])

    def set_last(self, node: str, channel: str, seq: int) -> None:
        self.db.execute(
            "INSERT INTO ledger(node, channel, last) VALUES(?,?,?) "
            "ON CONFLICT(node, channel) DO UPDATE SET last=excluded.last",
            (node, channel, seq),
        )

    def close(self) -> None:
        self.db.close()


Handler = Callable[[Message, sqlite3.Connection], None]


@dataclass
class WorkerStats:
    received: int = 0
    applied: int = 0
    duplicates: int = 0  # redelivered or resent, dropped by the ledger
    held: int = 0  # arrived before an earlier seq of their channel (waited, then applied)
    gaps: int = 0  # sequence numbers given up after gap_timeout_s
    rejected: int = 0
    reconnects: int = 0
    states: int = 0


@dataclass
class _Pending:
    """A (node, channel)'s messages that arrived ahead of the ledger's next number."""

    held: dict[int, tuple[int, Message]] = field(default_factory=dict)  # seq -> (tag, message)
    since: float = 0.0
    counted: set[int] = field(default_factory=set)  # held seqs already counted in stats.held


class BrainWorker:
    """One worker of the pool: consume every partition (active on some), apply exactly once.

    ``index``/``workers``: this worker subscribes first to partitions ``k % workers == index``
    and to each of the others once it has a consumer (or ``_STANDBY_MAX_S`` later), so a
    pool started together shares the partitions, and a worker's death moves its partitions
    to the others (RabbitMQ's single active consumer). ``from_start``: a channel's first
    message is seq 1 (a fresh fleet); otherwise the first one seen sets where the ledger
    starts."""

    def __init__(
        self,
        amqp_urls: Sequence[str],
        site: str,
        ledger: str | Path,
        on_message: Handler | None = None,
        *,
        on_state: Callable[[NodeState], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        partitions: int = 8,
        index: int = 0,
        workers: int = 1,
        prefetch: int = 1000,
        batch_s: float = 0.02,
        from_start: bool = False,
        gap_timeout_s: float = 30.0,
        name: str = "",
    ) -> None:
        if not amqp_urls:
            raise ValueError("brain pool: no AMQP URL given")
        self.urls = list(amqp_urls)
        self.site = topics.check_level(site, "site")
        self.ledger_path = str(ledger)
        self.on_message = on_message
        self.on_state = on_state
        self.on_gap = on_gap
        self.partitions = partitions
        self.index = index % max(1, workers)
        self.workers = max(1, workers)
        self.prefetch = prefetch
        self.batch_s = batch_s
        self.from_start = from_start
        self.gap_timeout_s = gap_timeout_s
        self.name = name or f"worker-{index}"
        self.stats = WorkerStats()
        self.rejected = safe_json.Rejections(log, f"brain pool {self.name}: message")
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._url = random.randrange(len(self.urls)) if len(self.urls) > 1 else 0
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._inbox: list[tuple[int, str, bytes]] = []

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until stop(); on a lost connection, the next member (no state is lost:
        unacknowledged deliveries go back to their queue, the ledger is on disk)."""
        ledger = Ledger(self.ledger_path)
        delay = 0.2
        try:
            while not self._stop.is_set():
                url = self.urls[self._url]
                try:
                    self._serve(url, ledger)
                    delay = 0.2
                except (pika.exceptions.AMQPError, OSError) as exc:
                    log.warning("%s: AMQP %s: %s", self.name, _safe_url(url), exc or type(exc))
                self.connected.clear()
                self._pending.clear()  # unacknowledged: the broker redelivers them
                self._inbox.clear()
                if self._stop.is_set():
                    break
                self.stats.reconnects += 1
                self._url = (self._url + 1) % len(self.urls)
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)
        finally:
            ledger.close()

    # one connection -------------------------------------------------------------------------
    def _serve(self, url: str, ledger: Ledger) -> None:
        params = pika.URLParameters(url)
        params.heartbeat = 10
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.socket_timeout = 5
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            declare(ch, self.site, self.partitions)
            ch.basic_qos(prefetch_count=self.prefetch)
            mine = [k for k in range(self.partitions) if k % self.workers == self.index]
            others = [k for k in range(self.partitions) if k % self.workers != self.index]
            for k in mine:
                ch.basic_consume(queue_name(self.site, k), self._take)
            started = time.monotonic()
            check_at = started + _STANDBY_CHECK_S
            self.connected.set()
            log.info("%s consuming on %s (%d partitions first)", self.name, _safe_url(url),
                     len(mine))  # fmt: skip
            while not self._stop.is_set():
                conn.process_data_events(time_limit=self.batch_s)
                now = time.monotonic()
                if others and now >= check_at:
                    check_at = now + _STANDBY_CHECK_S
                    late = now - started >= _STANDBY_MAX_S
                    for k in list(others):
                        q = queue_name(self.site, k)
                        if late or ch.queue_declare(q, passive=True).method.consumer_count:
                            ch.basic_consume(q, self._take)
                            others.remove(k)
                self._apply(ch, ledger)
            self._apply(ch, ledger)
        finally:
            self.connected.clear()
            try:
                if conn.is_open:
                    conn.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def _take(self, _ch: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        self._inbox.append((method.delivery_tag, method.routing_key, body))

    # applying -------------------------------------------------------------------------------
    def _decode(self, key: str, body: bytes) -> tuple[str, Message | NodeState] | None:
        topic = routing_key_to_topic(key)
        try:
            parsed = topics.parse(topic)
            env = decode(body)
        except (topics.TopicError, EnvelopeError) as exc:
            self.rejected.count("bad_message", topic, str(exc))
            return None
        found = inbound.problems(parsed.kind, env.to_dict())
        if found:
            self.rejected.count(safe_json.INVALID_SCHEMA, topic, "; ".join(found[:3]))
            return None
        if parsed.kind == "state":
            status = str(env.body.get("status", "unknown"))
            return "state", NodeState(parsed.node, status, env.session, env.ts, env.body)
        msg = Message(parsed.node, parsed.channel, env.session, env.seq, env.ts, env.body)
        return "message", msg

    def _apply(self, ch: BlockingChannel, ledger: Ledger) -> None:
        """Apply what arrived (and what waited and may go now) in one transaction, then ack."""
        inbox, self._inbox = self._inbox, []
        now = time.monotonic()
        due = [
            key for key, p in self._pending.items() if p.held and now - p.since > self.gap_timeout_s
        ]
        if not inbox and not due:
            return
        acks: list[int] = []
        states: list[NodeState] = []
        gaps: list[Gap] = []
        db = ledger.db
        db.execute("BEGIN IMMEDIATE")
        try:
            lasts: dict[tuple[str, str], int | None] = {}

            def last_of(key: tuple[str, str]) -> int | None:
                if key not in lasts:
                    lasts[key] = ledger.last(*key)
                return lasts[key]

            touched: set[tuple[str, str]] = set(due)
            for tag, rkey, body in inbox:
                self.stats.received += 1
                decoded = self._decode(rkey, body)
                if decoded is None:
                    self.stats.rejected += 1
                    acks.append(tag)
                    continue
                what, item = decoded
                if what == "state":
                    assert isinstance(item, NodeState)
                    states.append(item)
                    acks.append(tag)
                    continue
                assert isinstance(item, Message)
                key = (item.node, item.channel)
                last = last_of(key)
                if last is None:
                    last = 0 if self.from_start else item.seq - 1
                    lasts[key] = last
                pend = self._pending.get(key)
                if item.seq <= last or (pend is not None and item.seq in pend.held):
                    self.stats.duplicates += 1
                    acks.append(tag)
                    continue
                pend = self._pending.setdefault(key, _Pending())
                if not pend.held:
                    pend.since = now
                pend.held[item.seq] = (tag, item)
                touched.add(key)
            for key in touched:
                pend = self._pending.get(key)
                if pend is None or not pend.held:
                    continue
                last = last_of(key)
                if last is None:
                    last = min(pend.held) - 1
                if last + 1 not in pend.held and key in due:
                    first = min(pend.held)
                    gaps.append(Gap(key[0], key[1], last + 1, first - 1))
                    self.stats.gaps += first - 1 - last
                    last = first - 1
                start = last
                while last + 1 in pend.held:
                    tag, msg = pend.held.pop(last + 1)
                    if self.on_message is not None:
                        self.on_message(msg, db)
                    acks.append(tag)
                    last += 1
                    self.stats.applied += 1
                if last != start:
                    ledger.set_last(key[0], key[1], last)
                    lasts[key] = last
                if pend.held:
                    for seq in pend.held.keys() - pend.counted:
                        self.stats.held += 1
                        pend.counted.add(seq)
                    pend.since = pend.since or now
                else:
                    del self._pending[key]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for tag in acks:
            ch.basic_ack(tag)
        for state in states:
            self.stats.states += 1
            if self.on_state is not None:
                try:
                    self.on_state(state)
                except Exception:
                    log.exception("on_state callback failed")
        for gap in gaps:
            log.warning("%s: gap %s %s %d..%d given up", self.name, *gap.__dict__.values())
            if self.on_gap is not None:
                self.on_gap(gap)


def _safe_url(url: str) -> str:
    """The URL without its password (for logs)."""
    params = pika.URLParameters(url)
    return f"amqp://{params.host}:{params.port}"


# the worker as a process: journal of applied messages (sim fleet, audits) ------------------
JOURNAL_SQL = (
    "CREATE TABLE IF NOT EXISTS applied(id INTEGER PRIMARY KEY, node TEXT, channel TEXT, "
    "seq INTEGER, session INTEGER, worker TEXT, latency_ms REAL, at REAL)"
)


def journal_handler(worker: str) -> Handler:
    """A handler whose effect is a row in ``applied`` (same transaction as the ledger): what
    the fleet simulation counts lost, duplicated and out of order from."""

    def handle(msg: Message, db: sqlite3.Connection) -> None:
        now = time.time()
        try:
            latency = (now - parse_stamp(msg.ts)) * 1000.0
        except ValueError:
            latency = -1.0
        db.execute(
            "INSERT INTO applied(node, channel, seq, session, worker, latency_ms, at) "
            "VALUES(?,?,?,?,?,?,?)",
            (msg.node, msg.channel, msg.seq, msg.session, worker, latency, now),
        )

    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet_link.brain_pool",
        description="one brain worker of the pool (RabbitMQ quorum queues, exactly-once ledger)",
    )
    parser.add_argument("--amqp", required=True, help="comma-separated AMQP URLs of the members")
    parser.add_argument("--site", required=True)
    parser.add_argument("--ledger", required=True, type=Path, help="SQLite ledger (shared)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--journal", action="store_true", help="record each applied message")
    parser.add_argument("--name", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    name = args.name or f"worker-{args.index}"
    handler: Handler | None = None
    if args.journal:
        db = sqlite3.connect(str(args.ledger), timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(JOURNAL_SQL)
        db.close()
        handler = journal_handler(name)
    worker = BrainWorker(
        args.amqp.split(","),
        args.site,
        args.ledger,
        handler,
        partitions=args.partitions,
        index=args.index,
        workers=args.workers,
        from_start=args.from_start,
        name=name,
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    try:
        worker.run()
    except sqlite3.Error as exc:
        print(f"brain pool {name}: ledger {args.ledger}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
