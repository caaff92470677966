"""The arrival process matches its configured rate and mix, reproducibly from its seed."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.world.arrivals import ArrivalProcess
from sim_hardware.world.config import ArrivalConfig


def _draw(config: ArrivalConfig, seed: int, hours: float) -> list:
    return ArrivalProcess(config, seed).until(hours * 3600)


@settings(max_examples=8, deadline=None)
@given(rate=st.floats(1_000, 40_000), seed=st.integers(0, 2**31))
def test_the_count_in_an_hour_matches_the_rate_within_five_sigma(rate, seed):
    parcels = _draw(ArrivalConfig(rate_pph=rate), seed, hours=1.0)
    # Poisson: variance = mean
    assert abs(len(parcels) - rate) <= 5 * math.sqrt(rate)
    times = [p.arrival_s for p in parcels]
    assert times == sorted(times) and all(0 <= t <= 3600 for t in times)


@settings(max_examples=6, deadline=None)
@given(
    unreadable=st.floats(0, 1),
    weights=st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_class_symbology_and_unreadable_shares_match_the_configuration(unreadable, weights, seed):
    base = ArrivalConfig()
    classes = {
        name: spec.model_copy(update={"weight": w})
        for (name, spec), w in zip(base.classes.items(), weights, strict=True)
    }
    config = ArrivalConfig(rate_pph=36_000, classes=classes, unreadable_fraction=unreadable)
    parcels = _draw(config, seed, hours=0.25)  # ~9,000 parcels
    n = len(parcels)

    def close(observed: int, p: float) -> bool:  # binomial, 5 sigma
        return abs(observed - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1

    total = sum(weights)
    by_class = Counter(p.cls for p in parcels)
    for name, w in zip(classes, weights, strict=True):
        assert close(by_class[name], w / total), (name, by_class)
    shares = config.symbologies
    by_format = Counter(p.label_format for p in parcels)
    for fmt, share in shares.items():
        assert close(by_format[fmt], share / sum(shares.values())), (fmt, by_format)
    assert close(sum(not p.label_legible for p in parcels), unreadable)


def test_sizes_stay_inside_their_class_ranges_and_labels_look_like_the_cameras():
    config = ArrivalConfig(rate_pph=36_000)
    for p in _draw(config, 5, hours=0.05):
        spec = config.classes[p.cls]
        assert spec.length_mm.lo <= p.length_mm <= spec.length_mm.hi
        assert spec.width_mm.lo <= p.width_mm <= spec.width_mm.hi
        assert spec.height_mm.lo <= p.height_mm <= spec.height_mm.hi
        if p.label_format == "Code128":
            assert len(p.label_text) == 6 and p.label_text.isdigit()
        else:
            assert p.label_text.startswith("WP") and len(p.label_text) == 12


def test_the_same_seed_gives_the_same_parcels_and_another_seed_others():
    config = ArrivalConfig()
    assert _draw(config, 11, 0.1) == _draw(config, 11, 0.1)
    assert _draw(config, 11, 0.1) != _draw(config, 12, 0.1)


def test_asking_in_small_steps_gives_the_same_stream_as_one_big_step():
    config = ArrivalConfig(rate_pph=20_000)
    stepped = ArrivalProcess(config, 4)
    parcels = [p for k in range(1, 601) for p in stepped.until(k * 0.1)]
    assert parcels == ArrivalProcess(config, 4).until(60.0)


_BACKWARD = {
    "weight": 1,
    "length_mm": {"lo": 500, "hi": 100},
    "width_mm": {"lo": 1, "hi": 2},
    "height_mm": {"lo": 1, "hi": 2},
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate_pph": 0}, "greater than 0"),
        ({"unreadable_fraction": 1.5}, "less than or equal to 1"),
        ({"symbologies": {}}, "symbologies need at least one format"),
        ({"classes": {}}, "at least one parcel class"),
        ({"classes": {"box": _BACKWARD}}, r"hi \(100.0\) must be >= lo \(500.0\)"),
        ({"rate": 10}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_arrival_config_is_refused_saying_why(data, message):
    with pytest.raises(ValueError, match=message):
        ArrivalConfig.model_validate(data)
