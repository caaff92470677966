"""The monitor's view on a controlled clock: DEAD at once on the will with the last known state
kept, rates by the records' own ts (a replayed backlog does not count), STALE by message age,
and no input that makes it raise or print a control character (issue 17, item 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_link.brain import Message, NodeState
from fleet_link.envelope import utc_stamp
from fleet_link.monitor import FleetView, render, rows_json


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def state(node: str, t: float, **body: Any) -> NodeState:
    return NodeState(
        node, body.get("status", "online"), 3, utc_stamp(t), {"status": "online", **body}
    )


def parcel(node: str, t: float, outcome: str, source: str = "brain", seq: int = 1) -> Message:
    data = {"parcel_id": seq, "outcome": outcome, "decision_source": source}
    return Message(node, "events/parcel", 3, seq, utc_stamp(t), {"kind": "parcel", "data": data})


def event(node: str, t: float, kind: str, data: Any) -> Message:
    return Message(node, f"events/{kind}", 3, 1, utc_stamp(t), {"kind": kind, "data": data})


def test_the_will_makes_a_node_dead_at_once_and_keeps_its_last_known_state():
    clock = Clock()
    view = FleetView(clock)
    cell = {"state": "running", "devices_missing": [], "degraded": [], "config_version": "v9"}
    view.on_state(state("cell-1", clock.t, cell=cell, faults=["jam"]))
    for i in range(30):
        view.on_message(parcel("cell-1", clock.t + i * 0.1, "sorted", seq=i + 1))
    clock.t += 5
    [row] = view.rows()
    assert row.link == "online" and row.per_min["sorted"] == 30 * 60 / 5
    will = NodeState("cell-1", "offline", 4, utc_stamp(clock.t - 3600), {
        "status": "offline", "reason": "connection lost"})  # fmt: skip
    view.on_state(will)
    [row] = view.rows()
    assert row.link == "DEAD" and row.dead_since == clock.t and row.online is False
    assert row.per_min["sorted"] == 0 and row.parcels_per_min == 0  # at once, not in a minute
    assert row.safety == "running" and row.faults == ["jam"] and row.config_version == "v9"
    # the age is that of the newest parcel (2.9 s after the start): the will's ts (its
    # connect, an hour ago) is no news of the node
    assert abs(row.last_seen_s - 2.1) < 0.01
    text = render(view.rows(), "site")
    assert "site site: 0/1 nodes online, 1 DEAD" in text and "DEAD since" in text
    assert not row.dead_before
    # back: online again, DEAD gone
    clock.t += 10
    view.on_state(state("cell-1", clock.t, cell={**cell, "state": "ready"}))
    [row] = view.rows()
    assert row.link == "online" and row.dead_since is None and row.safety == "ready"


def test_rates_count_records_by_their_own_ts_in_the_window():
    clock = Clock()
    view = FleetView(clock, window_s=60)
    clock.t += 120  # the monitor has watched for two minutes
    view.on_message(parcel("cell-1", clock.t - 600, "sorted"))  # a backlog after a reconnect
    view.on_message(parcel("cell-1", clock.t - 30, "sorted"))
    view.on_message(parcel("cell-1", clock.t - 20, "rejected", "unreadable"))
    view.on_message(parcel("cell-1", clock.t - 10, "lost", "routing_table"))
    view.on_message(parcel("cell-1", clock.t + 5, "mis_sorted", "brain"))  # its clock ahead
    [row] = view.rows()
    assert row.per_min == {"sorted": 1.0, "rejected": 1.0, "lost": 1.0, "mis_sorted": 1.0}
    assert row.brain_share == 2 / 3  # brain 2, routing table 1 (unreadable is neither)
    clock.t += 45  # the first two leave the window
    [row] = view.rows()
    assert row.per_min["sorted"] == 0 and row.per_min["rejected"] == 0
    assert row.per_min["lost"] == 1.0
    clock.t += 100
    [row] = view.rows()
    assert row.parcels_per_min == 0 and row.brain_share is None  # zero when none arrive


def test_safety_degraded_faults_and_stale_from_events_and_age():
    clock = Clock()
    view = FleetView(clock, stale_after_s=30)
    view.on_state(state("cell-1", clock.t, cell={"state": "running"}))
    view.on_message(
        event("cell-1", clock.t, "safety", {"from": "running", "to": "estop", "cause": "e-stop"})
    )
    view.on_message(event("cell-1", clock.t, "degraded", {"devices": ["scanner-2"]}))
    view.on_message(event("cell-1", clock.t, "fault", {"code": "plc_lost", "active": True}))
    [row] = view.rows()
    assert (row.safety, row.degraded, row.faults) == ("estop", ["scanner-2"], ["plc_lost"])
    assert "ESTOP DEGRADED" in render(view.rows(), "site")
    view.on_message(event("cell-1", clock.t, "safety", {"to": 7}))  # against its schema
    assert view.rows()[0].safety == "estop" and view.rejected.total == 1
    clock.t += 31
    [row] = view.rows()
    assert row.link == "STALE" and row.last_seen_s == 31
    view.on_state(state("cell-1", clock.t, status="offline", reason="shutdown"))
    assert view.rows()[0].link == "offline" and "offline (shutdown)" in render(view.rows(), "s")


json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_like = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
hostile_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["cell", "faults", "outbox", "config_version", "reason", "x"]),
        st.one_of(
            json_like,
            st.dictionaries(
                st.sampled_from(["state", "devices_missing", "degraded", "config_version"]),
                st.one_of(json_like, hostile_text, st.lists(hostile_text, max_size=3)),
            ),
        ),
    ),
    st.lists(
        st.tuples(st.sampled_from(["parcel", "degraded", "safety", "fault", "other"]), json_like),
        max_size=5,
    ),
    st.sampled_from(["online", "offline", "weird"]),
    hostile_text,
)
def test_no_input_makes_the_view_raise_or_print_control_characters(body, events, status, ts):
    clock = Clock()
    view = FleetView(clock)
    view.on_state(NodeState("cell-1", status, 1, ts, {**body, "status": status}))
    for kind, data in events:
        view.on_message(event("cell-1", clock.t, kind, data))
        view.on_message(Message("cell-1", f"events/{kind}", 1, 2, ts, {"kind": kind, "data": data}))
    text = render(view.rows(), "site", view.rejected.snapshot())
    for line in text.splitlines():
        assert line.isprintable(), repr(line)
    text.encode("utf-8")
    json.dumps(rows_json(view.rows()))


def test_a_will_the_broker_held_says_dead_before_the_monitor_came():
    clock = Clock()
    view = FleetView(clock)
    clock.t += 3
    view.mark_subscribed()
    clock.t += 0.2  # the broker's retained messages come right after the subscription
    view.on_state(
        NodeState("cell-1", "offline", 4, utc_stamp(clock.t - 99), {
            "status": "offline", "reason": "connection lost"})
    )  # fmt: skip
    [row] = view.rows()
    assert row.link == "DEAD" and row.dead_before and "DEAD before " in render([row], "s")


def test_the_retain_flag_decides_dead_since_or_dead_before():
    """A live will right after subscribing (a node killed within a second of the monitor's
    start; seen in CI) is 'DEAD since'; the broker's stored copy is 'DEAD before'."""
    will = {"status": "offline", "reason": "connection lost"}
    for retained, words in ((False, "DEAD since "), (True, "DEAD before ")):
        clock = Clock()
        view = FleetView(clock)
        view.mark_subscribed()
        view.on_state(NodeState("cell-1", "online", 4, utc_stamp(clock.t), {"status": "online"},
                                retained=retained))  # fmt: skip
        clock.t += 0.3
        view.on_state(NodeState("cell-1", "offline", 4, utc_stamp(clock.t - 99), will,
                                retained=retained))  # fmt: skip
        [row] = view.rows()
        assert row.link == "DEAD" and words in render([row], "s"), (retained, render([row], "s"))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["monitor", "--site", "SIM"], "did you mean 'sim'?"),
        (["monitor", "--site", "sim", "--interval", "-1"], "--interval -1.0"),
        (["monitor", "--site", "sim", "--window", "0"], "--window 0.0"),
        (["monitor", "--site", "sim", "--json"], "--json goes with --once"),
        (["monitor", "--site", "sim", "--broker", "http://x:1"], "mqtt://host:port"),
        (["cmd", "stop", "--node", "Cell", "--site", "sim"], "--node 'Cell'"),
        (["cmd", "stop", "--node", "c", "--site", "a/b"], "--site 'a/b'"),
        (["cmd", "stop", "--node", "c", "--site", "s", "--timeout", "0"], "--timeout 0.0"),
        (["cmd", "stop", "--node", "c", "--site", "s", "--request-id", ""], "--request-id"),
        (["cmd", "stop", "--node", "c", "--site", "s", "--broker", "mqtt://"], "--broker"),
        (["cmd", "stop", "--node", "c", "--site", "s", "--password-file", "/nonexistent"],
         "--password-file /nonexistent: No such file"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_2(argv, words, capsys):
    from edge.cli.main import build_parser

    full = [*argv] if "--broker" in argv else [*argv, "--broker", "127.0.0.1:1"]
    args = build_parser().parse_args(full)
    assert args.handler(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and err[0].startswith("wolfpack "), err
