"""Reconnect backoff: within [min, max], starting at the minimum, growing to the cap."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.linedev.backoff import backoff_delay


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    min_s=st.floats(min_value=0.001, max_value=10),
    spread=st.floats(min_value=1, max_value=1000),
    seed=st.integers(),
)
def test_delay_stays_between_min_and_max(attempt, min_s, spread, seed):
    max_s = min_s * spread
    d = backoff_delay(attempt, min_s, max_s, random.Random(seed))
    assert min_s <= d <= max_s


def test_delays_start_at_the_minimum_and_reach_the_cap():
    rng = random.Random(1)
    first = [backoff_delay(0, 0.1, 5.0, rng) for _ in range(100)]
    assert all(d == 0.1 for d in first)
    late = [backoff_delay(20, 0.1, 5.0, rng) for _ in range(100)]
    assert all(2.5 <= d <= 5.0 for d in late) and len(set(late)) > 50  # jittered
