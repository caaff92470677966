"""The arm node's motion stream (edge/arm/adapter_mcu.py) against the simulated arm MCU and
its MuJoCo world on a real pty: a core-style move (setpoints in host time) reaches the arm on
the MCU's clock, ends with END (MotionEnded, no underrun), a carry replaces the rest of a
move from an instant without a gap, and ``stop_now`` stops the arm at once."""

from __future__ import annotations

import asyncio
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
from sim_hardware.arm.config import ArmWorldConfig
from tests.system.arm_stream import DT, deg, move, open_stream
from tests.system.arm_stream import arm_cell as shared_arm_cell


@pytest.fixture
def arm_cell(tmp_path: Any) -> Any:
    with shared_arm_cell(tmp_path) as cell:
        yield cell


async def _stream(path: str, cfg: ArmWorldConfig) -> tuple[McuLink, MotionStream, list[Any]]:
    return await open_stream(path, cfg, 0.15)  # slack for a loaded test machine


def test_a_move_reaches_the_arm_on_the_mcu_clock_and_ends_at_rest(arm_cell: Any) -> None:
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    target = (-300.0, 600.0, -500.0)

    async def main() -> tuple[list[Any], dict[str, int]]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(move(1, t0, deg(cfg, *home), deg(cfg, *target), 0.8))
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
    home = deg(cfg, *cfg.home_mm[:3])
    a, b, c = (-300.0, 600.0, -500.0), (200.0, 600.0, -500.0), (-650.0, 200.0, -450.0)

    async def main() -> tuple[list[Any], dict[str, int]]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        pick = move(1, t0, home, deg(cfg, *a), 0.6)
        ride = move(1, pick.trajectory.t_end, deg(cfg, *a), deg(cfg, *b), 1.0)
        joined = Move(
            1, "pick", None, Trajectory(t0, DT, pick.trajectory.q + ride.trajectory.q[1:])
        )
        cut = pick.trajectory.t_end + 0.3
        assert stream.add(joined, replaceable_from=pick.trajectory.t_end)
        await asyncio.sleep(cut - time.monotonic() - 0.25)  # the carry comes lead_ms ahead
        q_cut = joined.trajectory.at(cut)
        carry = move(2, cut, q_cut, deg(cfg, *c), 0.7, kind="carry", replace_from=cut)
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
    home = deg(cfg, *cfg.home_mm[:3])

    async def main() -> tuple[list[Any], float]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(move(1, t0, home, deg(cfg, -300.0, 600.0, -500.0), 1.5))
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
    home = deg(cfg, *cfg.home_mm[:3])

    async def main() -> tuple[list[Any], dict[str, int], Any, float]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        stream.add(move(1, t0, home, deg(cfg, -300.0, 600.0, -500.0), 1.5))
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
        stream.add(move(2, time.monotonic() + 0.03, q_rest, q_up, 0.4))  # 30 ms lead
        again = await halted(2)  # not sent: it would start late
        assert "late" in again.reason
        stream.add(move(3, time.monotonic() + 0.2, again.q, q_up, 0.4))  # planned again
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
    home = deg(cfg, *cfg.home_mm[:3])
    a, b = deg(cfg, -300.0, 600.0, -500.0), deg(cfg, -100.0, 600.0, -450.0)

    async def main() -> tuple[list[Any], dict[str, int], Any]:
        link, stream, facts = await _stream(path, cfg)
        task = asyncio.create_task(stream.run())
        stream.add(move(1, time.monotonic() + 0.1, home, a, 0.6))
        await asyncio.sleep(0.9)
        stream.rest_q = home  # its stop event lost: the stream's rest is stale
        stream._halted_behind_our_back("test: refused, motion halted")
        for _ in range(300):
            if any(isinstance(f, MotionHalted) for f in facts):
                break
            await asyncio.sleep(0.002)
        rest = stream.rest_q
        stream.halted = False  # as after the node's resume
        stream.add(move(2, time.monotonic() + 0.12, a, b, 0.5))
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
        stream.add(move(1, time.monotonic() + 0.1, deg(cfg, *stale), deg(cfg, *target), 0.8))
        await asyncio.sleep(0.6)
        task.cancel()
        await link.close()
        return facts, dict(stream.stats)

    before = sim.call(sim.sim.world.cup_pose)
    facts, stats = asyncio.run(main())
    assert stats["jumps_refused"] == 1 and stats["segments"] == 0
    assert [type(f) for f in facts] == [MotionHalted]
    assert facts[0].q == pytest.approx(deg(cfg, *home), abs=0.01)  # where it rests
    after = sim.call(sim.sim.world.cup_pose)
    assert after[:3] == pytest.approx(before[:3], abs=0.5)  # the arm never moved
