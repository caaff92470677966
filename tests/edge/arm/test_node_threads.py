"""The arm node's motion thread priority (edge/arm/node.py, ``boost_this_thread``): raised
over the node's other threads only where the node runs real-time, and a thread started
from it (the planner's) brought back to the node's priority."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from edge.arm.node import MOTION_RT_BOOST, at_priority, boost_this_thread


def _in_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(5)
    return out[0]


def test_a_thread_that_is_not_real_time_is_left_as_it_is() -> None:
    def run() -> tuple[int | None, int, int]:
        # a thread may always leave real-time: so this runs whatever the test process is
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        before = os.sched_getscheduler(0)
        return boost_this_thread(), before, os.sched_getscheduler(0)

    base, before, after = _in_thread(run)
    assert before == os.SCHED_OTHER
    assert base is None and after == os.SCHED_OTHER


def test_a_real_time_thread_is_raised_and_its_children_brought_back() -> None:
    def run() -> tuple[int | None, int, int, int]:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            return None, -1, -1, -1  # not permitted here (lowprio: rtprio 0)
        base = boost_this_thread()
        mine = os.sched_getparam(0).sched_priority

        def child() -> tuple[int, int]:
            inherited = os.sched_getparam(0).sched_priority
            at_priority(base)
            return inherited, os.sched_getparam(0).sched_priority

        inherited, back = _in_thread(child)
        return base, mine, inherited, back

    base, mine, inherited, back = _in_thread(run)
    if base is None and mine == -1:
        pytest.skip("real-time scheduling not permitted for this process")
    assert base == 1 and mine == 1 + MOTION_RT_BOOST
    assert inherited == mine and back == 1
