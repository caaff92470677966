"""RTO estimation, clock regression and firmware compatibility checks."""

from __future__ import annotations

import random

import pytest

from firmware_bridge.mcu.clocksync import ClockSync
from firmware_bridge.mcu.errors import IncompatibleFirmwareError
from firmware_bridge.mcu.identity import PROTOCOL_VERSION, FirmwareIdentity, check_compatible
from firmware_bridge.mcu.rtt import RttEstimator


def test_rto_follows_jacobson_karels():
    est = RttEstimator(initial_rto=1.0, min_rto=0.0, max_rto=10.0, granularity=0.0)
    est.sample(0.1)
    assert est.srtt == pytest.approx(0.1) and est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.1 + 4 * 0.05)
    est.sample(0.2)
    assert est.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1)
    assert est.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)
    before = est.rto
    est.backoff()
    assert est.rto == pytest.approx(2 * before)


def test_rto_is_clamped():
    est = RttEstimator(min_rto=0.03, max_rto=0.5)
    est.sample(0.0001)
    assert est.rto == 0.03
    for _ in range(10):
        est.backoff()
    assert est.rto == 0.5


def test_clock_sync_recovers_drift_and_offset_from_noisy_samples():
    rng = random.Random(3)
    freq, drift_ppm, boot = 1_000_000, 55.0, 100.0
    sync = ClockSync(nominal_freq=freq)
    for i in range(32):
        sent = 100.5 + i * 0.5
        rtt = 0.0002 + rng.random() * 0.0003
        read_at = sent + rtt * rng.random()
        clock = int((read_at - boot) * freq * (1 + drift_ppm * 1e-6))
        sync.add(sent, sent + rtt, clock)
    assert sync.drift_ppm == pytest.approx(drift_ppm, abs=5)
    t = 120.0
    truth = (t - boot) * freq * (1 + drift_ppm * 1e-6)
    assert abs(sync.clock_at(t) - truth) < 300  # 300 us
    assert sync.uncertainty_s < 0.0005
    assert sync.host_time_at(sync.clock_at(t)) == pytest.approx(t, abs=1e-5)


def _ident(**over) -> FirmwareIdentity:
    base = dict(
        firmware="fw", version="1", protocol=PROTOCOL_VERSION, rx_window=4, max_payload=64,
        clock_freq=1000, outputs=1, inputs=1, encoders=1,
        commands=("identify", "ping", "get_clock", "heartbeat", "set_watchdog",
                  "config_output", "set_output"),
    )  # fmt: skip
    base.update(over)
    return FirmwareIdentity(**base)


def test_compatible_firmware_passes():
    check_compatible(_ident())


def test_incompatible_firmware_is_refused_with_every_difference():
    with pytest.raises(IncompatibleFirmwareError) as err:
        check_compatible(_ident(protocol=9, commands=("identify",)), port="/dev/x")
    text = str(err.value)
    assert "/dev/x" in text and "protocol version 9" in text
    assert f"this host speaks {PROTOCOL_VERSION}" in text
    assert "set_output" in text and "heartbeat" in text
