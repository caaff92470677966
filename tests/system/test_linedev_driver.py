"""The line-device driver against the simulated scanner, over a real pty and loopback TCP."""

from __future__ import annotations

import asyncio
import os

import pytest

from firmware_bridge.linedev import (
    LineDevice,
    LineDeviceConfig,
    LineError,
    NoRead,
    Read,
    StateChange,
)
from sim_hardware.scanner import ScannerOptions, SimScanner


def _config(scanner: SimScanner, **extra: object) -> LineDeviceConfig:
    o = scanner.options
    link: dict[str, object]
    if o.link is not None:
        link = {"serial": {"port": o.link, "baud": 115200}}
    else:
        link = {"tcp": {"host": "127.0.0.1", "port": scanner.tcp_port}}
    return LineDeviceConfig.model_validate(
        {
            "name": "scanner-1",
            "framing": o.framing,
            "no_read_token": o.no_read_token,
            "reconnect": {"min_s": 0.05, "max_s": 0.2},
            **link,
            **extra,
        }
    )


async def _next(dev: LineDevice, kind: type, timeout: float = 3.0) -> object:
    """The next event of ``kind``, skipping others; fails after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            ev = await dev.next_event()
            if isinstance(ev, kind):
                return ev


@pytest.fixture(params=["pty", "tcp"])
def where(request, tmp_path):
    return {"link": str(tmp_path / "scanner")} if request.param == "pty" else {"tcp_port": 0}


@pytest.mark.parametrize("framing", ["crlf", "stx-etx"])
def test_every_scanned_label_arrives_in_order_with_timestamps(where, framing):
    labels = [f"1Z{n:08d}" for n in range(300)]

    async def main() -> None:
        sim = await SimScanner(ScannerOptions(framing=framing, **where)).start()
        try:
            async with LineDevice(_config(sim)) as dev:
                assert await dev.wait_connected(3)
                await asyncio.sleep(0.05)  # TCP: the server has registered the client
                for i, label in enumerate(labels):
                    sim.scan(label)
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                reads = [await _next(dev, Read) for _ in labels]
        finally:
            sim.stop()
        assert [r.text for r in reads] == labels
        assert all(r.raw == r.text.encode() for r in reads)
        monos = [r.mono_time for r in reads]
        assert monos == sorted(monos) and all(r.wall_time > 1e9 for r in reads)
        assert dev.stats.errors == 0

    asyncio.run(main())


def test_no_read_rate_shows_as_no_reads_with_cause_token(where):
    async def main() -> None:
        sim = await SimScanner(ScannerOptions(no_read_rate=0.3, seed=7, **where)).start()
        try:
            async with LineDevice(_config(sim)) as dev:
                assert await dev.wait_connected(3)
                await asyncio.sleep(0.05)
                got = []
                for n in range(400):
                    sim.scan(f"P{n}")
                    got.append(await _next(dev, (Read, NoRead)))
        finally:
            sim.stop()
        no_reads = [g for g in got if isinstance(g, NoRead)]
        assert all(g.cause == "token" and g.raw == b"NoRead" for g in no_reads)
        assert len(no_reads) == sim.stats.no_reads and 80 <= len(no_reads) <= 160
        # what the host saw is exactly what the scanner sent
        assert [g.text if isinstance(g, Read) else "NoRead" for g in got] == sim.sent

    asyncio.run(main())


def test_trigger_reads_the_label_in_view_or_times_out(where):
    async def main() -> None:
        opts = ScannerOptions(trigger_command="\x16T\r", decode_ms=20, **where)
        sim = await SimScanner(opts).start()
        trigger = {"command": "\x16T\r", "stop_command": "\x16U\r", "timeout_ms": 200}
        cfg = _config(sim, trigger=trigger)
        try:
            async with LineDevice(cfg) as dev:
                assert await dev.wait_connected(3)
                await asyncio.sleep(0.05)
                sim.scan("LABEL-1")
                first = await dev.trigger()
                assert isinstance(first, Read) and first.text == "LABEL-1"
                empty = await dev.trigger()  # nothing in view: the scanner says NoRead
                assert isinstance(empty, NoRead) and empty.cause == "token"
                sim.set_silent(True)
                sim.scan("LABEL-2")
                t0 = asyncio.get_running_loop().time()
                late = await dev.trigger()
                waited = asyncio.get_running_loop().time() - t0
                assert isinstance(late, NoRead) and late.cause == "timeout"
                assert 0.19 <= waited < 1.0
                await asyncio.sleep(0.05)
                assert bytes(sim.received) == b"\x16T\r" * 3 + b"\x16U\r"
                assert sim.stats.triggers == 3 and dev.stats.triggers == 3
        finally:
            sim.stop()

    asyncio.run(main())


def test_unplug_is_reported_and_the_line_comes_back_by_itself(where):
    async def main() -> None:
        sim = await SimScanner(ScannerOptions(**where)).start()
        try:
            async with LineDevice(_config(sim)) as dev:
                up = await _next(dev, StateChange)
                assert up.state == "connected"
                await asyncio.sleep(0.05)
                sim.scan("BEFORE")
                assert (await _next(dev, Read)).text == "BEFORE"
                sim.unplug(0.4)
                down = await _next(dev, StateChange)
                assert down.state == "disconnected" and down.reason
                back = await _next(dev, StateChange, timeout=5)
                assert back.state == "connected"
                await asyncio.sleep(0.1)
                sim.scan("AFTER")
                assert (await _next(dev, Read)).text == "AFTER"
                assert dev.stats.connects >= 2 and dev.stats.losses >= 1
        finally:
            sim.stop()

    asyncio.run(main())


def test_a_silent_device_is_reopened_after_idle_timeout(tmp_path):
    async def main() -> None:
        sim = await SimScanner(ScannerOptions(link=str(tmp_path / "s"))).start()
        try:
            async with LineDevice(_config(sim, idle_timeout_s=0.3)) as dev:
                assert (await _next(dev, StateChange)).state == "connected"
                down = await _next(dev, StateChange, timeout=2)
                assert down.state == "disconnected" and "silent" in down.reason
                assert (await _next(dev, StateChange, timeout=3)).state == "connected"
        finally:
            sim.stop()

    asyncio.run(main())


def test_garbage_and_oversize_lines_are_errors_and_the_next_read_survives(where):
    async def main() -> None:
        sim = await SimScanner(ScannerOptions(**where)).start()
        try:
            async with LineDevice(_config(sim, max_line_length=32)) as dev:
                assert await dev.wait_connected(3)
                await asyncio.sleep(0.05)
                sim.send_raw(b"X" * 100 + b"\r\n")
                sim.send_raw(os.urandom(8).replace(b"\n", b"") + b"\xff\r\n")
                sim.scan("GOOD")
                oversize = await _next(dev, LineError)
                assert oversize.kind == "oversize" and "100 bytes" in oversize.detail
                bad = await _next(dev, LineError)
                assert bad.kind == "undecodable" and "0x" in bad.detail
                assert (await _next(dev, Read)).text == "GOOD"
        finally:
            sim.stop()

    asyncio.run(main())


def test_nothing_listening_is_reported_once_and_retried_until_it_appears(tmp_path):
    async def main() -> None:
        link = str(tmp_path / "late")
        cfg = LineDeviceConfig.model_validate(
            {"name": "late", "serial": {"port": link}, "reconnect": {"min_s": 0.05, "max_s": 0.1}}
        )
        async with LineDevice(cfg) as dev:
            first = await _next(dev, StateChange)
            assert first.state == "disconnected" and "no such serial port" in first.reason
            await asyncio.sleep(0.4)  # several attempts, no repeated events
            assert dev._queue.qsize() == 0
            sim = await SimScanner(ScannerOptions(link=link)).start()
            try:
                assert (await _next(dev, StateChange, timeout=3)).state == "connected"
            finally:
                sim.stop()

    asyncio.run(main())


def test_a_refused_tcp_connection_is_reported_with_its_cause():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        cfg = LineDeviceConfig.model_validate(
            {"name": "gone", "tcp": {"host": "127.0.0.1", "port": port}}
        )
        async with LineDevice(cfg) as dev:
            ev = await _next(dev, StateChange)
            assert ev.state == "disconnected"
            assert f"tcp://127.0.0.1:{port}" in ev.reason and "refused" in ev.reason.lower()
            with pytest.raises(RuntimeError, match="no trigger configured"):
                await dev.trigger()

    asyncio.run(main())


def test_a_partial_line_at_stop_is_reported_not_dropped(where):
    async def main() -> None:
        sim = await SimScanner(ScannerOptions(**where)).start()
        try:
            dev = await LineDevice(_config(sim)).start()
            assert await dev.wait_connected(3)
            await asyncio.sleep(0.05)
            sim.send_raw(b"HALF-A-LAB")
            await asyncio.sleep(0.1)
            await dev.stop()
            err = await _next(dev, LineError)
            assert err.kind == "incomplete" and err.raw == b"HALF-A-LAB"
            assert (await _next(dev, StateChange)).state == "stopped"
        finally:
            sim.stop()

    asyncio.run(main())
