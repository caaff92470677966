"""Property: the simulated scanner counts each trigger command once, however it is chunked."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.scanner import ScannerOptions, SimScanner

TRIGGER = b"\x16T\r"


@given(
    parts=st.lists(
        st.one_of(st.just(TRIGGER), st.binary(max_size=8).filter(lambda b: b"\x16" not in b)),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_every_trigger_is_counted_once_whatever_the_chunking(parts, cuts):
    stream = b"".join(parts)
    points = sorted({c % (len(stream) + 1) for c in cuts})

    async def run() -> SimScanner:
        sim = SimScanner(ScannerOptions(tcp_port=0, trigger_command="\x16T\r"))
        last = 0
        for p in [*points, len(stream)]:
            sim._on_receive(stream[last:p])  # the bytes as the line delivers them
            last = p
        return sim

    sim = asyncio.run(run())
    assert sim.stats.triggers == parts.count(TRIGGER)
    assert sim.sent == ["NoRead"] * parts.count(TRIGGER)  # nothing in view: a no-read each
