"""The ATmega2560 build in simavr, its UART0 bridged to a pty: the technician's commands, a
timed stroke and the encoder's edge rate, measured in the simulator's cycle time
(docs/firmware.md, "simavr")."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.mcu import McuLink
from tests.firmware.simavr import AvrSim

CYCLES_PER_TICK = 8  # 16 MHz core, Timer1 at clk/8: the 2 MHz MCU clock
CPU_HZ = 16_000_000
STROKE_LATENCY_US = 50  # a scheduled output fires within this after its target (measured: 36)
EDGE_RATE = 50_000  # encoder edges/s counted without loss (measured maximum: 60,000)


def _wolfpack() -> list[str]:
    exe = Path(sys.executable).with_name("wolfpack")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge.cli.main"]


@pytest.fixture
def avr(firmware_make, tmp_path) -> Iterator[AvrSim]:
    sim = AvrSim(tmp_path / "mega2560")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.mark.soak  # 7 s of simavr pings; the C firmware is covered by the [c] link tests
def test_info_and_2000_pings_through_the_simulated_board(avr):
    info = subprocess.run(
        [*_wolfpack(), "mcu", "info", "--port", str(avr.link)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert "wolfpack-mcu-mega2560 1.0.0 (protocol 2)" in info.stdout
    assert "rx window  2 frames" in info.stdout and "2000000 Hz" in info.stdout
    ping = subprocess.run(
        [*_wolfpack(), "mcu", "ping", "--port", str(avr.link), "--count", "2000", "--json"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stderr
    report = json.loads(ping.stdout)
    assert report["completed"] == 2000 and report["lost"] == 0


def test_a_scheduled_stroke_fires_within_50_us_of_its_target_in_cycle_time(avr):
    async def main() -> list[tuple[int, int]]:
        done: list[tuple[int, int]] = []
        async with McuLink(str(avr.link)) as link:
            link.on_event(
                lambda m: done.append((m["clock"], m["count"])) if m.name == "action_done" else 0
            )
            await link.configure_output(3, safe_value=0)
            targets = []
            for _ in range(2):
                now = (await link.request("get_clock"))["clock"]
                target = now + 100_000  # 50 ms ahead
                await link.schedule_at_clock(target, pin=3, value=1, duration_s=0.002)
                targets.append(target)
                await asyncio.sleep(0.25)
            assert len(done) == 2
            return list(zip(targets, [clock for clock, _ in done], strict=True))

    fired = asyncio.run(main())
    timer1_start = avr.sync()["timer1_start"]
    rises = [cycle for cycle, pin, value in avr.outputs if pin == 3 and value == 1]
    falls = [cycle for cycle, pin, value in avr.outputs if pin == 3 and value == 0]
    assert len(rises) == 2, avr.outputs
    for (target, reported), rise in zip(fired, rises, strict=True):
        latency_us = (rise - (timer1_start + target * CYCLES_PER_TICK)) / (CPU_HZ / 1e6)
        print(f"stroke at clock {target}: output changed {latency_us:.1f} us after its target")
        assert 0 <= latency_us <= STROKE_LATENCY_US
        assert 0 <= reported - target <= STROKE_LATENCY_US * 2  # action_done's clock, 0.5 us ticks
    # the 2 ms duration ended the stroke by itself (4000 ticks), within the same bound
    for rise, fall in zip(rises, falls[-2:], strict=True):
        assert abs((fall - rise) / (CPU_HZ / 1e6) - 2000) <= STROKE_LATENCY_US


def test_the_encoder_counts_every_edge_at_50000_edges_per_second(avr):
    async def main() -> list[int]:
        async with McuLink(str(avr.link)) as link:
            avr.send("encoder 10000 8")  # one full quadrature cycle: the decoder's state is known
            await asyncio.sleep(0.1)
            seen = []
            for direction in (1, -1):
                before, _ = await link.read_encoder()
                avr.send(f"encoder {EDGE_RATE} 20000 {direction}")
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    if avr.sync()["edges_left"] == 0:
                        break
                after, _ = await link.read_encoder()
                seen.append(after - before)
            return seen

    assert asyncio.run(main()) == [20000, -20000]
