"""The training budget: a CPU budget with a wall-clock cap ends its schedule by either."""

from __future__ import annotations

import time

from training.train_parcel_model import Budget


def test_a_starved_cpu_budget_follows_the_wall_cap():
    b = Budget(minutes=60, clock="cpu", max_wall_minutes=10)
    b.t0_wall = time.time() - 5 * 60  # half the cap gone, almost no CPU spent
    assert 0.49 < b.fraction() < 0.55  # the schedule is half-way, not at ~0
    assert b.left()
    b.t0_wall = time.time() - 11 * 60
    assert b.fraction() == 1.0
    assert not b.left()


def test_an_uncapped_budget_counts_its_own_clock_only():
    b = Budget(minutes=1, clock="wall")
    b.t0_wall = time.time() - 30
    assert 0.49 < b.fraction() < 0.55
    b.t0_wall = time.time() - 120
    assert b.fraction() == 1.0


def test_a_cpu_budget_spent_ends_before_the_cap():
    b = Budget(minutes=1, clock="cpu", max_wall_minutes=60)
    b.t0_cpu = time.process_time() - 61
    assert b.fraction() == 1.0
