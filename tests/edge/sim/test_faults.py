"""The --faults schedule parser: every valid spec round-trips, every bad one says why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.sim.faults import BROKER_DOWN_S, KINDS, Fault, FaultSpecError, parse_faults


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
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(FaultSpecError, match=None) as err:
        parse_faults(spec)
    assert says in str(err.value)
    assert repr(spec.split(",")[0]) in str(err.value)


_fault = st.builds(
    lambda kind, start, duration, value: Fault(
        kind,
        start,
        duration if duration is not None or kind != "broker-restart" else BROKER_DOWN_S,
        (value * KINDS[kind][2][1]) if KINDS[kind][0] else None,
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
