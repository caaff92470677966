"""A sim run refuses, before it starts anything, a schedule it cannot carry out."""

from __future__ import annotations

import pytest

from edge.sim.faults import parse_faults
from edge.sim.run import CellSimulation, SimError, SimOptions


def test_a_random_schedule_with_a_broker_restart_needs_the_embedded_broker() -> None:
    faults = parse_faults("random=3")
    options = SimOptions(faults=faults, duration_s=300, broker="mqtt://127.0.0.1:1883")
    with pytest.raises(SimError, match=r"broker-restart .* needs the embedded broker"):
        CellSimulation(options)


def test_the_random_schedule_is_expanded_for_the_run() -> None:
    sim = CellSimulation(SimOptions(faults=parse_faults("estop@5+1,random=3"), duration_s=150))
    kinds = [f.kind for f in sim.faults]
    assert "random" not in kinds and "estop" in kinds and len(kinds) == 13
