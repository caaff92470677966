"""The motion stream's seal-gated bound (edge/arm/adapter_mcu.py, ``carry_after_s``) against
the simulated arm MCU on a real pty: the part of a pick a carry may replace goes out as far
as no carry can start yet, counted from the seal's MCU stamp (or, before a seal, from the
newest stamp heard), not a fixed horizon ahead of now. So a carry that the core answers
late, but on its plan (``grip_confirm_ms`` + ``lead_ms`` after the seal), still replaces
the pick (with the fixed 70 ms horizon of before it was refused and the arm stopped
holding the parcel on the belt); and a queue that runs dry mid-move (a host stalled past
it) waits for the MCU's own stop, not a fresh start from a stale rest."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from edge.arm.adapter_mcu import JIT_MARGIN_S, MotionStream
from edge.arm.events import MotionHalted, Move
from edge.arm.trajectory import Trajectory
from firmware_bridge.mcu import McuLink
from sim_hardware.arm.config import ArmWorldConfig
from tests.system.arm_stream import DT, deg, move, open_stream
from tests.system.arm_stream import arm_cell as shared_arm_cell

CARRY_AFTER = 0.15  # grip_confirm_ms 30 + lead_ms 120 (configs/sim-arm.yaml)


@pytest.fixture
def arm_cell(tmp_path: Any) -> Any:
    with shared_arm_cell(tmp_path) as cell:
        yield cell


async def _stream(
    path: str, cfg: ArmWorldConfig, carry_after: float | None
) -> tuple[McuLink, MotionStream, list[Any]]:
    return await open_stream(path, cfg, 0.07, carry_after)


def _pick(cfg: ArmWorldConfig, t0: float) -> tuple[Move, float]:
    """A pick: 0.5 s to the belt, then 1.0 s riding it; a carry may replace it from 0.1 s
    into the ride (``replaceable_from``)."""
    home = deg(cfg, *cfg.home_mm[:3])
    a, b = (-300.0, 600.0, -500.0), (0.0, 600.0, -500.0)
    to = move(1, t0, home, deg(cfg, *a), 0.5)
    ride = move(1, to.trajectory.t_end, deg(cfg, *a), deg(cfg, *b), 1.0)
    joined = Move(1, "pick", None, Trajectory(t0, DT, to.trajectory.q + ride.trajectory.q[1:]))
    return joined, to.trajectory.t_end


async def _ticks(stream: MotionStream) -> None:
    """The node's encoder reports: a stamp heard every 10 ms, 5 ms old when read."""
    while True:
        stream.heard(time.monotonic() - 0.005)
        await asyncio.sleep(0.01)


def _late_carry(carry_after: float | None) -> tuple[bool, list[tuple[float, int]], float]:
    """The seal comes at contact; the core's carry (start: seal + CARRY_AFTER, as the core
    plans it) reaches the stream 85 ms after the seal: 35 ms later than a fixed 70 ms
    horizon allows (it has sent the pick up to ~155-163 ms after the seal by then). What
    the stream then holds: (setpoint time, move) of the first waiting points."""

    async def main() -> tuple[bool, list[tuple[float, int]], float]:
        link, stream, _facts = await _stream(PATH, CFG, carry_after)
        task = asyncio.create_task(stream.run())
        ticks = asyncio.create_task(_ticks(stream))
        t0 = time.monotonic() + 0.1
        pick, contact = _pick(CFG, t0)
        assert stream.add(pick, replaceable_from=contact + 0.08, seal_from=contact - 0.05)
        await asyncio.sleep(contact - time.monotonic())
        seal = time.monotonic()
        stream.grip(True, seal)  # as the node hears grip_changed
        await asyncio.sleep(0.085)  # the core answers late
        start = seal + CARRY_AFTER
        stream.pump(max(time.monotonic(), seal + 0.085))  # all the stream may send by now
        q = pick.trajectory.at(start)
        carry = move(2, start, q, deg(CFG, -650.0, 200.0, -450.0), 0.7, kind="carry",
                      replace_from=start)  # fmt: skip
        ok = stream.add(carry)
        waiting = [(p.t, p.move_id) for p in list(stream.points)[:8]]
        stream.stop_now("end of test")
        await asyncio.sleep(0.2)
        task.cancel()
        ticks.cancel()
        await link.close()
        return ok, waiting, start

    return asyncio.run(main())


PATH = ""
CFG = ArmWorldConfig()


def test_a_carry_answered_late_but_on_its_plan_replaces_the_pick(arm_cell: Any) -> None:
    """Accepted, and joined: what waits is the pick up to the carry's start, then the
    carry (tests/system/test_arm_motion_stream.py runs such a join on the arm)."""
    global PATH
    _sim, PATH, _ = arm_cell
    ok, waiting, start = _late_carry(CARRY_AFTER)
    assert ok  # nothing after the carry's start had gone out
    picks = [t for t, m in waiting if m == 1]
    carries = [t for t, m in waiting if m == 2]
    assert all(t <= start + 1e-6 for t in picks) and carries and min(carries) > start
    assert waiting == sorted(waiting)  # the pick's kept points, then the carry's


def test_the_bound_follows_the_seal_or_the_newest_stamp_heard() -> None:
    """The gate's bound alone (``_jit_bound``): before a seal, the newest stamp heard +
    ``carry_after_s`` less the margin (a seal not yet read came after it), never before
    ``seal_from``; with a seal, from the seal's stamp (an early seal counts as made at
    ``seal_from``); a lost seal goes back to the stamps; released or replaced: no bound."""
    stream = MotionStream(None, None, 0.07, lambda f: None, carry_after_s=CARRY_AFTER)  # type: ignore[arg-type]
    pick = move(7, 100.0, (0.0, 0.0, -400.0, 0.0), (10.0, 0.0, -400.0, 0.0), 1.0)
    stream.add(pick, replaceable_from=100.58, seal_from=100.45)
    p = stream.points[-1]
    margin = CARRY_AFTER - JIT_MARGIN_S
    assert stream._jit_bound(p) == pytest.approx(100.45 + margin)  # nothing heard yet
    stream.heard(100.6)
    assert stream._jit_bound(p) == pytest.approx(100.6 + margin)
    stream.heard(100.5)  # an older stamp read late moves nothing back
    assert stream._jit_bound(p) == pytest.approx(100.6 + margin)
    stream.grip(True, 100.62)
    stream.heard(100.9)
    assert stream._jit_bound(p) == pytest.approx(100.62 + margin)  # the seal, not the news
    stream.grip(False, 100.95)
    assert stream._jit_bound(p) == pytest.approx(100.95 + margin)
    stream.grip(True, 100.3)  # sealed before its window: as if at seal_from
    assert stream._jit_bound(p) == pytest.approx(100.45 + margin)
    stream.release(8)  # another move: nothing changes
    assert stream._jit_bound(p) == pytest.approx(100.45 + margin)
    stream.release(7)
    assert stream._jit_bound(p) == math.inf
    stream.add(pick, replaceable_from=100.58, seal_from=100.45)
    carry = move(9, 100.7, pick.trajectory.at(100.7), (0.0, 0.0, -300.0, 0.0), 0.5,
                  kind="carry", replace_from=100.7)  # fmt: skip
    assert stream.add(carry)  # nothing sent: it replaces
    assert stream._jit_bound(stream.points[0]) == math.inf


def test_a_queue_run_dry_mid_move_is_not_taken_for_a_fresh_start(arm_cell: Any) -> None:
    """The host stalls past what the MCU's queue holds (here: no stamp heard, so the gate
    holds the pick's replaceable part back): the MCU stops by itself (an underrun). The
    stream used to take the empty queue for a fresh start from its last known rest (the
    previous move's end): the rest of the move was refused as a jump from there and the
    core told the arm rested there. Now nothing goes out until the MCU's stop says where
    the arm rests, and that is what the core hears."""
    _sim, path, cfg = arm_cell
    home = deg(cfg, *cfg.home_mm[:3])

    async def main() -> tuple[dict[str, int], list[Any]]:
        link, stream, facts = await _stream(path, cfg, CARRY_AFTER)
        stream.rest_q = home  # the previous move ended there
        task = asyncio.create_task(stream.run())
        t0 = time.monotonic() + 0.1
        pick, contact = _pick(cfg, t0)
        stream.add(pick, replaceable_from=contact + 0.08, seal_from=contact - 0.05)
        await asyncio.sleep(contact + 0.25 - time.monotonic())  # past the cut: ran dry
        stream.release(1)  # the core gives the pick up: the rest may go
        for _ in range(150):  # the MCU's stop event (a loaded host: up to 3 s)
            await asyncio.sleep(0.02)
            if facts:
                break
        await asyncio.sleep(0.1)
        task.cancel()
        await link.close()
        return dict(stream.stats), facts

    stats, facts = asyncio.run(main())
    # (the stream sees the queue run dry, or hears the MCU's stop first: either way)
    assert stats["ran_dry"] <= 1 and stats["jumps_refused"] == 0
    assert [type(f) for f in facts] == [MotionHalted] and facts[0].reason == "queue underrun"
    assert math.dist(facts[0].q[:2], home[:2]) > 20  # where it stopped, not the old rest
