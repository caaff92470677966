"""Soak: a long stream of commands through noise, stalls, unplugs and resets at random.

Run with `scripts/test.sh -m soak` (or MCU_SOAK_SECONDS=300 for longer). Invariants: no
command runs twice or out of order, every command either completes or fails with
McuResetError, and the link is usable at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from firmware_bridge.mcu import LinkState, McuLink, McuResetError
from tests.firmware_bridge.mcu.harness import sim_mcu

SECONDS = float(os.environ.get("MCU_SOAK_SECONDS", "40"))


@pytest.mark.soak
def test_random_faults_never_run_a_command_twice(tmp_path):
    rng = random.Random(11)
    with sim_mcu(tmp_path, noise=1e-3, drop=2e-4, baud=1_000_000, seed=11) as (sim, path):

        async def main():
            link = McuLink(path, baud=1_000_000, watchdog_ms=1000)
            await link.connect()
            loop = asyncio.get_running_loop()
            end = loop.time() + SECONDS
            results: dict[int, object] = {}
            next_id = 0
            faults = Counter()
            while loop.time() < end:
                batch = [link.request_nowait("ping", data=next_id + i) for i in range(500)]
                ids = list(range(next_id, next_id + 500))
                next_id += 500
                roll = rng.random()
                if roll < 0.15:
                    faults["unplug"] += 1
                    sim.call(sim.sim.unplug, rng.uniform(0.05, 0.5))
                elif roll < 0.25:
                    faults["reset"] += 1
                    sim.call(sim.sim.reset)
                elif roll < 0.4:
                    faults["stall"] += 1
                    sim.call(sim.sim.stall, rng.uniform(0.01, 0.3))
                done = await asyncio.wait_for(asyncio.gather(*batch, return_exceptions=True), 60)
                results.update(zip(ids, done, strict=True))
                for _ in range(300):
                    if link.state.up:
                        break
                    await asyncio.sleep(0.01)
            final = (await link.request("ping", data=10**9, timeout=5))["data"]
            state = link.state
            await link.close()
            return results, faults, final, state

        results, faults, final, state = asyncio.run(main())
        executed = [
            f["data"]
            for n, f in sim.call(lambda: list(sim.sim.firmware.executed))
            if n == "ping" and f["data"] < 10**9
        ]
        assert final == 10**9 and state in (LinkState.CONNECTED, LinkState.RESYNCED)
        assert executed == sorted(executed) and len(set(executed)) == len(executed)
        ok = {i for i, r in results.items() if not isinstance(r, BaseException)}
        bad = [r for r in results.values() if isinstance(r, BaseException)]
        assert all(isinstance(e, McuResetError) for e in bad), {type(e) for e in bad}
        assert ok <= set(executed)
        print(f"{len(results)} commands, {len(ok)} ok, {len(bad)} failed by resets; {faults}")
