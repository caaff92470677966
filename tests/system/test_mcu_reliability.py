"""Over real ptys: commands on a noisy line arrive in order, exactly once (Python and C
firmware)."""

from __future__ import annotations

import asyncio

from firmware_bridge.mcu import McuLink


async def _pipelined_pings(link: McuLink, n: int) -> list[int]:
    futs = [link.request_nowait("ping", data=i) for i in range(n)]
    return [msg["data"] for msg in await asyncio.gather(*futs)]


def _executed_pings(mcu) -> list[int]:
    return [fields["data"] for fields in mcu.executed("ping")]


def test_10000_commands_at_1e3_byte_errors_arrive_in_order_exactly_once(start_mcu):
    n = 10_000
    dev = start_mcu(noise=1e-3, seed=7)
    path = dev.path

    async def main() -> tuple[list[int], dict, dict]:
        async with McuLink(path) as link:
            answers = await _pipelined_pings(link, n)
            counters = link.endpoint.counters.as_dict()
            counters["bad"] = link.decoder.stats.bad_frames
            return answers, counters, await link.mcu_stats()

    answers, host, mcu = asyncio.run(main())
    assert answers == list(range(n))  # every response, matched to its request
    assert _executed_pings(dev) == list(range(n))  # executed once each, in order
    # the noise was really met and recovered from, in both directions
    assert host["bad"] > 0 and mcu["rx_bad"] > 0
    assert host["retransmits"] > 0 and mcu["retransmits"] > 0


def test_dropped_bytes_and_a_stall_lose_nothing(start_mcu):
    n = 3000
    mcu = start_mcu(drop=1e-3, baud=1_000_000, seed=3)
    path = mcu.path

    async def main() -> list[int]:
        async with McuLink(path, baud=1_000_000) as link:
            task = asyncio.ensure_future(_pipelined_pings(link, n))
            await asyncio.sleep(0.05)
            mcu.stall(0.3)
            return await task

    assert asyncio.run(main()) == list(range(n))
    assert _executed_pings(mcu) == list(range(n))
    assert mcu.dropped_from_host() > 0
