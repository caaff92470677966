"""The reporting thread: submit never blocks or raises, failures are counted, order kept, a
dead thread is replaced, a stalled one is bounded."""

from __future__ import annotations

import threading
import time

import pytest

from edge.node.reporter import Reporter


def test_reports_run_in_order_and_failures_are_counted_not_raised():
    rep = Reporter(max_queued=1000)
    seen: list[int] = []

    def boom() -> None:
        raise OSError(28, "No space left on device")

    for i in range(50):
        rep.submit(seen.append, i)
        rep.submit(boom)
    assert rep.flush(5)
    assert seen == list(range(50))
    assert rep.errors == 50 and "No space left" in rep.last_error
    rep.close()


def test_submit_returns_at_once_while_a_report_hangs_and_the_queue_is_bounded():
    rep = Reporter(max_queued=100)
    gate = threading.Event()
    rep.submit(gate.wait)
    start = time.monotonic()
    for i in range(500):
        rep.submit(lambda i=i: i)
    assert time.monotonic() - start < 0.5
    assert rep.dropped >= 399 and rep.backlog <= 101
    gate.set()
    assert rep.flush(5)
    rep.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_thread_is_replaced_on_the_next_submit():
    rep = Reporter()
    rep.submit(lambda: None)
    assert rep.flush(5)
    rep._queue.put(None)  # not a report: the thread dies on it (an unpacking error)
    deadline = time.monotonic() + 5
    while rep._thread is not None and rep._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    done = threading.Event()
    rep.submit(done.set)
    assert done.wait(5) and rep.restarts == 1
    rep.close()


def test_the_reporting_thread_runs_at_the_makers_priority_not_a_boosted_starters():
    """A machine's loop raised above the node's real-time priority (edge/arm/node.py) starts
    the reporting thread on its first report: the thread must not run above the node's."""
    import os

    def sched() -> tuple[int, int]:
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority

    made_at = sched()
    rep = Reporter()  # made by this thread, as the runtime makes it before the loop is boosted
    seen: dict[str, tuple[int, int]] = {}
    boosted: list[bool] = []

    def boosted_loop() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(made_at[1] + 5))
            boosted.append(True)
        except OSError:  # not permitted here (not root): the thread stays as it is
            boosted.append(False)
        rep.submit(lambda: seen.setdefault("report", sched()))
        rep.flush(5)

    starter = threading.Thread(target=boosted_loop)
    starter.start()
    starter.join(10)
    if not boosted[0]:
        pytest.skip("the OS refuses SCHED_FIFO to this process (CI runs as root)")
    assert seen["report"] == made_at
    rep.close()
