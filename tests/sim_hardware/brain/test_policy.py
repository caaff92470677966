"""The reference brain as a policy: the rule's chute, reject for no label, slow, absent."""

from __future__ import annotations

import numpy as np
import pytest

from sim_hardware.brain import BrainConfig, ReferenceBrain, chute_for_label
from sim_hardware.world import CellWorld
from tests.sim_hardware.world.helpers import small_config


def test_the_brain_agrees_with_the_worlds_truth_for_every_legible_label():
    world = CellWorld(small_config(arrivals={"rate_pph": 36_000, "unreadable_fraction": 0.1}))
    world.advance_to(60.0)
    cfg = world.config
    brain = ReferenceBrain(
        BrainConfig(sort_chutes=cfg.sort_stations, reject_chute=cfg.reject_index)
    )
    records = list(world.score.records.values())
    assert len(records) > 400
    for rec in records:
        label = rec.parcel.label_text if rec.parcel.label_legible else None
        decision = brain.decide(label)
        assert decision is not None and decision.chute == rec.intended


def test_no_label_goes_to_reject_and_an_unroutable_one_too():
    brain = ReferenceBrain(BrainConfig(sort_chutes=[0, 1, 2], reject_chute=7))
    assert brain.chute_for(None) == (7, "no label")
    assert brain.chute_for("") == (7, "no label")
    assert brain.chute_for("NODIGITS") == (7, "unroutable")
    assert brain.chute_for("000004") == (chute_for_label("000004", [0, 1, 2]), "plan")


def test_routes_are_applied_and_reported():
    brain = ReferenceBrain(BrainConfig(sort_chutes=[0, 1], reject_chute=7, routes={"WP9": 4}))
    assert brain.chute_for("WP9000000001") == (4, "route")


def test_latency_without_jitter_is_exact_and_with_jitter_has_the_configured_median():
    brain = ReferenceBrain(BrainConfig(latency_ms=20))
    assert {brain.decide("1").latency_s for _ in range(10)} == {0.020}
    brain.set_latency(20, jitter_ms=10)
    lat = np.array([brain.decide("1").latency_s for _ in range(4000)]) * 1000
    assert np.median(lat) == pytest.approx(20, rel=0.05)
    assert lat.min() > 0 and np.percentile(lat, 99) > 30


def test_an_absent_brain_answers_nothing_and_counts_what_it_missed():
    brain = ReferenceBrain(BrainConfig(absent=True))
    assert brain.decide("123456") is None
    brain.set_absent(False)
    assert brain.decide("123456") is not None
    assert (brain.requests, brain.unanswered) == (2, 1)


def test_the_same_seed_gives_the_same_latencies():
    def run(seed: int) -> list[float]:
        b = ReferenceBrain(BrainConfig(latency_ms=5, jitter_ms=5, seed=seed))
        return [b.decide("1").latency_s for _ in range(20)]

    assert run(1) == run(1) != run(2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sort_chutes": []}, "at least one chute"),
        ({"sort_chutes": [1, 7], "reject_chute": 7}, "reject_chute 7 is also a sort chute"),
        ({"latency_ms": -1}, "greater than or equal to 0"),
        ({"latency": 5}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_brain_config_is_refused_saying_why(data, message):
    with pytest.raises(ValueError, match=message):
        BrainConfig.model_validate(data)


def test_negative_latency_set_at_run_time_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        ReferenceBrain().set_latency(-1)
