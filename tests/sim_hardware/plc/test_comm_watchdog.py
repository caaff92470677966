"""The simulated PLC's communication watchdog: the belt stops when the master's heartbeat
register stops changing, as a PLC configured for communication loss does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.plc.register_map import (
    COIL_RUN,
    DI_COMM_LOST,
    HR_HEARTBEAT,
    IR_COMM_WATCHDOG_MS,
    QUICK_STOP_MM_S2,
    RegisterImage,
)


def _running(watchdog_ms: int) -> RegisterImage:
    image = RegisterImage(watchdog_ms)
    image.set("coil", COIL_RUN, [1])
    image.set("holding_register", HR_HEARTBEAT, [1])
    assert image.comm_tick(0.0) is False
    return image


def test_heartbeat_keeps_the_belt_and_silence_stops_it_on_the_quick_stop_ramp():
    image = _running(300)
    assert image.tables["input_register"][IR_COMM_WATCHDOG_MS] == 300
    for beat in range(2, 50):  # a heartbeat every 100 ms for 4.8 s
        image.set("holding_register", HR_HEARTBEAT, [beat])
        assert image.comm_tick(0.1) is False
    assert image.commands().run and not image.commands().quick_stop
    assert [image.comm_tick(0.1) for _ in range(3)] == [False, False, True]
    cmd = image.commands()
    assert not cmd.run and cmd.quick_stop and cmd.ramp_mm_s2 >= QUICK_STOP_MM_S2
    assert image.tables["discrete_input"][DI_COMM_LOST] == 1


def test_a_returning_heartbeat_clears_the_flag_but_only_a_run_write_restarts():
    image = _running(200)
    for _ in range(3):
        image.comm_tick(0.1)
    assert image.comm_lost
    image.set("holding_register", HR_HEARTBEAT, [7])
    image.comm_tick(0.01)
    assert not image.comm_lost and image.tables["discrete_input"][DI_COMM_LOST] == 0
    assert not image.commands().run  # still stopped: the master must run it again
    image.set("coil", COIL_RUN, [1])
    assert image.commands().run and not image.commands().quick_stop


def test_rewriting_the_same_value_is_not_a_heartbeat():
    image = _running(200)
    for _ in range(5):
        image.set("holding_register", HR_HEARTBEAT, [1])
        image.comm_tick(0.05)
    assert image.comm_lost and not image.commands().run


def test_watchdog_off_never_stops():
    image = _running(0)
    for _ in range(100):
        assert image.comm_tick(1.0) is False
    assert image.commands().run


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0.001, max_value=0.5), min_size=1, max_size=60),
       watchdog_ms=st.integers(min_value=50, max_value=1000))
def test_trips_exactly_when_a_gap_between_heartbeats_reaches_the_timeout(gaps, watchdog_ms):
    """Heartbeats at the given gaps (ticked in 10 ms steps): tripped iff some gap >= timeout."""
    image = _running(watchdog_ms)
    tripped = False
    for beat, gap in enumerate(gaps, start=2):
        steps = max(1, round(gap / 0.01))
        for _ in range(steps):
            tripped |= image.comm_tick(0.01)
        image.set("holding_register", HR_HEARTBEAT, [beat])
        image.comm_tick(0.0)
    longest = max(max(1, round(g / 0.01)) * 0.01 for g in gaps)
    if longest * 1000 >= watchdog_ms + 1e-6:
        assert tripped
    elif longest * 1000 < watchdog_ms - 1e-6:
        assert not tripped
    assert not image.comm_lost  # the last heartbeat cleared it
