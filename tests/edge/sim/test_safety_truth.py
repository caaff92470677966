"""The safety figures of a sim run: strokes judged against the node's state time line, stop
times per cause, RSS growth per node process."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.sim.safety_truth import DEAD, StateTimeline, belt_stops, judge_strokes, rss_growth


def _timeline(*points: tuple[float, str]) -> StateTimeline:
    tl = StateTimeline()
    for t, s in points:
        tl.add(t, s, "test")
    return tl


def test_state_at_is_the_last_point_at_or_before_and_says_since_when() -> None:
    tl = _timeline((0.0, "ready"), (1.0, "running"), (5.0, "estop"), (5.2, "estop"), (9, "ready"))
    assert tl.state_at(-1) == (None, None)
    assert tl.state_at(1.0) == ("running", 1.0)
    assert tl.state_at(4.999) == ("running", 1.0)
    assert tl.state_at(6.0) == ("estop", 5.0)  # a repeated point does not reset "since"
    assert tl.entries_into("estop") == [5.0]
    assert tl.transitions() == [(0.0, "ready"), (1.0, "running"), (5.0, "estop"), (9, "ready")]


def test_points_from_two_sources_merge_in_time_order() -> None:
    tl = StateTimeline()
    tl.add(2.0, "estop", "health")  # the poll saw it later than the event's stamp
    tl.add(1.9, "estop", "event")
    tl.add(1.0, "running", "health")
    assert tl.state_at(1.95) == ("estop", 1.9)


def test_strokes_are_counted_outside_running_with_the_state_and_how_far_in() -> None:
    tl = _timeline((0.0, "running"), (10.0, "estop"), (20.0, "ready"), (21.0, "running"))
    strokes = [(5.0, 1, "mcu"), (10.5, 2, "mcu"), (20.5, 3, "plc"), (22.0, 0, "mcu")]
    r = judge_strokes(strokes, tl, kills=[], watchdog_s=0.5)
    assert r["strokes"] == 4 and r["while_not_running"] == 2
    assert r["while_not_running_by_state"] == {"estop": 1, "ready": 1}
    assert r["examples"][0] == {"t": 10.5, "station": 2, "driver": "mcu", "state": "estop",
                                "ms_into_state": 500.0}  # fmt: skip


def test_strokes_after_a_kill_count_only_past_the_mcu_watchdog() -> None:
    tl = _timeline((0.0, "running"), (30.0, DEAD), (31.0, "boot"), (31.5, "ready"))
    strokes = [(30.2, 1, "mcu"), (30.54, 2, "mcu"), (30.7, 3, "mcu"), (31.2, 4, "mcu")]
    r = judge_strokes(strokes, tl, kills=[30.0], watchdog_s=0.5, slack_s=0.05)
    assert r["while_node_dead_before_watchdog"] == 2  # the MCU ran the dead node's schedule
    assert r["while_not_running"] == 2  # past its watchdog, and before the restarted start
    assert r["while_not_running_by_state"] == {DEAD: 1, "boot": 1}


def test_a_stroke_before_the_node_ever_reported_counts() -> None:
    r = judge_strokes([(0.5, 0, "mcu")], _timeline((1.0, "running")), kills=[], watchdog_s=0.5)
    assert r["while_not_running"] == 1


@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from(["running", "estop", "ready"]))),
       st.lists(st.floats(0, 100)))  # fmt: skip
def test_every_stroke_is_running_counted_or_excused(points, times) -> None:
    tl = _timeline(*points)
    r = judge_strokes([(t, 0, "mcu") for t in times], tl, kills=[], watchdog_s=0.5)
    running = sum(1 for t in times if tl.state_at(t)[0] == "running")
    assert r["strokes"] == len(times)
    assert r["while_not_running"] + running == len(times)
    assert sum(r["while_not_running_by_state"].values()) == r["while_not_running"]


def test_belt_stops_per_cause_with_the_limit_and_a_belt_that_never_stopped() -> None:
    causes = [("estop", 110.0), ("node-kill", 130.0), ("fault", 150.0)]
    r = belt_stops(causes, [110.5, 130.9, None], limit_ms=800, t0=100.0)
    assert r["by_cause"] == {"estop": 500.0, "fault": "never stopped", "node-kill": 900.0}
    assert r["belt_stop_ms"] == "never stopped" and r["over_limit"] == 2
    assert r["stops"][0] == {"cause": "estop", "at_s": 10.0, "stop_ms": 500.0}
    ok = belt_stops(causes[:1], [110.5], limit_ms=800, t0=100.0)
    assert ok["belt_stop_ms"] == 500.0 and ok["over_limit"] == 0
    assert belt_stops([], [], limit_ms=800, t0=0)["belt_stop_ms"] is None


def test_rss_growth_per_process_after_warm_up() -> None:
    flat = [{"t_s": t, "pid": 1, "rss_mb": 60 + (t % 3)} for t in range(0, 600, 10)]
    growing = [{"t_s": t, "pid": 2, "rss_mb": 60 + t / 10} for t in range(600, 1200, 10)]
    short = [{"t_s": t, "pid": 3, "rss_mb": 500} for t in range(1200, 1240, 10)]
    r = rss_growth(flat + growing + short)
    assert r["by_pid"]["1"] <= 2 and 40 <= r["by_pid"]["2"] <= 50
    assert "3" not in r["by_pid"]  # too few samples to say
    assert r["max_growth_mb"] == r["by_pid"]["2"] and r["peak_mb"] == 500
