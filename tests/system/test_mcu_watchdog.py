"""Over real ptys: the MCU makes its actuators safe when the host goes silent (Python and C
firmware)."""

from __future__ import annotations

import asyncio

from firmware_bridge.mcu import McuLink

WATCHDOG_MS = 100


def test_heartbeats_keep_the_watchdog_quiet_and_silence_trips_it_in_time(start_mcu):
    mcu = start_mcu(process=True, watchdog_ms=2000)
    path = mcu.path

    async def main() -> list[str]:
        events: list[str] = []
        link = McuLink(path, watchdog_ms=WATCHDOG_MS, heartbeat_ms=25)
        link.on_event(lambda msg: events.append(msg.name))
        await link.connect()
        await link.configure_output(0, safe_value=0)
        await link.configure_output(1, safe_value=1)
        await link.set_output(0, 1)
        await link.set_output(1, 0)
        await asyncio.sleep(5 * WATCHDOG_MS / 1000)  # only heartbeats flow
        assert mcu.watchdog_trips() == []
        assert mcu.outputs()[:2] == [1, 0]
        link.suspend_heartbeats = True  # the host hangs
        await asyncio.sleep(3 * WATCHDOG_MS / 1000)
        link.suspend_heartbeats = False
        for _ in range(100):
            if "watchdog_tripped" in events:
                break
            await asyncio.sleep(0.01)
        await link.close()
        return events

    events = asyncio.run(main())
    trips = mcu.watchdog_trips()
    last_frame = mcu.last_host_frame()
    changes = mcu.output_log()
    assert len(trips) == 1
    # safe within the configured time (the sim checks every 1 ms)
    silent = trips[0] - last_frame
    assert WATCHDOG_MS / 1000 <= silent <= WATCHDOG_MS / 1000 + 0.01
    safe = {c.pin: c.value for c in changes if c.cause == "watchdog"}
    assert safe[0] == 0 and safe[1] == 1
    wd = [c for c in changes if c.cause == "watchdog"]
    # every configured output, at once (docs/mcu-protocol.md 8.1: unconfigured ones stay)
    assert {c.pin for c in wd} == {0, 1} and all(abs(c.at - trips[0]) < 0.001 for c in wd)
    # and the host heard about it once it spoke again
    assert "watchdog_tripped" in events


def test_watchdog_cancels_pending_scheduled_actions(start_mcu):
    mcu = start_mcu(process=True)
    path = mcu.path

    async def main() -> None:
        link = McuLink(path, watchdog_ms=50, heartbeat_ms=10)
        await link.connect()
        await link.configure_output(4, safe_value=0)
        await link.sync_clock(4)
        clock = link.clock.clock_at(_now() + 0.3)
        await link.schedule_at_clock(clock, pin=4, value=1)
        link.suspend_heartbeats = True
        await asyncio.sleep(0.5)
        link.suspend_heartbeats = False
        await link.close()

    asyncio.run(main())
    assert len(mcu.watchdog_trips()) == 1
    assert mcu.actions_log() == []  # the stroke never fired
    assert mcu.outputs()[4] == 0


def _now() -> float:
    import time

    return time.monotonic()
