"""Readings through unplugs, dropped TCP clients and garbage: what arrives is exactly what was
sent, in order, never garbled or merged; every loss is reported and the line comes back."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from firmware_bridge.linedev import LineDevice, LineDeviceConfig, LineError, Read, StateChange
from sim_hardware.scanner import ScannerOptions, SimScanner


async def _churn(where: str, tmp_path, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    opts = (
        ScannerOptions(link=str(tmp_path / "s")) if where == "pty" else ScannerOptions(tcp_port=0)
    )
    sim = await SimScanner(opts).start()
    link = (
        {"serial": {"port": opts.link}}
        if where == "pty"
        else {"tcp": {"host": "127.0.0.1", "port": sim.tcp_port}}
    )
    cfg = LineDeviceConfig.model_validate(
        {"name": "s", "max_line_length": 64, "reconnect": {"min_s": 0.02, "max_s": 0.1}, **link}
    )
    events: list[object] = []
    try:
        async with LineDevice(cfg, seed=seed) as dev:

            async def collect() -> None:
                async for ev in dev.events():
                    events.append(ev)

            consumer = asyncio.get_running_loop().create_task(collect())
            assert await dev.wait_connected(3)
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            n = 0
            garbage = 0
            while loop.time() < end:
                sim.scan(f"L{n:07d}")
                n += 1
                r = rng.random()
                if r < 0.003 and sim.plugged:
                    sim.unplug(rng.uniform(0.05, 0.3))
                elif r < 0.013:
                    sim.send_raw(b"\xff" * rng.randint(1, 200) + b"\r\n")
                    garbage += 1
                await asyncio.sleep(0.001)
            # after the churn: the line comes back and a label scanned then arrives
            while not sim.plugged:
                await asyncio.sleep(0.05)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if dev.state == "connected" and (where == "pty" or sim.connected_clients):
                    break
            await asyncio.sleep(0.1)
            sim.scan("LAST")
            for _ in range(100):
                if any(isinstance(e, Read) and e.text == "LAST" for e in events):
                    break
                await asyncio.sleep(0.02)
            consumer.cancel()
    finally:
        sim.stop()

    reads = [e.text for e in events if isinstance(e, Read)]
    assert reads[-1] == "LAST"
    labels = reads[:-1]
    assert all(re.fullmatch(r"L\d{7}", t) for t in labels), "a reading was garbled or merged"
    numbers = [int(t[1:]) for t in labels]
    assert numbers == sorted(set(numbers)), "readings duplicated or out of order"
    assert len(labels) > n * 0.3, (len(labels), n)
    errors = [e for e in events if isinstance(e, LineError)]
    assert {e.kind for e in errors} <= {"oversize", "undecodable", "incomplete"}
    assert sum(e.kind != "incomplete" for e in errors) <= garbage
    downs = [e for e in events if isinstance(e, StateChange) and e.state == "disconnected"]
    ups = [e for e in events if isinstance(e, StateChange) and e.state == "connected"]
    assert 1 <= len(downs) <= sim.stats.unplugs and len(ups) == len(downs) + 1
    assert all(d.reason for d in downs)


@pytest.mark.parametrize("where", ["pty", "tcp"])
def test_readings_survive_unplugs_and_garbage(where, tmp_path):
    asyncio.run(_churn(where, tmp_path, seconds=4.0, seed=11))


@pytest.mark.soak
@pytest.mark.parametrize("where", ["pty", "tcp"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_soak_readings_survive_unplugs_and_garbage(where, seed, tmp_path):
    asyncio.run(_churn(where, tmp_path, seconds=60.0, seed=seed))
