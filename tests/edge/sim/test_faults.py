"""The --faults schedule parser: every valid spec round-trips, every bad one says why."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.sim.faults import (
    BROKER_DOWN_S,
    DEFAULT_DURATIONS,
    DEFAULT_VALUES,
    INTEGER_VALUES,
    KINDS,
    NODE_RESTART_S,
    RANDOM_RANGES,
    Fault,
    FaultSpecError,
    expand_random,
    parse_faults,
    random_schedule,
)


def test_the_documented_examples_parse() -> None:
    faults = parse_faults(
        "brain-absent@10+20, serial-noise=0.001,broker-restart@40,plc-timeouts=0.3@20+10"
    )
    assert faults == [
        Fault("serial-noise", 0.0, None, 0.001),
        Fault("brain-absent", 10.0, 20.0),
        Fault("plc-timeouts", 20.0, 10.0, 0.3),
        Fault("broker-restart", 40.0, BROKER_DOWN_S),
    ]
    assert parse_faults("") == []


def test_the_issue_13_schedule_parses() -> None:
    faults = parse_faults("outbox-full@10+20,estop@15+3,node-kill@35,scanner-noise=0.05")
    assert faults == [
        Fault("scanner-noise", 0.0, None, 0.05),
        Fault("outbox-full", 10.0, 20.0),
        Fault("estop", 15.0, 3.0),
        Fault("node-kill", 35.0, NODE_RESTART_S),  # restarted after systemd's pause
    ]
    assert parse_faults("command-flood@20+3") == [Fault("command-flood", 20.0, 3.0, 1000.0)]
    assert parse_faults("command-flood=4000@20+1")[0].value == 4000
    assert parse_faults("node-kill@35+4") == [Fault("node-kill", 35.0, 4.0)]
    assert parse_faults("random:7") == parse_faults("random=7") == [Fault("random", 0, None, 7)]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("brain-gone@1", "unknown fault 'brain-gone'; known: brain-absent"),
        ("brain-slow@1+2", "needs a value"),
        ("brain-absent=3", "takes no value"),
        ("plc-timeouts=1.5", "within [0, 1]"),
        ("estop@x+1", "start 'x' is not a number"),
        ("estop@1+0", "duration must be > 0"),
        ("estop@-1", "start must be a finite number >= 0"),
        ("estop!", "expected NAME"),
        ("serial-noise=nan", ">= 0"),
        ("scanner-noise=2", "within [0, 1]"),
        ("scanner-noise@3", "needs a value"),
        ("node-kill=3@1", "takes no value"),
        ("command-flood=0.5@1+1", "within [1, 20000]"),
        ("random=1.5", "must be a whole number"),
        ("random", "needs a value"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(FaultSpecError, match=None) as err:
        parse_faults(spec)
    assert says in str(err.value)
    assert repr(spec.split(",")[0]) in str(err.value)


def _value(kind: str, share: float) -> float | None:
    takes, _meaning, (lo, hi) = KINDS[kind]
    if not takes:
        return None
    value = lo + share * (hi - lo)
    return float(round(value)) if kind in INTEGER_VALUES else value


_fault = st.builds(
    lambda kind, start, duration, value: Fault(
        kind,
        start,
        duration if duration is not None else DEFAULT_DURATIONS.get(kind),
        _value(kind, value),
    ),
    st.sampled_from(sorted(KINDS)),
    st.integers(0, 10_000).map(lambda n: n / 8),
    st.one_of(st.none(), st.integers(1, 10_000).map(lambda n: n / 8)),
    st.integers(0, 1000).map(lambda n: n / 1000),
)


@given(st.lists(_fault, max_size=6))
def test_any_schedule_round_trips_through_its_text(faults: list[Fault]) -> None:
    text = ",".join(str(f) for f in faults)
    parsed = parse_faults(text)
    assert [str(f) for f in parsed] == [str(f) for f in sorted(faults, key=lambda f: f.start_s)]


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_says_why(text: str) -> None:
    try:
        parse_faults(text)
    except FaultSpecError as exc:
        assert str(exc)


def test_kinds_with_defaults_take_values() -> None:
    assert BROKER_DOWN_S == DEFAULT_DURATIONS["broker-restart"]
    for kind in DEFAULT_VALUES:
        assert KINDS[kind][0]


@given(st.integers(0, 2**32 - 1), st.integers(0, 4000).map(lambda n: n / 2))
def test_a_random_schedule_is_seeded_round_trips_and_stays_in_its_window(
    seed: int, span: float
) -> None:
    faults = random_schedule(seed, 10.0, 10.0 + span)
    assert faults == random_schedule(seed, 10.0, 10.0 + span)  # the seed decides it all
    assert parse_faults(",".join(str(f) for f in faults)) == faults
    ends = [(f.start_s, f.end_s) for f in faults]
    for (_start, end), (next_start, _) in itertools.pairwise(ends):
        assert end is not None and end <= next_start  # one at a time: recovery in between
    for f in faults:
        assert f.kind in RANDOM_RANGES and f.start_s >= 10.0
        assert f.end_s is not None and f.end_s <= 10.0 + span + 1e-9
        values = RANDOM_RANGES[f.kind][1]
        if values is None:
            assert f.value is None
        else:
            assert f.value is not None and values[0] * 0.99 <= f.value <= values[1] * 1.01


def test_a_random_schedule_of_two_minutes_has_every_kind_and_a_long_one_each_often() -> None:
    assert {f.kind for f in random_schedule(3, 0, 150)} == set(RANDOM_RANGES)
    long = random_schedule(3, 0, 1800)
    counts = {k: sum(1 for f in long if f.kind == k) for k in RANDOM_RANGES}
    assert min(counts.values()) >= 5 and max(counts.values()) <= 7
    assert random_schedule(3, 0, 5) == []  # too short for one slot
    assert set(RANDOM_RANGES) == set(KINDS) - {"random"}  # a new kind joins the soak


def test_expand_random_replaces_the_item_and_keeps_the_others() -> None:
    faults = parse_faults("estop@5+1,random=9@20+130")
    out = expand_random(faults, 200.0)
    assert Fault("estop", 5.0, 1.0) in out
    assert all(f.kind != "random" for f in out)
    assert all(20 <= f.start_s and f.end_s is not None and f.end_s <= 150 for f in out[1:])
    assert [f.start_s for f in out] == sorted(f.start_s for f in out)
    # without a window: the whole run
    assert expand_random(parse_faults("random=9"), 150.0) == random_schedule(9, 0.0, 150.0)
