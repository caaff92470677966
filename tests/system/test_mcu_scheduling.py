"""Over real ptys: actions scheduled at encoder counts and MCU clock values, by the MCU (Python
and C firmware). Outputs are configured before use (docs/mcu-protocol.md, error 6)."""

from __future__ import annotations

import asyncio
import time

import pytest

from firmware_bridge.mcu import McuCommandError, McuLink
from firmware_bridge.mcu import messages as m

# 1 m/s belt, 1 count per mm: one count per millisecond.
BELT = {"belt_speed_mm_s": 1000.0, "counts_per_mm": 1.0}


def test_stroke_fires_at_its_encoder_count_within_one_count(start_mcu):
    mcu = start_mcu(process=True, **BELT)
    path = mcu.path

    async def main() -> list[m.Message]:
        done: list[m.Message] = []
        async with McuLink(path) as link:
            link.on_event(lambda msg: done.append(msg) if msg.name == "action_done" else None)
            await link.configure_output(5, safe_value=0)
            await link.configure_output(6, safe_value=0)
            count, _ = await link.read_encoder()
            targets = [count + 150, count + 220, count + 300]
            for i, target in enumerate(targets):
                await link.schedule_at_count(target, pin=5 + i % 2, duration_s=0.02)
            await asyncio.sleep(0.45)
            return done

    done = asyncio.run(main())
    log = mcu.actions_log()
    fired = [r for r in log if r.target_kind == "count"]
    assert len(fired) == 3 and len(done) == 3
    for rec in fired:
        assert 0 <= rec.fired_count - rec.target <= 1, rec
    assert [msg["count"] for msg in done] == [r.fired_count for r in fired]
    # the stroke ended by itself after its duration (20 ms = 20 counts here)
    reverts = [r for r in log if r.target_kind == "revert"]
    assert len(reverts) == 3
    for rec, rev in zip(fired, reverts, strict=True):
        assert rev.value == 0 and 19 <= rev.fired_count - rec.fired_count <= 22


def test_a_count_already_passed_is_refused_with_a_clear_error(start_mcu):
    mcu = start_mcu(**BELT)
    path = mcu.path

    async def main() -> None:
        async with McuLink(path) as link:
            await link.configure_output(1, safe_value=0)
            count, _ = await link.read_encoder()
            with pytest.raises(McuCommandError, match="already passed") as err:
                await link.schedule_at_count(count - 5, pin=1)
            assert err.value.code == m.ERR_IN_PAST

    asyncio.run(main())
    assert mcu.actions_log() == []


def test_action_at_a_host_time_fires_there_through_the_clock_sync(start_mcu):
    mcu = start_mcu(process=True, drift_ppm=120.0)
    path = mcu.path

    async def main() -> tuple[float, float]:
        async with McuLink(path) as link:
            await link.configure_output(2, safe_value=0)
            await link.configure_output(3, safe_value=0)
            await link.sync_clock(8)
            target = time.monotonic() + 0.15
            await link.schedule_at_host_time(target, pin=2)
            with pytest.raises(McuCommandError, match="in the past"):
                await link.schedule_at_clock(link.clock.clock_at(time.monotonic()) - 1000, 3)
            await asyncio.sleep(0.25)
            return target, link.clock.uncertainty_s

    target, uncertainty = asyncio.run(main())
    (rec,) = mcu.actions_log()
    assert uncertainty < 0.002
    assert abs(rec.fired_at - target) <= uncertainty + 0.001


def test_input_edges_and_encoder_reports_arrive_as_events(start_mcu):
    mcu = start_mcu(**BELT)
    path = mcu.path

    async def main() -> list[m.Message]:
        events: list[m.Message] = []
        async with McuLink(path) as link:
            link.on_event(events.append)
            await link.set_encoder_report(0, 20)
            mcu.set_input(3, 1)
            await asyncio.sleep(0.15)
            assert await link.read_inputs() == 0b1000
        return events

    events = asyncio.run(main())
    edges = [e for e in events if e.name == "input_edge"]
    reports = [e for e in events if e.name == "encoder_report"]
    assert [(e["pin"], e["value"]) for e in edges] == [(3, 1)]
    assert len(reports) >= 4
    counts = [e["count"] for e in reports]
    assert counts == sorted(counts) and counts[-1] > counts[0]
