"""The reporting path, kept off the safety path: one thread runs every report.

The node's loop makes the safety decisions and commands the devices; what it then tells the
world (MQTT events through the outbox's SQLite, the health file) is handed to this thread and
never waited for. A full disk, a slow broker or a report that raises therefore cannot delay
or skip a stop. Every failure is counted and logged, and the thread is restarted if it ever
dies, so reporting resumes when its cause goes.

The queue is bounded: past ``max_queued`` waiting reports (the outbox stalled for a long
time) new ones are dropped and counted rather than growing the node without limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("wolfpack.node.report")

_STOP = object()


class Reporter:
    def __init__(self, name: str = "reporter", max_queued: int = 100_000) -> None:
        self.name = name
        self.max_queued = max_queued
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.done = 0
        self.errors = 0
        self.dropped = 0
        self.restarts = 0
        self.last_error = ""
        self._logged_at = 0.0
        # the scheduling of the thread that made the reporter: the reporting thread runs at
        # it, not at that of the thread that happens to start it (a machine's loop boosted
        # above the node's real-time priority, edge/arm/node.py, would lend it its boost)
        self._sched = _this_threads_scheduling()

    # ---- the loop's side: never blocks ---------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on the reporting thread, later; returns at once."""
        if self._closed:
            return
        if self._queue.qsize() >= self.max_queued:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("reporting is %d reports behind; %d dropped so far",
                          self._queue.qsize(), self.dropped)  # fmt: skip
            return
        self._queue.put((fn, args, kwargs))
        self._ensure_thread()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def stats(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "errors": self.errors,
            "dropped": self.dropped,
            "backlog": self.backlog,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    def flush(self, timeout: float) -> bool:
        """Wait (from a thread other than the loop, or at shutdown) for the queue to empty."""
        done = threading.Event()
        if self._closed:
            return True
        self._queue.put((done.set, (), {}))  # past the bound: a flush is never dropped
        self._ensure_thread()
        return done.wait(timeout)

    def close(self, timeout: float = 3.0) -> None:
        self.flush(timeout)
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- the reporting thread ------------------------------------------------------------
    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:
                self.restarts += 1
                log.error("the reporting thread had died; restarted (%d)", self.restarts)
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        _set_this_threads_scheduling(self._sched)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
                self.done += 1
            except Exception as exc:  # a report failed: count it, keep the thread
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                now = time.monotonic()
                if now - self._logged_at > 5.0:  # a failing disk must not flood the log
                    self._logged_at = now
                    log.error("report failed (%d so far): %s", self.errors, self.last_error)


def _this_threads_scheduling() -> tuple[int, int] | None:
    """(policy, priority) of the calling thread; None where the OS does not say."""
    try:
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    except (OSError, AttributeError):
        return None


def _set_this_threads_scheduling(sched: tuple[int, int] | None) -> None:
    """The calling thread to ``sched`` (the node's scheduling); a refusal leaves it as it is."""
    now = _this_threads_scheduling()
    if sched is None or now is None or now == sched:
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, sched[0], os.sched_param(sched[1]))
