"""The durable outbox: SQLite (WAL) on disk between the node and the network.

Every event, telemetry message and command result is committed here, with its per-channel
sequence number, before it may be sent; rows are sent in insertion order (row id). The broker's
PUBACKs advance an acknowledged watermark (the highest row id below which everything was
acknowledged); rows at or below it are "kept", so a brain that saw a gap can ask for them again
(``requeue`` appends copies), and are the first to go when the store is full. Then telemetry
not yet sent goes, oldest first, and only then events; every drop is counted and persisted.

Why a watermark and not a flag per row: marking each row acknowledged was a second write per
message and capped the rate at about half of raw paho. The watermark is saved a few times a
second; after a kill -9 the rows acknowledged since the last save are sent again, which the
envelope's (node, channel, seq) makes harmless: delivery is at least once, never less.

The session number, sequence counters and watermark live in the same database. A row holds
its own sequence number, so a channel's counter is written only when rows are deleted (in the
same transaction), and on open it is the larger of the stored counter and the highest stored
row: a kill -9 can neither lose a committed message nor reuse a sequence number.

Appends from concurrent callers are committed in groups: each numbers its message and queues
it, then takes the writing connection's lock, and whoever holds that lock commits everything
queued so far in one transaction; a caller that waited for the lock often finds its message
already committed (each caller still returns only once its message is committed; a lone
caller commits its own message at once, as before). Row ids are given out in Python in the
order of the sequence numbers, and batches commit in id order, so the sender never sees a row
before a lower one. A committed row is also handed to the sender in memory (a bounded queue),
so it does not read back from SQLite what was just written; it falls back to SQLite whenever
that queue is not the contiguous continuation of what it sent (after a reconnect, a backlog
larger than the queue, a replay request).

When the disk refuses a write (full, I/O error; ``on_store_error: spill``, the default) the
outbox degrades instead of failing its callers: the error is counted (``store_errors``), the
message keeps its sequence number and waits in memory (the *spill*, bounded by
``spill_max_bytes``: unsent telemetry goes first, then unsent events, counted as drops), the
sender sends it from there, and every later message queues behind it, so the order holds.
Writes are retried at most every ``_RETRY_S``, on the next append or the sender's
housekeeping; once one succeeds the spill is stored in one transaction and all is as before.
Counters that could not be written (session, state seq, drops) are written then too.
Fault injection for the simulator: when the environment variable
``WOLFPACK_FAULT_OUTBOX_FULL`` names a file and that file exists, the writing connection's
``max_page_count`` is set to the file's current page count (SQLite refuses to grow it, as on a
full disk), and restored when the file is gone; checked at most every 100 ms.

Messages too large for the network (``mqtt.max_message_bytes``, the broker's limit) are
replaced by the link with a placeholder under the same sequence number; their original is kept
in the ``dead_letters`` table (the newest ``_DEAD_LETTERS_KEPT``, each cut to 64 KiB).

The Greengrass / Kura failures this avoids: an in-memory cap that drops the oldest messages
silently, and a store that corrupts on power loss (SQLite's WAL is atomic and checksummed).
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from fleet_link.config import OutboxConfig

log = logging.getLogger("fleet_link.outbox")

FAULT_OUTBOX_FULL_ENV = "WOLFPACK_FAULT_OUTBOX_FULL"  # test hook: see the module docstring
PRIORITY_TELEMETRY = 0
PRIORITY_EVENT = 1
_ROW_OVERHEAD = 64  # bytes counted per row beside topic and payload (ids, b-tree cells)
_FRESH_MAX = 4096  # committed rows handed to the sender in memory (about 2 MB at most)
_RETRY_S = 0.1  # while the disk refuses writes: at most one attempt per this
_FAULT_CHECK_S = 0.1  # how often the fault-injection file is looked for
_DEAD_LETTERS_KEPT = 100
_DEAD_LETTER_HEAD = 64 * 1024  # bytes of a dead letter's payload kept
_INSERT = (
    "INSERT INTO messages(id, topic, payload, channel, seq, priority, size) "
    "VALUES(?, ?, ?, ?, ?, ?, ?)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    head BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    request_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class Row(NamedTuple):  # a tuple: made once per message, and the INSERT's parameters as is
    id: int
    topic: str
    payload: bytes
    channel: str
    seq: int
    priority: int = PRIORITY_EVENT
    size: int = 0  # bytes counted against max_bytes


@dataclass(frozen=True)
class OutboxStats:
    depth: int  # messages not yet acknowledged by the broker
    kept: int  # acknowledged messages kept for replay requests
    bytes: int
    max_bytes: int
    dropped_telemetry: int
    dropped_events: int
    storage: str  # "ok", or "failing" while the disk refuses writes
    store_errors: int  # writes the disk refused since the outbox was opened
    spilled: int  # messages waiting in memory for the disk (sent from there meanwhile)
    dead_lettered: int  # messages replaced by a placeholder (too large to send), ever


class OutboxUnavailable(RuntimeError):
    """The disk refused the message and ``on_store_error`` is 'raise'; the cause is chained."""


def is_storage_error(exc: BaseException) -> bool:
    """A failure of the storage (full, I/O, locked, read-only, corrupt), not of the message."""
    return (
        isinstance(exc, (sqlite3.OperationalError, OSError)) or type(exc) is sqlite3.DatabaseError
    )


class Outbox:
    """Thread-safe. Appends take ``_gate`` (a lock) just long enough to number their message
    and queue it; then whoever holds ``_lock``, which guards the writing connection (and the
    counters' persisted values), commits the whole queue. The sender reads
    through a second connection or from the in-memory queue of fresh rows, so it never waits
    for a commit; the in-memory counters have their own small lock ``_num``.
    Lock order: ``_lock`` before ``_gate`` and ``_num``; nothing is taken while ``_gate`` or
    ``_num`` is held (``make_payload`` runs under ``_gate``: it must not touch the outbox)."""

    def __init__(self, cfg: OutboxConfig) -> None:
        self.cfg = cfg
        path = Path(cfg.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={cfg.durability.upper()}")
        self._db.execute("PRAGMA busy_timeout=5000")
        # Checkpoint the WAL every ~40 MB instead of every 4 MB: it doubled the append rate.
        self._db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db.executescript(_SCHEMA)
        self._counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        for chan, top in self._db.execute(
            "SELECT channel, MAX(seq) FROM messages GROUP BY channel"
        ):
            key = "seq:" + chan
            self._counters[key] = max(int(self._counters.get(key, 0)), int(top))
        # Sequence numbers of committed rows (what _persist_seqs may write; the counters above
        # also count messages numbered but still waiting for their commit).
        self._durable = {k: v for k, v in self._counters.items() if k.startswith("seq:")}
        self._watermark = int(self._counters.get("acked_id", 0))
        self._saved_watermark = self._watermark
        # Row ids are given out here, never reused: above every stored row, the saved
        # watermark, the last id saved when rows were deleted, and (stores made before ids
        # were given out here) SQLite's AUTOINCREMENT high mark.
        last_id = max(
            self._scalar("SELECT COALESCE(MAX(id), 0) FROM messages"),
            self._watermark,
            int(self._counters.get("last_id", 0)),
        )
        if self._scalar("SELECT COUNT(*) FROM sqlite_master WHERE name='sqlite_sequence'"):
            last_id = max(
                last_id,
                self._scalar(
                    "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name='messages'"
                ),
            )
        self._next_id = last_id + 1
        self._pending = self._scalar(
            "SELECT COUNT(*) FROM messages WHERE id > ?", (self._watermark,)
        )
        self._kept = self._scalar("SELECT COUNT(*) FROM messages WHERE id <= ?", (self._watermark,))
        self._bytes = self._scalar("SELECT COALESCE(SUM(size), 0) FROM messages")
        self._sent_max = self._watermark  # rows above this were never handed to the sender
        self._num = threading.Lock()
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # group commit: messages numbered and waiting for a holder of _lock to commit them
        self._gate = threading.Lock()
        self._queue: list[Row] = []
        self._done_id = last_id  # every id up to this one is committed (or failed)
        self._failed: dict[int, BaseException] = {}  # id -> why its commit failed
        self.commits = 0  # transactions that stored messages (a group counts once)
        # committed rows not yet taken by the sender, in id order (see fetch)
        self._fresh: deque[Row] = deque()
        # degraded storage (see the module's docstring); the spill is in id order, and every
        # id in it is above every stored row's: all later rows queue behind it
        self._spill: list[Row] = []
        self._spill_bytes = 0
        self._storage_ok = True
        self._retry_at = 0.0
        self.store_errors = 0
        self._unsaved: set[str] = set()  # counters changed in memory, not yet written
        self._max_pages = self._scalar("PRAGMA max_page_count")
        self._fault_path = os.environ.get(FAULT_OUTBOX_FULL_ENV) or None
        self._fault_due = 0.0
        self._fault_on = False

    def _scalar(self, sql: str, args: tuple = ()) -> int:
        return int(self._db.execute(sql, args).fetchone()[0])

    # transactions ---------------------------------------------------------------------------
    def _write(self, work: Callable[[], None]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            work()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # counters -------------------------------------------------------------------------------
    def counter(self, name: str) -> int:
        with self._lock:
            return int(self._counters.get(name, 0))

    def _set_counter(self, name: str, value: int) -> None:
        self._counters[name] = value
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    def _persist_seqs(self) -> None:
        """Write the sequence counters of committed rows and the last row id given out
        (inside a transaction that is about to delete rows)."""
        for name, value in list(self._durable.items()):
            self._write_counter(name, int(value))
        self._write_counter("last_id", self._next_id - 1)

    def _write_counter(self, name: str, value: int) -> None:
        # like _set_counter, without touching the in-memory counters (owned by _gate)
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES(?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    def bump(self, name: str) -> int:
        """Increase a persisted counter by one and return the new value (committed, or, while
        the disk refuses writes, held in memory and written with the next write that works)."""
        with self._lock:
            value = self.counter(name) + 1
            if name in self._durable:  # a seq: counter (state): _persist_seqs writes this one
                self._durable[name] = value
            try:
                self._write(lambda: self._set_counter(name, value))
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                self._counters[name] = value
                self._unsaved.add(name)
                self._storage_failed(exc, f"counter {name}")
            return value

    def _add_count(self, name: str, n: int) -> None:
        """(holding ``_lock``) Add to a persisted counter in memory; written with the next
        write (drops counted while the disk refuses writes)."""
        self._counters[name] = int(self._counters.get(name, 0)) + n
        self._unsaved.add(name)

    def _write_unsaved(self) -> None:
        """(inside a transaction) Write the counters changed only in memory."""
        for name in sorted(self._unsaved):
            self._write_counter(name, int(self._counters.get(name, 0)))

    def last_seq(self, channel: str) -> int:
        return self.counter("seq:" + channel)

    # writing --------------------------------------------------------------------------------
    def append(
        self, channel: str, topic: str, priority: int, make_payload: Callable[[int], bytes]
    ) -> int:
        """Commit one message; ``make_payload(seq)`` builds it with its sequence number.

        Returns the sequence number; when this returns the message is in the database.
        Concurrent callers share commits (see the module's docstring).
        """
        key = "seq:" + channel
        with self._gate:
            seq = self._counters.get(key, 0) + 1
            payload = make_payload(seq)  # may raise: then nothing was numbered
            self._counters[key] = seq
            rid = self._next_id
            self._next_id = rid + 1
            self._queue.append(
                Row(
                    rid,
                    topic,
                    payload,
                    channel,
                    seq,
                    priority,
                    len(payload) + len(topic) + _ROW_OVERHEAD,
                )
            )
        self._commit_through(rid)
        if self._failed:
            with self._gate:
                self._raise_failure(rid, rid)
        return seq

    def _commit_through(self, rid: int) -> None:
        """Return once ``rid`` is committed (or failed). Whoever holds ``_lock`` commits the
        whole queue, in order, so callers that waited for the lock often find their message
        already committed by the one before them: that is the group commit."""
        with self._lock:
            if self._done_id < rid:  # still queued: only a holder of _lock empties the queue
                with self._gate:
                    batch, self._queue = self._queue, []
                self._commit(batch)

    def _raise_failure(self, first: int, last: int) -> None:
        """(holding ``_gate``) Raise why the commit of ids first..last failed, if it did."""
        failure = None
        for rid in range(first, last + 1):
            failure = self._failed.pop(rid, None) or failure
        if failure is not None:
            raise failure

    def _commit(self, batch: list[Row]) -> None:
        """(holding ``_lock``) Store a batch in one transaction; a failure is recorded for
        its callers (see _fail) or, for a storage failure, the batch joins the spill; nothing
        is raised here. While the spill holds rows, the batch queues behind them."""
        self._check_fault_hook()
        if (self._spill or not self._storage_ok) and self.cfg.on_store_error == "spill":
            if time.monotonic() < self._retry_at or not self._flush_spill():
                self._to_spill(batch)
                return
        db = self._db
        try:
            if len(batch) == 1:
                db.execute(_INSERT, batch[0])  # one statement in autocommit: one transaction
            else:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(_INSERT, batch)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except Exception as exc:
            if is_storage_error(exc) and self.cfg.on_store_error == "spill":
                self._storage_failed(exc, f"{len(batch)} message(s)")
                self._to_spill(batch)
            else:
                if is_storage_error(exc):
                    self._storage_failed(exc, f"{len(batch)} message(s)")
                    wrapped = OutboxUnavailable(f"outbox {self.cfg.path}: {exc}")
                    wrapped.__cause__ = exc
                    exc = wrapped
                self._fail(batch, exc)
            return
        self._storage_ok = True
        self._done_id = batch[-1].id
        self.commits += 1
        durable = self._durable
        added = 0
        for row in batch:
            added += row.size
            key = "seq:" + row.channel
            if row.seq > durable.get(key, 0):  # a replayed copy carries an old seq
                durable[key] = row.seq
        with self._num:
            self._pending += len(batch)
            self._bytes += added
            fresh = self._fresh
            room = _FRESH_MAX - len(fresh)
            if room > 0:  # else the sender reads them back from SQLite
                fresh.extend(batch if room >= len(batch) else batch[:room])
            over = self._bytes > self.cfg.max_bytes
        if over:
            self._make_room()

    # degraded storage ------------------------------------------------------------------------
    def _storage_failed(self, exc: BaseException, what: str) -> None:
        """(holding ``_lock``) Count a refused write; log the first of a failing spell."""
        self.store_errors += 1
        self._retry_at = time.monotonic() + _RETRY_S
        if self._storage_ok:
            log.error(
                "outbox %s refused a write (%s): %s; keeping messages in memory and retrying",
                self.cfg.path,
                what,
                exc,
            )
        self._storage_ok = False

    def _to_spill(self, batch: list[Row]) -> None:
        """(holding ``_lock``) Keep a batch the disk refused in memory, numbered for good:
        its callers return, the sender sends it from here, and it is stored later."""
        durable = self._durable
        for row in batch:
            key = "seq:" + row.channel
            if row.seq > durable.get(key, 0):
                durable[key] = row.seq
        with self._num:
            self._spill.extend(batch)
            self._spill_bytes += sum(r.size for r in batch)
            self._pending += len(batch)
            over = self._spill_bytes > self.cfg.spill_max_bytes
        self._done_id = batch[-1].id
        if over:
            self._shed_spill()

    def _shed_spill(self) -> None:
        """(holding ``_lock``) Bring the spill under 95% of spill_max_bytes: rows the broker
        already acknowledged, then unsent telemetry, then unsent events, oldest first."""
        target = int(self.cfg.spill_max_bytes * 0.95)
        with self._num:
            rows, size, sent_max = self._spill, self._spill_bytes, self._sent_max
            rules = (
                (lambda r: r.id <= self._watermark, None),
                (lambda r: r.id > sent_max and r.priority == PRIORITY_TELEMETRY, "telemetry"),
                (lambda r: r.id > sent_max and r.priority == PRIORITY_EVENT, "events"),
            )
            for rule, counter in rules:
                if size <= target:
                    break
                keep: list[Row] = []
                gone = 0
                for row in rows:
                    if size > target and rule(row):
                        size -= row.size
                        gone += 1
                    else:
                        keep.append(row)
                rows = keep
                if counter is None:
                    self._kept -= gone
                else:
                    self._pending -= gone
                    self._add_count("dropped_" + counter, gone)
            self._spill, self._spill_bytes = rows, size

    def _flush_spill(self) -> bool:
        """(holding ``_lock``) Store the spill (and counters held in memory) in one
        transaction; True when nothing is left in memory."""
        spill = self._spill
        if not spill and not self._unsaved:
            self._storage_ok = True
            return True
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if spill:
                    self._db.executemany(_INSERT, spill)
                self._persist_seqs()  # also those of spilled rows that were shed
                self._write_unsaved()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except Exception as exc:
            self._storage_failed(exc, f"{len(spill)} message(s) held in memory")
            return False
        with self._num:
            self._spill = []
            self._spill_bytes = 0
            self._bytes += sum(r.size for r in spill)
            self._fresh.clear()  # the sender reads on from SQLite, where the spill now is
            over = self._bytes > self.cfg.max_bytes
        self._unsaved.clear()
        if not self._storage_ok:
            log.warning(
                "outbox %s takes writes again: %d message(s) stored", self.cfg.path, len(spill)
            )
        self._storage_ok = True
        if over:
            self._make_room()
        return True

    def retry(self) -> None:
        """Store what waits in memory if the disk takes writes again (the sender calls this
        a few times a second; appends retry too). Never raises for storage errors."""
        if self._storage_ok and not self._unsaved and not self._fault_path:
            return
        with self._lock:
            self._check_fault_hook()
            if (self._spill or self._unsaved) and time.monotonic() >= self._retry_at:
                self._flush_spill()

    def _check_fault_hook(self) -> None:
        """(holding ``_lock``) The simulator's outbox-full fault: see the module docstring."""
        if self._fault_path is None:
            return
        now = time.monotonic()
        if now < self._fault_due:
            return
        self._fault_due = now + _FAULT_CHECK_S
        on = os.path.exists(self._fault_path)
        if on == self._fault_on:
            return
        try:
            if on:
                pages = self._scalar("PRAGMA page_count")
                self._db.execute(f"PRAGMA max_page_count={pages}")
                log.warning(
                    "fault injection: outbox %s may not grow (%d pages)", self.cfg.path, pages
                )
            else:
                self._db.execute(f"PRAGMA max_page_count={self._max_pages}")
                log.warning("fault injection over: outbox %s may grow again", self.cfg.path)
            self._fault_on = on
        except sqlite3.Error as exc:
            log.error("fault injection on outbox %s: %s", self.cfg.path, exc)

    def _fail(self, batch: list[Row], exc: BaseException) -> None:
        """A commit failed (disk full, I/O error): nothing of the batch is stored. It and every
        message queued behind it fail with ``exc``, and their sequence numbers are given back,
        so a channel's numbers stay without gaps. Their row ids are not: an id is never given
        out twice (the sender takes a gap in ids as a reason to read from SQLite)."""
        with self._gate:
            failed = batch + self._queue
            self._queue = []
            for row in reversed(failed):
                key = "seq:" + row.channel
                if row.seq > self._durable.get(key, 0):  # numbered anew, not a replayed copy
                    self._counters[key] = row.seq - 1
                self._failed[row.id] = exc
            self._done_id = max(self._done_id, failed[-1].id)

    def _make_room(self) -> None:
        """Bring the store under 95% of max_bytes: kept rows, then telemetry, then events.

        Rows already handed to the sender (in flight) are not dropped: their PUBACK is near.
        """
        with self._lock:
            target = int(self.cfg.max_bytes * 0.95)
            with self._num:
                if self._bytes <= self.cfg.max_bytes:
                    return
                sent_max = self._sent_max
                self._fresh.clear()  # rows may go: the sender reads what is left from SQLite
            steps = (
                (f"id <= {self._watermark}", None),
                (f"id > {sent_max} AND priority={PRIORITY_TELEMETRY}", "dropped_telemetry"),
                (f"id > {sent_max} AND priority={PRIORITY_EVENT}", "dropped_events"),
            )

            def work() -> None:
                self._persist_seqs()
                for where, counter in steps:
                    while self._bytes > target:
                        sizes = self._db.execute(
                            "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                            f"WHERE {where} ORDER BY id LIMIT 256) RETURNING size"
                        ).fetchall()
                        if not sizes:
                            break
                        with self._num:
                            self._bytes -= sum(s for (s,) in sizes)
                            if counter is None:
                                self._kept -= len(sizes)
                            else:
                                self._pending -= len(sizes)
                        if counter is not None:
                            self._set_counter(counter, self.counter(counter) + len(sizes))

            try:
                self._write(work)
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                self._storage_failed(exc, "making room")
                self._recount()

    def _recount(self) -> None:
        """(holding ``_lock``) Counts from the database after a transaction that changed them
        in memory was rolled back."""
        stored = dict(
            self._db.execute(
                "SELECT name, value FROM counters WHERE name IN "
                "('dropped_telemetry', 'dropped_events')"
            ).fetchall()
        )
        for name in ("dropped_telemetry", "dropped_events"):
            if name not in self._unsaved:
                self._counters[name] = int(stored.get(name, 0))
        mark = self._watermark
        size = self._scalar("SELECT COALESCE(SUM(size), 0) FROM messages")
        kept = self._scalar("SELECT COUNT(*) FROM messages WHERE id <= ?", (mark,))
        pending = self._scalar("SELECT COUNT(*) FROM messages WHERE id > ?", (mark,))
        with self._num:
            acked = sum(1 for r in self._spill if r.id <= self._watermark)
            self._bytes = size
            self._kept = kept + acked
            self._pending = pending + len(self._spill) - acked

    def resync_pending(self) -> None:
        """Count pending and kept rows from the store again, for a new connection: the sender
        sends again every row above the watermark, and a row the broker acknowledged out of
        order above it (RabbitMQ confirms each queue on its own) was counted then; counted
        again when its resend is acknowledged, the depth went negative and a drain never
        ended."""
        with self._lock:
            self._recount_pending()

    def _recount_pending(self) -> None:
        mark = self._watermark
        kept = self._scalar("SELECT COUNT(*) FROM messages WHERE id <= ?", (mark,))
        pending = self._scalar("SELECT COUNT(*) FROM messages WHERE id > ?", (mark,))
        with self._num:
            acked = sum(1 for r in self._spill if r.id <= self._watermark)
            self._kept = kept + acked
            self._pending = pending + len(self._spill) - acked

    # sending --------------------------------------------------------------------------------
    def fetch(self, after_id: int, limit: int) -> list[Row]:
        """Unacknowledged messages with id > after_id, in order (one reader at a time: the
        sender). Served from the fresh rows in memory when they continue ``after_id`` without
        a gap, else read from SQLite."""
        with self._num:
            after = max(after_id, self._watermark)
            fresh = self._fresh
            while fresh and fresh[0].id <= after:
                fresh.popleft()
            if fresh and fresh[0].id == after + 1:
                rows = []
                take = rows.append
                nxt = after + 1
                while fresh and len(rows) < limit and fresh[0].id == nxt:
                    take(fresh.popleft())
                    nxt += 1
                self._sent_max = max(self._sent_max, nxt - 1)
                return rows
        with self._read_lock:
            found = self._reader.execute(
                "SELECT id, topic, payload, channel, seq, priority, size FROM messages "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        rows = [Row._make(r) for r in found]
        if len(rows) < limit and self._spill:
            # rows the disk refused wait in memory; their ids are above every stored row's
            with self._num:
                spill = self._spill
                start = bisect.bisect_right(
                    spill, rows[-1].id if rows else after, key=lambda r: r.id
                )
                rows.extend(spill[start : start + limit - len(rows)])
        if rows:
            with self._num:
                self._sent_max = max(self._sent_max, rows[-1].id)
        return rows

    def acknowledged(self, count: int, watermark: int) -> None:
        """``count`` more rows were acknowledged; everything up to ``watermark`` is."""
        with self._num:
            self._pending -= count
            self._kept += count
            self._watermark = max(self._watermark, watermark)

    def save_progress(self) -> None:
        """Persist the acknowledged watermark (a few times a second, and on close)."""
        with self._lock:
            if self._watermark != self._saved_watermark:
                mark = self._watermark
                try:
                    self._write(lambda: self._set_counter("acked_id", mark))
                except Exception as exc:
                    if not is_storage_error(exc):
                        raise
                    self._storage_failed(exc, "acknowledged watermark")
                    return
                self._saved_watermark = mark

    def prune_kept(self) -> int:
        """Delete acknowledged rows beyond the newest ``keep_sent``; return how many."""
        with self._lock:
            excess = self._kept - self.cfg.keep_sent
            if excess <= 0:
                return 0
            found: list[tuple[int]] = []

            def work() -> None:
                self._persist_seqs()
                found.extend(
                    self._db.execute(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE id <= ? "
                        "ORDER BY id LIMIT ?) RETURNING size",
                        (self._watermark, excess),
                    ).fetchall()
                )

            try:
                self._write(work)
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                self._storage_failed(exc, "pruning kept messages")
                return 0
            with self._num:
                self._kept -= len(found)
                self._bytes -= sum(s for (s,) in found)
            return len(found)

    def requeue(self, channel: str, from_seq: int, to_seq: int) -> int:
        """Send kept messages of a channel again (a brain's replay request): copies are
        appended, with their original envelope, behind what is queued. Returns how many."""
        with self._lock:
            kept = self._db.execute(
                "SELECT topic, payload, channel, seq, priority, size FROM messages "
                "WHERE id <= ? AND channel=? AND seq BETWEEN ? AND ? ORDER BY id",
                (self._watermark, channel, from_seq, to_seq),
            ).fetchall()
        if not kept:
            return 0
        with self._gate:
            first = self._next_id
            last = first + len(kept) - 1
            self._next_id = last + 1
            self._queue.extend(Row(first + i, *r) for i, r in enumerate(kept))
        self._commit_through(last)
        if self._failed:
            with self._gate:
                self._raise_failure(first, last)
        return len(kept)

    def available(self, channel: str, from_seq: int, to_seq: int) -> int:
        """How many distinct messages of a channel in a sequence range are still stored."""
        with self._lock:
            return self._scalar(
                "SELECT COUNT(DISTINCT seq) FROM messages WHERE channel=? AND seq BETWEEN ? AND ?",
                (channel, from_seq, to_seq),
            )

    def recent(self, channel: str, limit: int) -> list[bytes]:
        """The payloads of a channel's last ``limit`` stored messages, newest first (sent or
        not). What a restarted node reads to learn what the one that died had already
        committed; messages only spilled in memory died with it and are not here."""
        with self._read_lock:
            found = self._reader.execute(
                "SELECT payload FROM messages WHERE channel=? ORDER BY id DESC LIMIT ?",
                (channel, max(0, limit)),
            ).fetchall()
        return [bytes(r[0]) for r in found]

    # command results (idempotency) ----------------------------------------------------------
    def stored_result(self, request_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM results WHERE request_id=?", (request_id,)
            ).fetchone()
        return row[0] if row else None

    def store_result(self, request_id: str, name: str, result: str, now: float, keep: int) -> None:
        def work() -> None:
            self._db.execute(
                "INSERT OR IGNORE INTO results(request_id, name, result, created) "
                "VALUES(?, ?, ?, ?)",
                (request_id, name, result, now),
            )
            self._db.execute(
                "DELETE FROM results WHERE rowid IN (SELECT rowid FROM results "
                "ORDER BY created DESC LIMIT -1 OFFSET ?)",
                (keep,),
            )

        with self._lock:
            try:
                self._write(work)
            except Exception as exc:  # the answer still goes out; only its replay is lost
                if not is_storage_error(exc):
                    raise
                self._storage_failed(exc, f"result of {request_id}")

    # dead letters ---------------------------------------------------------------------------
    def dead_letter(self, row: Row, payload: bytes, reason: str) -> None:
        """Keep the original of a message replaced by a placeholder (the newest
        _DEAD_LETTERS_KEPT, each cut to 64 KiB) and count it. Never raises for storage."""

        def work() -> None:
            self._db.execute(
                "INSERT INTO dead_letters(channel, seq, topic, size, reason, created, head) "
                "VALUES(?, ?, ?, ?, ?, ?, ?)",
                (
                    row.channel,
                    row.seq,
                    row.topic,
                    len(payload),
                    reason,
                    time.time(),
                    payload[:_DEAD_LETTER_HEAD],
                ),
            )
            self._db.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters "
                "ORDER BY id DESC LIMIT -1 OFFSET ?)",
                (_DEAD_LETTERS_KEPT,),
            )
            self._write_unsaved()

        with self._lock:
            self._add_count("dead_lettered", 1)
            try:
                self._write(work)
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                self._storage_failed(exc, f"dead letter {row.channel} #{row.seq}")
            else:
                self._unsaved.clear()

    def dead_letters(self) -> list[dict[str, object]]:
        """The dead letters kept, oldest first (for a technician and the tests)."""
        with self._lock:
            found = self._db.execute(
                "SELECT channel, seq, topic, size, reason, created, head FROM dead_letters "
                "ORDER BY id"
            ).fetchall()
        keys = ("channel", "seq", "topic", "size", "reason", "created", "head")
        return [dict(zip(keys, r, strict=True)) for r in found]

    def replace_row(self, row: Row, payload: bytes) -> Row:
        """Put ``payload`` in place of a row not yet acknowledged (same id, channel and seq):
        a placeholder for a message the network would not take. Returns the new row."""
        new = row._replace(payload=payload, size=len(payload) + len(row.topic) + _ROW_OVERHEAD)
        with self._lock:
            with self._num:
                for i, r in enumerate(self._spill):
                    if r.id == row.id:
                        self._spill[i] = new
                        self._spill_bytes += new.size - r.size
                        return new
                self._fresh.clear()  # the sender reads the new payload back from SQLite
            try:
                found = self._db.execute(
                    "UPDATE messages SET payload=?, size=? WHERE id=? RETURNING 1",
                    (new.payload, new.size, row.id),
                ).fetchall()
            except Exception as exc:
                if not is_storage_error(exc):
                    raise
                self._storage_failed(exc, f"placeholder for {row.channel} #{row.seq}")
                return new  # sent as the placeholder this time; the original stays stored
            if found:
                with self._num:
                    self._bytes += new.size - row.size
        return new

    # status ---------------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        with self._num:
            return OutboxStats(
                depth=self._pending,
                kept=self._kept,
                bytes=self._bytes,
                max_bytes=self.cfg.max_bytes,
                dropped_telemetry=int(self._counters.get("dropped_telemetry", 0)),
                dropped_events=int(self._counters.get("dropped_events", 0)),
                storage="ok" if self._storage_ok else "failing",
                store_errors=self.store_errors,
                spilled=len(self._spill),
                dead_lettered=int(self._counters.get("dead_lettered", 0)),
            )

    def close(self) -> None:
        with self._lock:
            mark = self._watermark

            def work() -> None:
                self._persist_seqs()
                self._set_counter("acked_id", mark)

            try:
                if self._spill or self._unsaved:
                    self._flush_spill()
                self._write(work)
            except Exception as exc:  # closing must not fail: what is stored stays stored
                if not is_storage_error(exc):
                    raise
                log.error(
                    "outbox %s: could not save progress on close (%s); %d message(s) held in "
                    "memory are lost, the rest is stored",
                    self.cfg.path,
                    exc,
                    len(self._spill),
                )
            self._db.close()
            with self._read_lock:
                self._reader.close()
