"""The host link while it waits for identify_response, over a bare pty whose far end the test
reads (docs/mcu-protocol.md 3.3): a keep-alive when the line is quiet, none while bytes come."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import tty

from firmware_bridge.mcu import McuLink, McuTimeout
from firmware_bridge.mcu.framing import FLAG_SYN, FrameDecoder, encode_frame


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


async def _handshake_frames(feed: bytes | None, seconds: float) -> list[tuple[float, int]]:
    """(time, flags) of every frame the link sends while connecting to a silent far end
    (or one that keeps sending ``feed`` every 5 ms)."""
    master, name = _pty()
    link = McuLink(name, watchdog_ms=100, heartbeat_ms=25)
    decoder = FrameDecoder()
    seen: list[tuple[float, int]] = []
    start = time.monotonic()
    task = asyncio.create_task(link.connect(timeout=seconds))
    try:
        while not task.done():
            await asyncio.sleep(0.005)
            if feed is not None:
                os.write(master, feed)
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                continue
            for frame in decoder.feed(data)[0]:
                seen.append((time.monotonic() - start, frame.flags))
        try:
            await task
        except McuTimeout:
            pass
    finally:
        os.close(master)
    return seen


def test_a_quiet_handshake_sends_an_unsynchronised_nak_every_heartbeat():
    seen = asyncio.run(_handshake_frames(None, 0.4))
    unaks = [t for t, flags in seen if flags == 0x03]
    assert seen[0][1] == FLAG_SYN  # the SYN identify first
    assert len(unaks) >= 8, seen  # ~every 25 ms over 0.4 s
    gaps = [b - a for a, b in itertools.pairwise(unaks)]
    assert max(gaps) < 0.1


def test_no_keep_alive_while_bytes_arrive():
    # bytes keep coming (line noise without a frame start): the answer may be on its way
    seen = asyncio.run(_handshake_frames(b"\x00\x11\x22", 0.3))
    assert [flags for _, flags in seen if flags == 0x03] == []


def test_an_old_sessions_frames_ask_for_the_syn_answer_at_most_once_per_5_ms():
    old = encode_frame(9, 0, b"\x83" + bytes(17))  # an encoder report for a gone host
    seen = asyncio.run(_handshake_frames(old, 0.3))
    unaks = [t for t, flags in seen if flags == 0x03]
    assert unaks
    assert min(b - a for a, b in itertools.pairwise(unaks)) >= 0.004
