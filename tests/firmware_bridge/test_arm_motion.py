"""The arm's MCU messages end to end: McuLink + ArmMotion over a real pty to the simulated
MCU with its arm firmware; the by-name refusal; the codecs under hypothesis."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import IncompatibleFirmwareError, LinkState, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.errors import McuCommandError
from firmware_bridge.mcu.identity import require_commands
from firmware_bridge.mcu.motion import ARM_COMMANDS, ArmMotion, MotionStopped, to_micro
from sim_hardware.mcu.motion import ArmFirmware
from tests.firmware_bridge.mcu.harness import sim_mcu

ARM_IDS = [s for s in m.SPECS if 0x10 <= s.id <= 0x1F or 0x50 <= s.id <= 0x57]
ARM_IDS += [s for s in m.SPECS if 0x88 <= s.id <= 0x8F or s.name in ("get_commands", "commands")]
_VALUES = {
    "B": st.integers(0, 0xFF),
    "H": st.integers(0, 0xFFFF),
    "I": st.integers(0, 0xFFFFFFFF),
    "i": st.integers(-(2**31), 2**31 - 1),
    "Q": st.integers(0, 2**64 - 1),
    "q": st.integers(-(2**63), 2**63 - 1),
    "s": st.text(max_size=50),
}


@st.composite
def _arm_message(draw: st.DrawFn) -> tuple[str, dict]:
    spec = draw(st.sampled_from(ARM_IDS))
    return spec.name, {n: draw(_VALUES[k]) for n, k in spec.fields}


@given(st.lists(_arm_message(), min_size=1, max_size=5))
def test_arm_messages_round_trip(msgs):
    payload = b"".join(m.encode(name, **f) for name, f in msgs)
    assert [(x.name, x.fields) for x in m.decode_payload(payload)] == msgs


@settings(max_examples=300)
@given(st.binary(max_size=80), st.sampled_from(ARM_IDS))
def test_arbitrary_bytes_after_an_arm_id_decode_or_fail_with_the_offset(tail, spec):
    try:
        msgs = m.decode_payload(bytes([spec.id]) + tail)
    except m.MessageError as exc:
        assert str(exc).startswith("byte ")
    else:
        assert msgs[0].name == spec.name


def test_to_micro_pads_and_refuses_what_does_not_fit():
    assert to_micro([1.5, -0.25]) == (1_500_000, -250_000, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        to_micro([3000.0])


@pytest.fixture
def arm_sim(tmp_path):
    """A simulated MCU on a pty with the arm firmware registered; its path and the arm."""
    with sim_mcu(tmp_path) as (sim, path):
        arm = ArmFirmware(boot_inputs=lambda: {2: 1})  # the curtain's OSSD, clear
        assert sim.sim is not None
        sim.call(sim.sim.firmware.register_extension, arm)
        sim.call(sim.sim.firmware.set_input, 2, 1)  # the light curtain is clear
        yield path, arm, sim


def test_a_path_streamed_on_the_mcu_clock_runs_and_ends_at_rest(arm_sim):
    path, arm, _ = arm_sim

    async def main():
        async with McuLink(path) as link:
            assert set(ARM_COMMANDS) <= set(link.identity.commands)  # via get_commands
            motion = ArmMotion(link, 2, stop_ms=100, safety_pin=2, grip_pa=30_000)
            await motion.setup()
            stops: list[MotionStopped] = []
            motion.on_stopped(stops.append)
            start = motion.clock_at(time.monotonic() + 0.05)
            points = [(start + k * 10_000, (k * 1000, -k * 500)) for k in range(1, 21)]
            await motion.queue_path(points, start)
            mid = await motion.state()
            await asyncio.sleep(0.35)
            await motion.set_suction(True)
            vac = await motion.vacuum()
            return mid, stops, await motion.state(), vac, points[-1][0]

    mid, stops, end, vac, last = asyncio.run(main())
    assert mid.state_name in ("waiting", "moving") and mid.queued >= 1
    assert [s.reason_name for s in stops] == ["end of move"] and stops[0].clock == last
    assert stops[0].positions[:2] == (20_000, -10_000)
    assert end.state_name == "idle" and end.positions[:2] == (20_000, -10_000)
    assert vac.valve and vac.pressure_pa == 60_000 and arm.valve


def test_a_late_segment_is_refused_and_the_underrun_halts(arm_sim):
    path, _, _ = arm_sim

    async def main():
        async with McuLink(path) as link:
            motion = ArmMotion(link, 1, stop_ms=50, safety_pin=2)
            await motion.setup()
            stops: list[MotionStopped] = []
            motion.on_stopped(stops.append)
            with pytest.raises(McuCommandError, match="in the past"):
                await motion.queue_segment_nowait(motion.clock_at(time.monotonic()), 10, [5])
            start = motion.clock_at(time.monotonic() + 0.03)
            await motion.queue_path([(start + 20_000, [20_000])], start, end=False)
            await asyncio.sleep(0.2)  # the host "forgets" the next segment
            state = await motion.state()
            with pytest.raises(McuCommandError, match="halted"):
                await motion.queue_segment_nowait(start + 500_000, 10, [0])
            await motion.resume()
            return stops, state, await motion.state()

    stops, halted, resumed = asyncio.run(main())
    assert [s.reason_name for s in stops] == ["queue underrun"]
    assert halted.state_name == "halted" and resumed.state_name == "idle"
    assert stops[0].positions[0] == 20_000 + 25_000  # 1 rad/s, stopped over 50 ms: + v T / 2


def test_firmware_without_the_arm_commands_is_refused_by_name(tmp_path):
    with sim_mcu(tmp_path) as (_, path):

        async def main():
            async with McuLink(path) as link:
                with pytest.raises(IncompatibleFirmwareError) as err:
                    await ArmMotion(link, 4, stop_ms=100).setup()
                return str(err.value)

        text = asyncio.run(main())
    assert f"the MCU on {path} (wolfpack-sim-mcu" in text
    assert "lacks config_motion, queue_joint_segment" in text
    assert text.endswith(": flash the arm firmware")


def test_require_commands_passes_when_all_are_there(tmp_path):
    with sim_mcu(tmp_path) as (_, path):

        async def main():
            async with McuLink(path) as link:
                require_commands(link.identity, ["ping", "schedule_at_count"], path)
                return link.identity

        ident = asyncio.run(main())
    assert "get_commands" not in ident.commands  # its list fits: no paging


def test_after_an_mcu_reset_the_link_resends_the_arm_setup(arm_sim):
    path, arm, _ = arm_sim

    async def main():
        async with McuLink(path) as link:
            motion = ArmMotion(link, 2, stop_ms=100, safety_pin=2, safety_level=0)
            await motion.setup()
            resynced = asyncio.Event()
            link.on_state(lambda change: change.state.up and resynced.set())
            arm.fw.loop.call_soon_threadsafe(arm.fw.reset)
            await asyncio.wait_for(resynced.wait(), 5)
            await asyncio.sleep(0.1)
            start = motion.clock_at(time.monotonic() + 0.05)
            await motion.queue_path([(start + 20_000, [1000, 0])], start)  # configured again
            return await motion.state()

    state = asyncio.run(main())
    assert arm.configured and state.state_name in ("waiting", "moving", "idle")
    assert arm.fw.inputs >> 2 & 1  # the curtain input still reads clear after the reset


def test_after_a_replug_the_arm_commands_are_still_known_and_work(arm_sim):
    path, arm, sim = arm_sim

    async def main():
        async with McuLink(path) as link:
            motion = ArmMotion(link, 2, stop_ms=100, safety_pin=2, safety_level=0)
            await motion.setup()
            resynced = asyncio.Event()
            link.on_state(lambda c: c.state is LinkState.RESYNCED and resynced.set())
            sim.call(sim.sim.unplug, 0.2)
            await asyncio.wait_for(resynced.wait(), 5)
            await motion.set_suction(True)  # refused without sending if the list were short
            return link.identity, await motion.state()

    ident, state = asyncio.run(main())
    assert set(ARM_COMMANDS) <= set(ident.commands) and arm.valve
    assert state.state_name == "idle"
