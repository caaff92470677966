"""Report-by-exception with deadbands."""

from __future__ import annotations

from fleet_link.config import TelemetryGroupConfig
from fleet_link.telemetry import Deadband


def test_deadband_period_and_min_interval():
    d = Deadband(
        {"belt": TelemetryGroupConfig(interval_s=10, min_interval_s=0.5, deadbands={"speed": 0.05})}
    )
    assert d.decide("belt", {"speed": 1.00, "mode": "run"}, 0.0) == "periodic"
    assert d.decide("belt", {"speed": 1.04, "mode": "run"}, 1.0) is None  # inside the band
    assert d.decide("belt", {"speed": 1.06, "mode": "run"}, 1.1) == "change"
    assert d.decide("belt", {"speed": 2.00, "mode": "run"}, 1.2) is None  # min_interval
    assert d.decide("belt", {"speed": 2.00, "mode": "run"}, 1.7) == "change"
    assert d.decide("belt", {"speed": 2.00, "mode": "stop"}, 2.5) == "change"  # non-numeric
    assert d.decide("belt", {"speed": 2.00, "mode": "stop"}, 12.0) is None
    assert d.decide("belt", {"speed": 2.00, "mode": "stop"}, 12.6) == "periodic"


def test_no_band_means_any_change_and_groups_are_independent():
    d = Deadband({})
    assert d.decide("a", {"x": 1}, 0.0) == "periodic"
    assert d.decide("b", {"x": 1}, 0.0) == "periodic"
    assert d.decide("a", {"x": 1}, 1.0) is None
    assert d.decide("a", {"x": 2}, 1.0) == "change"
    assert d.decide("a", {"x": 2, "y": 0}, 2.0) == "change"  # a new field
