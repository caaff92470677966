"""The sim's building blocks: fault rates, the belt encoder, and modelled wire time on a pty."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from sim_hardware.mcu.encoder import BeltEncoder
from sim_hardware.mcu.faults import LineFaults
from sim_hardware.mcu.wire import PtyWire


def test_corruption_and_drop_rates_are_met_and_reproducible():
    data = bytes(range(256)) * 400  # 102,400 bytes
    a = LineFaults(corrupt_rate=1e-3, drop_rate=1e-3, rng=random.Random(9))
    out = a.apply(data)
    assert len(out) == len(data) - a.dropped
    assert 60 < a.corrupted < 160 and 60 < a.dropped < 160  # ~102 each
    b = LineFaults(corrupt_rate=1e-3, drop_rate=1e-3, rng=random.Random(9))
    assert b.apply(data) == out


def test_clean_line_is_untouched():
    faults = LineFaults()
    assert faults.apply(b"abc") == b"abc" and faults.corrupted == faults.dropped == 0


def test_belt_encoder_is_continuous_across_speed_changes_and_predicts_counts():
    belt = BeltEncoder(speed_mm_s=1000, counts_per_mm=2, t0=0.0)
    assert belt.count_at(0.5) == 1000
    belt.set_speed(500, now=0.5)
    assert belt.count_at(0.5) == 1000 and belt.count_at(1.5) == 2000
    assert belt.eta(2000, now=0.5) == pytest.approx(1.5)
    belt.set_speed(0, now=1.0)
    assert belt.eta(5000, now=1.0) is None and belt.count_at(9.0) == 1500


def test_modelled_wire_time_paces_bytes_at_the_baud_rate(tmp_path):
    """2,000 bytes at 115200 baud take 2000 x 10 / 115200 = 174 ms; the pty alone takes ~0."""
    received: list[bytes] = []

    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        wire = PtyWire(str(tmp_path / "line"), 115200, on_receive=received.append)
        wire.plug(loop)
        fd = os.open(str(tmp_path / "line"), os.O_RDWR | os.O_NOCTTY)
        try:
            os.set_blocking(fd, False)
            t0 = time.monotonic()
            os.write(fd, b"x" * 2000)  # host -> MCU
            while sum(map(len, received)) < 2000:
                await asyncio.sleep(0.001)
            inbound = time.monotonic() - t0
            t0 = time.monotonic()
            wire.send(b"y" * 2000)  # MCU -> host
            got = 0
            while got < 2000:
                await asyncio.sleep(0.001)
                try:
                    got += len(os.read(fd, 4096))
                except BlockingIOError:
                    pass
            outbound = time.monotonic() - t0
        finally:
            os.close(fd)
            wire.close()
        return inbound, outbound

    inbound, outbound = asyncio.run(main())
    limit = 2000 * 10 / 115200
    for measured in (inbound, outbound):
        assert limit * 0.97 <= measured <= limit + 0.05
