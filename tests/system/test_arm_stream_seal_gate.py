"""The motion stream's seal-gated bound (edge/arm/adapter_mcu.py, ``carry_after_s``) against
the simulated arm MCU on a real pty: the part of a pick a carry may replace goes out as far
as no carry can start yet, counted from the seal's MCU stamp (or, before a seal, from the
newest stamp heard), not a fixed horizon ahead of now. So a carry that the core answers
late, but on its plan (``grip_confirm_ms`` + ``lead_ms`` after the seal), still replaces
the pick (with a fixed 70 ms horizon it was refused and the arm stopped holding the parcel
on the belt), and a host stalled for longer than that horizon does not run the MCU's queue
dry while no seal is heard."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any

import pytest

from edge.arm.adapter_mcu import JIT_MARGIN_S, MotionStream
from edge.arm.events import MotionEnded, Move
from edge.arm.trajectory import Trajectory
from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu.motion import ArmMotion
from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.mcu import ArmSimThread
from sim_hardware.mcu import SimMcuOptions

DT = 0.008
CARRY_AFTER = 0.15  # grip_confirm_ms 30 + lead_ms 120 (configs/sim-arm.yaml)


@pytest.fixture
def arm_cell(tmp_path: Any) -> Any:
    cfg = ArmWorldConfig()
    path = str(tmp_path / "arm-mcu")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the sim shares this process with the host link
    sim = ArmSimThread(cfg, SimMcuOptions(link=path, inputs=16, seed=1, watchdog_ms=500))
    try:
        yield sim.start(), path, cfg
    finally:
        sim.stop()
        sys.setswitchinterval(interval)


def _deg(cfg: ArmWorldConfig, x: float, y: float, z: float) -> tuple[float, float, float, float]:
    q = cfg.ik(x, y, z, 0.0)
    return (math.degrees(q[0]), math.degrees(q[1]), q[2] * 1000, math.degrees(q[3]))


def _move(move_id: int, t0: float, a: Any, b: Any, seconds: float, **kw: Any) -> Move:
    n = round(seconds / DT)
    q = []
    for k in range(n + 1):
        s = k / n
        s = s * s * s * (10 - 15 * s + 6 * s * s)
        q.append(tuple(pa + (pb - pa) * s for pa, pb in zip(a, b, strict=True)))
    kind = kw.get("kind", "pick")
    return Move(move_id, kind, None, Trajectory(t0, DT, tuple(q)), kw.get("replace_from"))  # type: ignore[arg-type]


async def _stream(
    path: str, cfg: ArmWorldConfig, carry_after: float | None
) -> tuple[McuLink, MotionStream, list[Any]]:
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
    stream = MotionStream(link, motion, 0.07, facts.append, carry_after_s=carry_after)
    link.on_event(stream.on_event)
    return link, stream, facts


def _pick(cfg: ArmWorldConfig, t0: float) -> tuple[Move, float]:
    """A pick: 0.5 s to the belt, then 1.0 s riding it; a carry may replace it from 0.1 s
    into the ride (``replaceable_from``)."""
    home = _deg(cfg, *cfg.home_mm[:3])
    a, b = (-300.0, 600.0, -500.0), (0.0, 600.0, -500.0)
    to = _move(1, t0, home, _deg(cfg, *a), 0.5)
    ride = _move(1, to.trajectory.t_end, _deg(cfg, *a), _deg(cfg, *b), 1.0)
    joined = Move(1, "pick", None, Trajectory(t0, DT, to.trajectory.q + ride.trajectory.q[1:]))
    return joined, to.trajectory.t_end


async def _ticks(stream: MotionStream) -> None:
    """The node's encoder reports: a stamp heard every 10 ms, 5 ms old when read."""
    while True:
        stream.heard(time.monotonic() - 0.005)
        await asyncio.sleep(0.01)


def _late_carry(carry_after: float | None) -> tuple[bool, dict[str, int], list[Any]]:
    """The seal comes at contact; the core's carry (start: seal + CARRY_AFTER, as the core
    plans it) reaches the stream 100 ms after the seal: 50 ms later than a fixed 70 ms
    horizon allows."""

    async def main() -> tuple[bool, dict[str, int], list[Any]]:
        link, stream, facts = await _stream(PATH, CFG, carry_after)
        task = asyncio.create_task(stream.run())
        ticks = asyncio.create_task(_ticks(stream))
        t0 = time.monotonic() + 0.1
        pick, contact = _pick(CFG, t0)
        assert stream.add(pick, replaceable_from=contact + 0.08, seal_from=contact - 0.05)
        await asyncio.sleep(contact - time.monotonic())
        seal = time.monotonic()
        stream.grip(True, seal)  # as the node hears grip_changed
        await asyncio.sleep(0.1)  # the core answers late
        start = seal + CARRY_AFTER
        q = pick.trajectory.at(start)
        carry = _move(2, start, q, _deg(CFG, -650.0, 200.0, -450.0), 0.7, kind="carry",
                      replace_from=start)  # fmt: skip
        ok = stream.add(carry)
        if ok:
            await asyncio.sleep(start + 0.7 + 0.3 - time.monotonic())
        else:
            stream.stop_now("carry too late")
            await asyncio.sleep(0.3)
        task.cancel()
        ticks.cancel()
        await link.close()
        return ok, dict(stream.stats), facts

    return asyncio.run(main())


PATH = ""
CFG = ArmWorldConfig()


def test_a_carry_answered_late_but_on_its_plan_replaces_the_pick(arm_cell: Any) -> None:
    global PATH
    _sim, PATH, _ = arm_cell
    ok, stats, facts = _late_carry(CARRY_AFTER)
    assert ok  # nothing after the carry's start had gone out
    assert stats["refused"] == 0  # contiguous: the MCU took every segment, no underrun
    assert [type(f) for f in facts] == [MotionEnded] and facts[0].move_id == 2, facts


def test_the_same_late_carry_is_refused_with_a_fixed_horizon(arm_cell: Any) -> None:
    """What the gate replaces: with ``horizon_s`` 70 ms the stream had sent the pick past
    the carry's start by then; the carry cannot replace it (the node stops the arm)."""
    global PATH
    _sim, PATH, _ = arm_cell
    ok, _stats, _facts = _late_carry(None)
    assert not ok


def test_before_a_seal_the_replaceable_part_goes_out_up_to_the_last_stamp_heard(
    arm_cell: Any,
) -> None:
    """No seal heard: what goes out stops at the newest stamp heard + ``carry_after_s``
    less the margin (a seal not yet read happened after it: no carry starts before), more
    than a fixed 70 ms horizon would send, and moves on as stamps come in. ``release``
    (the core gave the pick up: no carry will come) sends the rest: the pick runs to its
    end, no segment refused, no underrun."""
    _sim, path, cfg = arm_cell

    async def main() -> tuple[list[float], float, dict[str, int], list[Any], float]:
        link, stream, facts = await _stream(path, cfg, CARRY_AFTER)
        t0 = time.monotonic() + 0.1
        pick, contact = _pick(cfg, t0)
        heard = contact + 0.05
        stream.heard(heard)
        stream.add(pick, replaceable_from=contact + 0.08, seal_from=contact - 0.05)
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(contact + 0.02 - time.monotonic())
        assert stream.last is not None
        sent = [stream.last[0]]
        await asyncio.sleep(0.03)
        sent.append(stream.last[0])  # no newer stamp: no further
        stream.heard(heard + 0.1)
        await asyncio.sleep(0.03)
        sent.append(stream.last[0])
        stream.release(1)
        await asyncio.sleep(pick.trajectory.t_end + 0.3 - time.monotonic())
        task.cancel()
        await link.close()
        return sent, heard, dict(stream.stats), facts, contact

    sent, heard, stats, facts, contact = asyncio.run(main())
    bound = heard + CARRY_AFTER - JIT_MARGIN_S
    assert bound - DT - 1e-6 <= sent[0] <= bound + 1e-6
    assert sent[0] > contact + 0.02 + 0.07  # beyond what a 70 ms horizon sends by then
    assert sent[1] == sent[0]
    assert bound + 0.1 - DT - 1e-6 <= sent[2] <= bound + 0.1 + 1e-6
    assert stats["refused"] == 0
    assert [type(f) for f in facts] == [MotionEnded] and facts[0].move_id == 1
