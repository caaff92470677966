"""Over a real pty: what happens at the MCU while no host listens (a node killed and
restarted) reaches the next host after its identify (docs/mcu-protocol.md, section 3.3)."""

from __future__ import annotations

import asyncio

from firmware_bridge.mcu import McuLink


def test_edges_while_no_host_listens_reach_the_next_host_in_order(start_mcu):
    mcu = start_mcu(watchdog_ms=200)
    path = mcu.path

    async def main() -> list[tuple[str, dict]]:
        first = McuLink(path, watchdog_ms=200, heartbeat_ms=25)
        await first.connect()
        await first.close()  # the host is gone without a word
        for value in (1, 0, 1):
            mcu.set_input(3, value)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the watchdog trips too
        got: list[tuple[str, dict]] = []
        second = McuLink(path, watchdog_ms=200, heartbeat_ms=25)
        second.on_event(lambda msg: got.append((msg.name, dict(msg.fields))))
        await second.connect()
        await asyncio.sleep(0.3)
        await second.close()
        return got

    got = asyncio.run(main())
    edges = [f for name, f in got if name == "input_edge" and f["pin"] == 3]
    assert [e["value"] for e in edges] == [1, 0, 1]
    assert [e["clock"] for e in edges] == sorted(e["clock"] for e in edges)
    assert mcu.held_sent() >= 3


def test_a_fresh_mcu_has_nothing_to_replay(start_mcu):
    path = start_mcu().path

    async def main() -> list[str]:
        got: list[str] = []
        link = McuLink(path)
        link.on_event(lambda msg: got.append(msg.name))
        await link.connect()
        await asyncio.sleep(0.2)
        await link.close()
        return got

    assert "input_edge" not in asyncio.run(main())
