"""The arm world behind its simulated MCU on a real pty, driven by the host's ArmMotion: the
servos follow the streamed segments, the light curtain and the watchdog stop the arm."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import numpy as np
import pytest

from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.motion import ArmMotion, MotionStopped
from tests.system.arm_stream import arm_cell as shared_arm_cell

STOP_MS = 100


@pytest.fixture
def arm_cell(tmp_path):
    """The shared arm cell (tests/system/arm_stream.py: real-time threads where permitted, the
    collector frozen; under load 12+ without them these tests failed on the host's lateness),
    with the 200 ms watchdog these tests trip."""
    with shared_arm_cell(tmp_path, watchdog_ms=200) as cell:
        yield cell


def _micro(q) -> tuple[int, ...]:
    return tuple(round(v * 1e6) for v in q)


def _path(cfg, motion, start_clock: int, a, b, seconds: float, dt: float = 0.01):
    """Segments of a smooth straight move from cup pose ``a`` to ``b`` (x, y, z mm)."""
    n = round(seconds / dt)
    points = []
    for k in range(1, n + 1):
        s = k / n
        s = s * s * s * (10 - 15 * s + 6 * s * s)
        p = [pa + (pb - pa) * s for pa, pb in zip(a, b, strict=True)]
        points.append((start_clock + round(k * dt * 1e6), _micro(cfg.ik(*p, 0.0))))
    return points


async def _connect(path: str, cfg) -> tuple[McuLink, ArmMotion]:
    link = McuLink(path, watchdog_ms=200)
    await link.connect()
    motion = ArmMotion(
        link, 4, stop_ms=STOP_MS, safety_pin=cfg.curtain_input,
        safety_level=cfg.curtain_broken_level, grip_pa=40_000,
    )  # fmt: skip
    await motion.setup()
    return link, motion


def test_servos_follow_the_streamed_segments_and_the_belt_is_the_encoder(arm_cell):
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    target = (300.0, 650.0, -500.0)

    async def main():
        link, motion = await _connect(path, cfg)
        try:
            stops: list[MotionStopped] = []
            motion.on_stopped(stops.append)
            count0, _ = await link.read_encoder()
            t0 = time.monotonic()
            start = motion.clock_at(t0 + 0.05)
            await motion.queue_path(_path(cfg, motion, start, home, target, 0.5), start)
            await asyncio.sleep(0.75)
            count1, _ = await link.read_encoder()
            return stops, (count1 - count0) / (time.monotonic() - t0)
        finally:
            await link.close()

    stops, counts_per_s = asyncio.run(main())
    assert [s.reason for s in stops] == [m.STOP_END_OF_MOVE]
    q = sim.call(lambda: sim.sim.world.joints())
    assert np.allclose(q, cfg.ik(*target, 0.0), atol=1e-3)
    x, y, z, _ = sim.call(lambda: sim.sim.world.cup_pose())
    assert (x, y, z) == pytest.approx(target, abs=1.5)
    assert counts_per_s == pytest.approx(cfg.belt_speed_mm_s * cfg.counts_per_mm, rel=0.05)


def test_a_broken_light_curtain_stops_the_arm_within_the_stop_time(arm_cell):
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    far = (-500.0, 600.0, -600.0)

    async def main():
        link, motion = await _connect(path, cfg)
        try:
            stops: list[MotionStopped] = []
            motion.on_stopped(stops.append)
            start = motion.clock_at(time.monotonic() + 0.05)
            await motion.queue_path(_path(cfg, motion, start, home, far, 1.0), start)
            await asyncio.sleep(0.45)  # mid-move, at speed
            broken_at = time.monotonic()
            sim.call(lambda: sim.sim.world.set_curtain(True))
            trace = []
            while time.monotonic() - broken_at < 0.35:
                trace.append((time.monotonic() - broken_at, sim.call(sim.sim.world.joints)))
                await asyncio.sleep(0.01)
            state = await motion.state()
            return stops, trace, state
        finally:
            await link.close()

    stops, trace, state = asyncio.run(main())
    assert [s.reason_name for s in stops] == ["safety input"]
    assert state.state_name == "halted"
    moving = [np.abs(b[1] - a[1]).max() / (b[0] - a[0]) for a, b in pairwise(trace)]
    assert moving[0] > 0.1  # it was moving when the curtain broke
    at_rest = [dt for (dt, _), v in zip(trace[1:], moving, strict=True) if v > 2e-3]
    assert max(at_rest) <= STOP_MS / 1000 + 0.03  # still within the stop time (+ sampling)


def test_host_silence_trips_the_watchdog_and_the_arm_stops(arm_cell):
    sim, path, cfg = arm_cell
    home = cfg.home_mm[:3]
    far = (-500.0, 600.0, -600.0)

    async def main():
        link, motion = await _connect(path, cfg)
        start = motion.clock_at(time.monotonic() + 0.05)
        points = _path(cfg, motion, start, home, far, 1.2, dt=0.025)  # fits the queue
        await motion.queue_path(points, start)
        await asyncio.sleep(0.2)
        link.suspend_heartbeats = True  # the node hangs: nothing more reaches the MCU
        await asyncio.sleep(0.6)
        await link.close()

    asyncio.run(main())
    stops = sim.call(lambda: list(sim.sim.arm.stops))
    assert [s.reason for s in stops] == [m.STOP_WATCHDOG]
    q = sim.call(sim.sim.world.joints)
    assert not np.allclose(q, cfg.ik(*far, 0.0), atol=0.05)  # it never got there
    assert sim.call(lambda: sim.sim.arm.queue.halted)


def _smooth(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * s * (10 - 15 * s + 6 * s * s)


def test_a_pick_streamed_over_the_pty_lands_the_parcel_in_its_chute(arm_cell):
    """The whole chain a node uses: segments on the MCU clock, the valve, grip_changed from the
    world's vacuum, the place, and the chute's entry sensor as an input edge on the host."""
    sim, path, cfg = arm_cell
    from sim_hardware.world.parcels import Parcel

    speed = cfg.belt_speed_mm_s
    top = cfg.belt_surface_z_mm + 150
    y = cfg.belt_centre_y_mm
    c1 = cfg.destination("c1")
    assert c1 is not None

    async def main():
        link, motion = await _connect(path, cfg)
        try:
            grips, edges, stops = [], [], []
            motion.on_grip(lambda g, pa, clock: grips.append(g))
            motion.on_stopped(stops.append)
            link.on_event(lambda msg: msg.name == "input_edge" and edges.append(msg["pin"]))
            parcel = Parcel(1, "box", 300, 200, 150, "Code128", "DE-1", True, 0.0)
            sim.call(lambda: sim.sim.world.put_parcel(parcel, 2.0, u_mm=-1200.0))
            put_at = sim.sim.epoch + sim.call(lambda: sim.sim.world.t)
            t0 = time.monotonic() + 0.1

            def x_parcel(t: float) -> float:
                return -1200.0 + speed * (t - put_at)

            def cart(t: float) -> tuple[float, float, float]:
                tau = t - t0
                if tau < 0.3:
                    s = _smooth(tau / 0.3)
                    a, b = cfg.home_mm[:3], (x_parcel(t0 + 0.3), y, top + 50)
                    return tuple(p + (q - p) * s for p, q in zip(a, b, strict=True))
                if tau < 0.45:
                    return (x_parcel(t), y, top + 50 - 55 * _smooth((tau - 0.3) / 0.1))
                if tau < 0.65:
                    return (x_parcel(t), y, top - 5 + 100 * _smooth((tau - 0.45) / 0.2))
                s = _smooth((tau - 0.65) / 0.5)
                a = (x_parcel(t), y, top + 95)
                return tuple(
                    p + (q - p) * s for p, q in zip(a, (c1.x_mm, c1.y_mm, c1.z_mm), strict=True)
                )

            start = motion.clock_at(t0)
            points = []
            for k in range(1, 116):  # 1.15 s in 10 ms segments
                t = t0 + k * 0.01
                points.append((motion.clock_at(t), _micro(cfg.ik(*cart(t), 0.0))))
            queued = asyncio.ensure_future(motion.queue_path(points, start))
            await asyncio.sleep(t0 + 0.2 - time.monotonic())
            await motion.set_suction(True)  # open before touchdown: free flow until sealed
            await queued
            while not stops:
                await asyncio.sleep(0.01)
            await motion.set_suction(False)  # at the place pose: release
            await asyncio.sleep(0.4)
            return grips, edges, stops, await motion.vacuum()
        finally:
            await link.close()

    grips, edges, stops, vac = asyncio.run(main())
    truth = sim.call(lambda: sim.sim.world.truth[1])
    assert grips[:1] == [True] and truth.grips and truth.grips[0][1] < 10
    assert [s.reason_name for s in stops] == ["end of move"] and not truth.drops
    assert truth.end == "dest:c1" and c1.sensor_input in edges
    assert not vac.valve and vac.pressure_pa < 5_000
