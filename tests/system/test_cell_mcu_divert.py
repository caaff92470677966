"""The cell core through a real McuLink and the simulated MCU on a pty: a parcel seen at the
induction eye is diverted by a stroke the MCU fires at the count the core computed."""

from __future__ import annotations

import asyncio
import time

from edge.cell.controller import CellCore
from edge.cell.events import (
    AskBrain,
    BrainAnswer,
    CellAction,
    EyeEdge,
    ScheduleStroke,
    Sighting,
    StrokeDone,
    StrokeRefused,
)
from edge.cell.mcu_adapter import McuDiverter
from firmware_bridge.mcu import McuLink
from tests.edge.cell.helpers import make_cfg
from tests.firmware_bridge.mcu.harness import sim_mcu_process

# 1 m/s, 1 count/mm. Eye at 100 mm, decide by 150 mm, chute a at 400 mm (output 1).
CFG = make_cfg(
    decision_point_mm=150,
    chutes=[
        {"id": "a", "diverter_mm": 400, "output": 1, "stroke_ms": 20},
        {"id": "b", "diverter_mm": 2000, "output": 2, "stroke_ms": 20},
    ],
)


def test_stroke_fires_at_the_count_the_core_computed(tmp_path):
    with sim_mcu_process(tmp_path, belt_speed_mm_s=1000.0, counts_per_mm=1.0) as (sim, path):

        async def main() -> tuple[int, list[object]]:
            core = CellCore(CFG)
            facts: list[object] = []
            async with McuLink(path) as link:
                mcu = McuDiverter(link, CFG)
                link.on_event(lambda msg: facts.append(mcu.translate(msg)))
                await mcu.configure([1, 2])
                count, _ = await link.read_encoder()
                t = time.monotonic()
                actions: list[CellAction] = []
                actions += core.handle(EyeEdge("in", True, count, t))
                actions += core.handle(Sighting("camera", count + 20, t, 120, label="A-1"))
                (ask,) = [a for a in actions if isinstance(a, AskBrain)]
                actions += core.handle(BrainAnswer(ask.parcel_id, "a", t + 0.001))
                (stroke,) = [a for a in actions if isinstance(a, ScheduleStroke)]
                refused = await mcu.schedule(stroke)
                assert refused is None
                await asyncio.sleep(0.45)
                for fact in facts:
                    if isinstance(fact, StrokeDone):
                        core.handle(fact)
                return stroke.count, facts

        target, facts = asyncio.run(main())
        assert target > 0
        fired = [r for r in sim.get("firmware.actions_log") if r.target_kind == "count"]
        assert len(fired) == 1 and fired[0].pin == 1 and fired[0].target == target
        assert 0 <= fired[0].fired_count - target <= 1
        done = [f for f in facts if isinstance(f, StrokeDone)]
        assert [d.count for d in done] == [fired[0].fired_count]


def test_a_stroke_the_mcu_refuses_comes_back_as_a_refusal(tmp_path):
    with sim_mcu_process(tmp_path, belt_speed_mm_s=1000.0, counts_per_mm=1.0) as (sim, path):

        async def main() -> object:
            async with McuLink(path) as link:
                mcu = McuDiverter(link, CFG)
                await mcu.configure([1])  # an unconfigured output is refused first (error 6)
                count, _ = await link.read_encoder()
                stroke = ScheduleStroke(1, "a", 1, count - 10, 20.0, 0)
                return await mcu.schedule(stroke)

        refused = asyncio.run(main())
        assert isinstance(refused, StrokeRefused) and "already passed" in refused.why
        assert sim.get("firmware.actions_log") == []


def test_cancel_all_leaves_nothing_to_fire(tmp_path):
    with sim_mcu_process(tmp_path, belt_speed_mm_s=1000.0, counts_per_mm=1.0) as (sim, path):

        async def main() -> None:
            async with McuLink(path) as link:
                mcu = McuDiverter(link, CFG)
                await mcu.configure([1, 2])
                count, _ = await link.read_encoder()
                for i in range(3):
                    await mcu.schedule(ScheduleStroke(i + 1, "a", 1, count + 150 + i, 20.0, 0))
                await mcu.cancel_all()
                await asyncio.sleep(0.3)

        asyncio.run(main())
        assert [r for r in sim.get("firmware.actions_log") if r.target_kind == "count"] == []


def test_cancel_all_now_puts_every_cancel_on_the_wire_before_it_returns(tmp_path):
    """An e-stop's cancels must not wait for a loop turn or a round trip per stroke: with the
    host's loop blocked right after the call, the MCU has already dropped every stroke."""
    with sim_mcu_process(tmp_path, belt_speed_mm_s=1000.0, counts_per_mm=1.0) as (sim, path):

        async def main() -> tuple[int, int, int]:
            async with McuLink(path) as link:
                mcu = McuDiverter(link, CFG)
                await mcu.configure([1, 2])
                count, _ = await link.read_encoder()
                for i in range(12):
                    await mcu.schedule(ScheduleStroke(i + 1, "a", 1, count + 800 + i, 20.0, 0))
                before = sim.call("firmware._scheduled.__len__")
                sent = mcu.cancel_all_now()
                time.sleep(0.2)  # the loop is blocked: nothing more can be written
                during = sim.call("firmware._scheduled.__len__")
                await asyncio.gather(*(a for _, a in sent))
                for action_id, answer in sent:
                    mcu.settle(action_id, answer)
                return before, during, len(sent)

        before, during, sent = asyncio.run(main())
        assert (before, sent) == (12, 12)
        assert during == 0
        assert [r for r in sim.get("firmware.actions_log") if r.target_kind == "count"] == []


def test_a_stroke_that_fired_just_before_its_cancel_reaches_the_core_as_fired(tmp_path):
    """The MCU fired it and sent action_done before the cancel arrived (answered not_found):
    the core must hear it fired, or the parcel in that chute is unexplained."""
    with sim_mcu_process(tmp_path, belt_speed_mm_s=1000.0, counts_per_mm=1.0) as (sim, path):

        async def main() -> list[object]:
            facts: list[object] = []
            async with McuLink(path) as link:
                mcu = McuDiverter(link, CFG)
                link.on_event(lambda msg: facts.append(mcu.translate(msg)))
                await mcu.configure([1, 2])
                count, _ = await link.read_encoder()
                await mcu.schedule(ScheduleStroke(7, "a", 1, count + 15, 20.0, 0))
                time.sleep(0.1)  # it fires while the host is busy
                await mcu.cancel_all()
                await asyncio.sleep(0.1)
            return facts

        facts = asyncio.run(main())
        fired = [r for r in sim.get("firmware.actions_log") if r.target_kind == "count"]
        assert len(fired) == 1
        done = [f for f in facts if isinstance(f, StrokeDone)]
        assert [(d.parcel_id, d.count) for d in done] == [(7, fired[0].fired_count)]
