"""The PLC's drop-rate fault leaves about that share of requests unanswered."""

from __future__ import annotations

from sim_hardware.plc.faults import FaultPlan


def test_drop_rate_drops_about_that_share() -> None:
    plan = FaultPlan(drop_rate=0.3)
    dropped = sum(plan.drops() for _ in range(10_000))
    assert 2_700 < dropped < 3_300
    assert plan.active


def test_no_drop_rate_drops_nothing_and_silence_drops_all() -> None:
    assert not any(FaultPlan().drops() for _ in range(1000))
    assert all(FaultPlan(no_answer=True).drops() for _ in range(10))
