"""The arm node's motion stream (edge/arm/adapter_mcu.py) against the simulated arm MCU and
its MuJoCo world on a real pty: a core-style move (setpoints in host time) reaches the arm on
the MCU's clock, ends with END (MotionEnded, no underrun), a carry replaces the rest of a
move from an instant without a gap, and ``stop_now`` stops the arm at once."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.adapter_mcu import MotionStream, from_protocol, to_protocol
from edge.arm.events import MotionEnded, MotionHalted, Move
from edge.arm.trajectory import Trajectory
from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu.motion import ArmMotion
from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.mcu import ArmSimThread
from sim_hardware.mcu import SimMcuOptions
from sim_hardware.mcu.device import request_realtime

DT = 0.008
HOST_RT_PRIORITY = 5  # the node's (edge/cli/sim_arm.py, ArmSimOptions.node_rt_priority)


@pytest.fixture
def arm_cell(tmp_path: Any) -> Any:
    """The simulated arm MCU and world in a thread, on a pty. As `wolfpack sim --machine arm`
    runs them (the node's motion stream with FIFO real-time priority 5, as a board's unit
    gives it; the MCU 10, a CPU of its own), the test's thread (the stream, the link) and
    the sim's ask for the same where permitted: at nice 19 under a load of 10-14 they were
    starved for 50 ms to seconds (46-58 segments refused as late, an identify unanswered in
    3 s, a stop's event heard 205 ms after it), the host's lateness and not the stream's."""
    cfg = ArmWorldConfig()
    path = str(tmp_path / "arm-mcu")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the sim shares this process with the host link
    host_rt = request_realtime(HOST_RT_PRIORITY)  # this (the test's) thread only
    sim = ArmSimThread(
        cfg, SimMcuOptions(link=path, inputs=16, seed=1, watchdog_ms=500), rt_priority=10
    )
    try:
        yield sim.start(), path, cfg
    finally:
        sim.stop()
        sys.setswitchinterval(interval)
        if host_rt:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def _deg(cfg: ArmWorldConfig, x: float, y: float, z: float) -> tuple[float, float, float, float]:
    q = cfg.ik(x, y, z, 0.0)
    return (math.degrees(q[0]), math.degrees(q[1]), q[2] * 1000, math.degrees(q[3]))


def _move(
    move_id: int,
    t0: float,
    a: Any,
    b: Any,
    seconds: float,
    kind: str = "pick",
    replace_from: float | None = None,
) -> Move:
    n = round(seconds / DT)
    q = []
    for k in range(n + 1):
        s = k / n
        s = s * s * s * (10 - 15 * s + 6 * s * s)
        q.append(tuple(pa + (pb - pa) * s for pa, pb in zip(a, b, strict=True)))
    return Move(move_id, kind, None, Trajectory(t0, DT, tuple(q)), replace_from)  # type: ignore[arg-type]


async def _stream(path: str, cfg: ArmWorldConfig) -> tuple[McuLink, MotionStream, list[Any]]:
    link = McuLink(path, watchdog_ms=500)
    await link.connect()
    motion = ArmMotion(
        link,
        4,
        stop_ms=100,
        safety_pin=cfg.curtain_input,
        safety_level=cfg.curtain_broken_level,
        grip_pa=40_000,
    )
    await motion.setup()
    for _ in range(50):  # the clock sync is ready after a few samples
        if link.clock.ready:
            break
        await asyncio.sleep(0.02)
    facts: list[Any] = []
    stream = MotionStream(link, motion, 0.15, facts.append)  # slack for a loaded test machine
    link.on_event(stream.on_event)
    return link, stream, facts


def test_a_move_reaches_the_arm_on_the_mcu_clock_and_ends_at_rest(arm_cell: Any) -> None:
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    target = (-300.0, 600.0, -500.0)

    async def main() -> tuple[list[Any], dict[str, int]]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(_move(1, t0, _deg(cfg, *home), _deg(cfg, *target), 0.8))
        await asyncio.sleep(1.4)
        task.cancel()
        await link.close()
        return facts, dict(stream.stats)

    facts, stats = asyncio.run(main())
    assert stats["refused"] == 0 and stats["segments"] >= 90
    assert [type(f) for f in facts] == [MotionEnded] and facts[0].move_id == 1
    x, y, z, _ = sim.call(sim.sim.world.cup_pose)
    assert (x, y, z) == pytest.approx(target, abs=3.0)  # the world's cup where it was sent


def test_a_carry_replaces_the_rest_of_a_pick_without_a_gap(arm_cell: Any) -> None:
    sim, path, cfg = arm_cell
    home = _deg(cfg, *cfg.home_mm[:3])
    a, b, c = (-300.0, 600.0, -500.0), (200.0, 600.0, -500.0), (-650.0, 200.0, -450.0)

    async def main() -> tuple[list[Any], dict[str, int]]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        pick = _move(1, t0, home, _deg(cfg, *a), 0.6)
        ride = _move(1, pick.trajectory.t_end, _deg(cfg, *a), _deg(cfg, *b), 1.0)
        joined = Move(
            1, "pick", None, Trajectory(t0, DT, pick.trajectory.q + ride.trajectory.q[1:])
        )
        cut = pick.trajectory.t_end + 0.3
        assert stream.add(joined, replaceable_from=pick.trajectory.t_end)
        await asyncio.sleep(cut - time.monotonic() - 0.25)  # the carry comes lead_ms ahead
        q_cut = joined.trajectory.at(cut)
        carry = _move(2, cut, q_cut, _deg(cfg, *c), 0.7, kind="carry", replace_from=cut)
        assert stream.add(carry)
        await asyncio.sleep(cut + 0.7 + 0.3 - time.monotonic())
        task.cancel()
        await link.close()
        return facts, dict(stream.stats)

    facts, stats = asyncio.run(main())
    assert stats["refused"] == 0  # contiguous: the MCU took every segment
    assert [type(f) for f in facts] == [MotionEnded] and facts[0].move_id == 2
    x, y, z, _ = sim.call(sim.sim.world.cup_pose)
    assert (x, y, z) == pytest.approx(c, abs=3.0)


def test_stop_now_stops_the_arm_and_drops_what_was_waiting(arm_cell: Any) -> None:
    sim, path, cfg = arm_cell
    home = _deg(cfg, *cfg.home_mm[:3])

    async def main() -> tuple[list[Any], float]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(_move(1, t0, home, _deg(cfg, -300.0, 600.0, -500.0), 1.5))
        await asyncio.sleep(0.6)
        stop_t = time.monotonic()
        stream.stop_now("test")
        assert not stream.points
        await asyncio.sleep(0.5)
        task.cancel()
        await link.close()
        return facts, stop_t

    facts, stop_t = asyncio.run(main())
    assert facts and isinstance(facts[0], MotionHalted) and facts[0].reason == "stop command"
    assert facts[0].t - stop_t < 0.1 + 0.05  # at rest within stop_ms (+ the link)
    q1 = sim.call(sim.sim.world.joints)
    time.sleep(0.2)
    assert np.max(np.abs(sim.call(sim.sim.world.joints) - q1)) < 1e-3  # still


def test_a_move_planned_while_a_stop_runs_is_planned_again_and_leaves_from_rest(
    arm_cell: Any,
) -> None:
    """The MCU reports a stop as it begins (with where it will rest); a core that plans
    from there at once hands the stream a move while the stop still runs. The MCU refuses
    segments until the arm is at rest; the stream used to send them anyway, and the first
    one accepted after the stop was chained from rest to a point well into the move (the
    quill's setpoint jumped at 10-20 m/s: held parcels peeled off the cup). Now nothing goes
    out before the stop's end, a move that could only start well after its plan's time is
    not squeezed (the core hears ``MotionHalted`` and plans again), and the move planned
    again runs whole from rest, its setpoints never faster than its own pace."""
    sim, path, cfg = arm_cell
    home = _deg(cfg, *cfg.home_mm[:3])

    async def main() -> tuple[list[Any], dict[str, int], Any, float]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(_move(1, t0, home, _deg(cfg, -300.0, 600.0, -500.0), 1.5))
        await asyncio.sleep(0.6)
        stream.stop_now("test")

        async def halted(n: int) -> MotionHalted:
            for _ in range(500):
                hs = [f for f in facts if isinstance(f, MotionHalted)]
                if len(hs) >= n:
                    return hs[n - 1]
                await asyncio.sleep(0.002)
            raise AssertionError(f"no MotionHalted #{n}: {facts}")

        first = await halted(1)  # the stop's event, sent as it begins
        assert time.monotonic() < stream.rest_until  # the stop still runs
        q_rest = first.q
        q_up = (q_rest[0], q_rest[1], q_rest[2] - 150.0, q_rest[3])  # down: j3 tops at -330
        stream.add(_move(2, time.monotonic() + 0.03, q_rest, q_up, 0.4))  # 30 ms lead
        again = await halted(2)  # not sent: it would start late
        assert "late" in again.reason
        stream.add(_move(3, time.monotonic() + 0.2, again.q, q_up, 0.4))  # planned again
        end = time.monotonic() + 0.9
        fastest = 0.0  # the world's setpoint speed of the quill (m/s, its last ~50 ms)
        while time.monotonic() < end:
            sp = await asyncio.to_thread(sim.call, lambda: float(sim.sim.world._ref_speed[2]))
            fastest = max(fastest, sp)
            await asyncio.sleep(0.04)  # a jump's trace decays over ~50 ms: still seen
        task.cancel()
        await link.close()
        return facts, dict(stream.stats), q_up, fastest

    facts, stats, q_up, fastest = asyncio.run(main())
    assert stats["chains_broken"] == 0 and stats["late_refused"] == 1
    assert fastest < 1.0  # m/s: the move's own peak is 0.70 (150 mm in 0.4 s, quintic)
    assert any(isinstance(f, MotionEnded) and f.move_id == 3 for f in facts)
    q = sim.call(sim.sim.world.joints)
    assert abs(q[2] * 1000 - q_up[2]) < 1.0  # the quill went all the way, from rest


def test_a_halt_heard_only_from_a_refusal_moves_the_streams_rest_to_where_the_arm_is(
    arm_cell: Any,
) -> None:
    """The MCU halted (an underrun) and the stream heard it only from a refused segment (its
    stop event not seen): the stream reads where the arm rests and leaves from there. With
    the rest it had before (home), it refused the core's next plan, made from where the arm
    really was, as a jump, and told the core the arm was at home (a box held on the belt was
    never carried, 2026-12-02)."""
    _sim, path, cfg = arm_cell
    home = _deg(cfg, *cfg.home_mm[:3])
    a, b = _deg(cfg, -300.0, 600.0, -500.0), _deg(cfg, -100.0, 600.0, -450.0)

    async def main() -> tuple[list[Any], dict[str, int], Any]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        stream.add(_move(1, time.monotonic() + 0.1, home, a, 0.6))
        await asyncio.sleep(0.9)
        stream.rest_q = home  # its stop event lost: the stream's rest is stale
        stream._halted_behind_our_back("test: refused, motion halted")
        for _ in range(300):
            if any(isinstance(f, MotionHalted) for f in facts):
                break
            await asyncio.sleep(0.002)
        rest = stream.rest_q
        stream.halted = False  # as after the node's resume
        stream.add(_move(2, time.monotonic() + 0.12, a, b, 0.5))
        await asyncio.sleep(0.9)
        task.cancel()
        await link.close()
        return facts, dict(stream.stats), rest

    facts, stats, rest = asyncio.run(main())
    halted = next(f for f in facts if isinstance(f, MotionHalted))
    assert np.max(np.abs(np.subtract(halted.q, a))) < 0.01  # where the arm is, not home
    assert np.max(np.abs(np.subtract(rest, a))) < 0.01
    assert stats["jumps_refused"] == 0
    assert any(isinstance(f, MotionEnded) and f.move_id == 2 for f in facts)


@given(
    st.tuples(
        st.floats(-170, 170), st.floats(-150, 150), st.floats(-700, -100), st.floats(-360, 360)
    )
)
@settings(max_examples=200)
def test_joint_units_round_trip_within_a_micro_unit(q: tuple[float, float, float, float]) -> None:
    back = from_protocol(to_protocol(q))
    assert back[0] == pytest.approx(q[0], abs=1e-4) and back[1] == pytest.approx(q[1], abs=1e-4)
    assert back[2] == pytest.approx(q[2], abs=1e-3) and back[3] == pytest.approx(q[3], abs=1e-4)


def test_a_plan_from_where_the_arm_is_not_is_refused_before_any_segment_moves_it(
    arm_cell: Any,
) -> None:
    """A move planned from a stale position (its first point 150 mm from where the MCU's
    setpoints rest) would make the MCU jump there in one 8 ms segment: the stream sends
    none of it, and the core hears where the arm rests (MotionHalted) to plan again."""
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    stale = (home[0] + 150.0, home[1], home[2])
    target = (-300.0, 600.0, -500.0)

    async def main() -> tuple[list[Any], dict[str, int]]:
        link, stream, facts = await _stream(path, cfg)
        stream.vel_limits = (300.0, 450.0, 1500.0, 1500.0)  # configs/sim-arm.yaml's joints
        stream.rest_q = from_protocol((await stream.arm.state()).positions)
        task = asyncio.create_task(stream.run())
        stream.add(_move(1, time.monotonic() + 0.1, _deg(cfg, *stale), _deg(cfg, *target), 0.8))
        await asyncio.sleep(0.6)
        task.cancel()
        await link.close()
        return facts, dict(stream.stats)

    before = sim.call(sim.sim.world.cup_pose)
    facts, stats = asyncio.run(main())
    assert stats["jumps_refused"] == 1 and stats["segments"] == 0
    assert [type(f) for f in facts] == [MotionHalted]
    assert facts[0].q == pytest.approx(_deg(cfg, *home), abs=0.01)  # where it rests
    after = sim.call(sim.sim.world.cup_pose)
    assert after[:3] == pytest.approx(before[:3], abs=0.5)  # the arm never moved
