"""The vehicle drive's MCU messages end to end: McuLink + VehicleDrive over a real pty to the
simulated MCU with its drive firmware (setpoints on the MCU clock, encoder counts, underrun,
protective field, e-stop, watchdog); the by-name refusal; the codecs under hypothesis."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import IncompatibleFirmwareError, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.drive import (
    DRIVE_COMMANDS,
    DriveStopped,
    SafetyChanged,
    VehicleDrive,
    WheelReport,
    to_um_s,
)
from firmware_bridge.mcu.errors import McuCommandError
from sim_hardware.mcu.drive import DriveFirmware
from tests.firmware_bridge.mcu.harness import sim_mcu

DRIVE_IDS = [s for s in m.SPECS if 0x20 <= s.id <= 0x2F or 0x58 <= s.id <= 0x5F]
DRIVE_IDS += [s for s in m.SPECS if 0x90 <= s.id <= 0x97]
_VALUES = {
    "B": st.integers(0, 0xFF),
    "H": st.integers(0, 0xFFFF),
    "I": st.integers(0, 0xFFFFFFFF),
    "i": st.integers(-(2**31), 2**31 - 1),
    "Q": st.integers(0, 2**64 - 1),
    "q": st.integers(-(2**63), 2**63 - 1),
}
COUNTS_PER_M = 20_000
FIELD_PIN, ESTOP_PIN = 1, 0


def test_the_drive_owns_its_reserved_ids():
    names = {s.name for s in DRIVE_IDS}
    assert set(DRIVE_COMMANDS) <= names
    assert {
        "drive_state",
        "wheel_report",
        "drive_stopped",
        "safety_changed",
        "battery_report",
    } <= names
    assert len(DRIVE_IDS) == 12


@st.composite
def _drive_message(draw: st.DrawFn) -> tuple[str, dict]:
    spec = draw(st.sampled_from(DRIVE_IDS))
    return spec.name, {n: draw(_VALUES[k]) for n, k in spec.fields}


@given(st.lists(_drive_message(), min_size=1, max_size=5))
def test_drive_messages_round_trip(msgs):
    payload = b"".join(m.encode(name, **f) for name, f in msgs)
    assert [(x.name, x.fields) for x in m.decode_payload(payload)] == msgs


@settings(max_examples=300)
@given(st.binary(max_size=60), st.sampled_from(DRIVE_IDS))
def test_arbitrary_bytes_after_a_drive_id_decode_or_fail_with_the_offset(tail, spec):
    try:
        msgs = m.decode_payload(bytes([spec.id]) + tail)
    except m.MessageError as exc:
        assert str(exc).startswith("byte ")
    else:
        assert msgs[0].name == spec.name


def test_to_um_s_refuses_what_does_not_fit():
    assert to_um_s(-1.25) == -1_250_000
    with pytest.raises(ValueError, match="does not fit"):
        to_um_s(3000.0)


@pytest.fixture
def drive_sim(tmp_path):
    """A simulated MCU on a pty with the drive firmware; e-stop and field inputs healthy
    (both active low: 1 = safe)."""
    with sim_mcu(tmp_path, watchdog_ms=200) as (sim, path):
        drive = DriveFirmware()
        assert sim.sim is not None
        sim.call(sim.sim.firmware.register_extension, drive)
        sim.call(sim.sim.firmware.set_input, FIELD_PIN, 1)
        sim.call(sim.sim.firmware.set_input, ESTOP_PIN, 1)
        yield sim, path, drive


def _drive(link: McuLink) -> VehicleDrive:
    return VehicleDrive(
        link, counts_per_m=COUNTS_PER_M, max_wheel_speed=2.0, max_wheel_accel=4.0,
        stop_decel=5.0, field_pin=FIELD_PIN, field_level=0, estop_pin=ESTOP_PIN,
        estop_level=0, report_ms=20,
    )  # fmt: skip


LEAD_S = 0.2  # setpoints start this far ahead: a loaded CI machine stalls the sim's thread
HOLD_S = 0.25


async def _stream(
    drive: VehicleDrive, t0: float, speeds: list[tuple[float, float]], hold_s: float = HOLD_S
) -> None:
    """One setpoint per 20 ms from ``t0``, each held ``hold_s`` (longer than the period:
    a setpoint late by less than that is no underrun)."""
    futs = [
        drive.queue_setpoint_nowait(t0 + 0.02 * k, left, right, hold_s)
        for k, (left, right) in enumerate(speeds)
    ]
    await asyncio.gather(*futs)


def test_setpoints_on_the_mcu_clock_turn_the_wheels_and_the_encoders_count(drive_sim):
    _, path, fw = drive_sim

    async def main():
        async with McuLink(path) as link:
            drive = _drive(link)
            await drive.setup()
            reports: list[WheelReport] = []
            stops: list[DriveStopped] = []
            drive.on_report(reports.append)
            drive.on_stopped(stops.append)
            t0 = time.monotonic() + LEAD_S
            # 0.4 s at 0.5 m/s left, 0.25 m/s right, then standing (zero setpoints)
            await _stream(drive, t0, [(0.5, 0.25)] * 20 + [(0.0, 0.0)] * 3)
            await asyncio.sleep(t0 + 0.8 - time.monotonic())
            return await drive.state(), reports, stops

    state, reports, stops = asyncio.run(main())
    assert state.state_name == "idle" and stops == []  # ran out at zero speed: no underrun
    # the ramps at 4 m/s2 cost 0.5 * v^2 / a at each end: exact travel from the core
    left_m, right_m = state.left_count / COUNTS_PER_M, state.right_count / COUNTS_PER_M
    assert left_m == pytest.approx(0.5 * 0.4, abs=0.002)
    assert right_m == pytest.approx(0.25 * 0.4, abs=0.002)
    assert reports and max(r.left for r in reports) == pytest.approx(0.5)
    counts = [r.left_count for r in reports]
    assert counts == sorted(counts)
    assert fw.travel_at()[0] == pytest.approx(left_m, abs=1e-4)


def test_an_underrun_stops_and_halts_and_late_setpoints_are_refused(drive_sim):
    path = drive_sim[1]

    async def main():
        async with McuLink(path) as link:
            drive = _drive(link)
            await drive.setup()
            stops: list[DriveStopped] = []
            drive.on_stopped(stops.append)
            with pytest.raises(McuCommandError, match="in the past"):
                await drive.queue_setpoint(time.monotonic() - 0.01, 0.1, 0.1, 0.05)
            t0 = time.monotonic() + LEAD_S
            await _stream(drive, t0, [(1.0, 1.0)] * 5, 0.06)  # then the host "forgets"
            await asyncio.sleep(t0 + 0.4 - time.monotonic())
            halted = await drive.state()
            with pytest.raises(McuCommandError, match="halted"):
                await drive.queue_setpoint(time.monotonic() + LEAD_S, 0.1, 0.1, 0.05)
            await drive.resume()
            await drive.queue_setpoint(time.monotonic() + LEAD_S, 0.1, 0.1, 0.05)
            return stops, halted

    stops, halted = asyncio.run(main())
    assert [s.reason_name for s in stops] == ["setpoint underrun"]
    # the last setpoint (t0 + 80 ms) held 60 ms: the stop began at t0 + 140 ms
    assert halted.state_name == "halted" and halted.left == 0.0
    # at most 0.14 s at up to 0.56 m/s (4 m/s2), then 5 m/s2 to zero: well under 0.14 m
    assert halted.left_count / COUNTS_PER_M < 0.14


def test_the_protective_field_stops_the_wheels_without_the_host(drive_sim):
    sim, path, _ = drive_sim

    async def main():
        async with McuLink(path) as link:
            drive = _drive(link)
            await drive.setup()
            stops: list[DriveStopped] = []
            changes: list[SafetyChanged] = []
            drive.on_stopped(stops.append)
            drive.on_safety(changes.append)
            t0 = time.monotonic() + LEAD_S
            await _stream(drive, t0, [(0.4, 0.4)] * 30)  # the queue holds 32
            await asyncio.sleep(t0 + 0.3 - time.monotonic())
            assert sim.sim is not None
            sim.call(sim.sim.firmware.set_input, FIELD_PIN, 0)  # a person in the field
            await asyncio.sleep(0.2)
            violated = await drive.state()
            with pytest.raises(McuCommandError, match="protective field violated"):
                await drive.resume()
            sim.call(sim.sim.firmware.set_input, FIELD_PIN, 1)
            await asyncio.sleep(0.05)
            await drive.resume()
            after = await drive.state()
            sim.call(sim.sim.firmware.set_input, ESTOP_PIN, 0)  # the e-stop pressed
            await asyncio.sleep(0.05)
            with pytest.raises(McuCommandError, match="e-stop open"):
                await drive.resume()
            return stops, changes, violated, after

    stops, changes, violated, after = asyncio.run(main())
    assert [s.reason_name for s in stops] == ["protective field", "e-stop"]
    assert [c.field_violated for c in changes] == [True, False, False]
    assert changes[-1].estop
    assert violated.state_name == "halted" and violated.field_violated
    assert violated.left == 0.0 and violated.right == 0.0
    # from 0.4 m/s at 5 m/s2: 16 mm after the edge
    travel_at_edge = stops[0].left_count / COUNTS_PER_M
    assert violated.left_count / COUNTS_PER_M - travel_at_edge == pytest.approx(0.016, abs=0.002)
    assert after.state_name == "idle" and not after.field_violated


def test_the_watchdog_stops_the_wheels_when_the_host_goes_silent(drive_sim):
    sim, path, fw = drive_sim

    async def main():
        async with McuLink(path, watchdog_ms=200) as link:
            drive = _drive(link)
            await drive.setup()
            t0 = time.monotonic() + LEAD_S
            # long holds: only the watchdog can stop this
            await asyncio.gather(*[
                drive.queue_setpoint_nowait(t0 + 0.2 * k, 0.3, 0.3, 1.0) for k in range(8)
            ])  # fmt: skip
        # the link is closed: the host is silent

    asyncio.run(main())
    time.sleep(0.6)
    assert sim.sim is not None
    assert sim.sim.firmware.watchdog_trips
    assert fw.speeds_at() == (0.0, 0.0)
    assert fw.core.halted and fw.core.reason == m.DRIVE_STOP_WATCHDOG


def test_firmware_without_the_drive_is_refused_by_name(tmp_path):
    with sim_mcu(tmp_path) as (_, path):

        async def main():
            async with McuLink(path) as link:
                await _drive(link).setup()

        with pytest.raises(IncompatibleFirmwareError, match=r"lacks config_drive.*drive firmware"):
            asyncio.run(main())
