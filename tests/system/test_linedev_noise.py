"""Finding 8 of issue 13, on the real driver over a pty: a scanner's line noise (printable junk,
NUL-only lines, control bytes, over-long lines) never comes out as a reading. Every label
arrives, in order; every garbage line is a counted error. Without a ``label_pattern`` only
printable junk gets through (it looks like a label), which is what the pattern is for."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.linedev import LineDevice, LineDeviceConfig, LineError, Read
from firmware_bridge.linedev.reading import INVALID
from sim_hardware.scanner import ScannerOptions, SimScanner

PATTERN = r"[0-9]{6}|WP[0-9]{10}"


@pytest.mark.parametrize("pattern", [PATTERN, None], ids=["pattern", "no-pattern"])
def test_noise_lines_are_refused_and_every_label_arrives(tmp_path, pattern: str | None) -> None:
    labels = [f"{n:06d}" if n % 2 else f"WP{n:010d}" for n in range(300)]

    async def main() -> None:
        link = str(tmp_path / "scanner")
        sim = await SimScanner(ScannerOptions(link=link, seed=11)).start()
        cfg = LineDeviceConfig.model_validate(
            {
                "name": "scanner-1",
                "serial": {"port": link, "baud": 115200},
                "label_pattern": pattern,
                "reconnect": {"min_s": 0.05, "max_s": 0.2},
            }
        )
        try:
            async with LineDevice(cfg) as dev:
                assert await dev.wait_connected(5)
                sim.set_noise(0.3)
                for i, label in enumerate(labels):
                    sim.scan(label)
                    if i % 25 == 0:
                        sim.send_noise(2)  # two garbage lines in a row, between readings
                    await asyncio.sleep(0)
                sim.set_noise(0)
                sim.scan("999999")  # the end marker
                reads: list[str] = []
                errors: list[LineError] = []
                async with asyncio.timeout(10):
                    while not reads or reads[-1] != "999999":
                        ev = await dev.next_event()
                        if isinstance(ev, Read):
                            reads.append(ev.text)
                        elif isinstance(ev, LineError):
                            errors.append(ev)
                noise, kinds = sim.stats.noise, sim.noise_kinds
                assert noise > 80
                junk = kinds["junk"]
                if pattern is None:
                    # printable junk is indistinguishable from a label without a pattern
                    assert [r for r in reads if not r.startswith("1NOISE")] == [*labels, "999999"]
                    assert len(reads) == len(labels) + 1 + junk
                    assert len(errors) == noise - junk
                else:
                    assert reads == [*labels, "999999"]
                    assert len(errors) == noise
                oversize = [e for e in errors if e.kind == "oversize"]
                assert len(oversize) == kinds["oversize"]
                refused = [e for e in errors if e.kind == INVALID]
                assert len(refused) == len(errors) - len(oversize) == dev.stats.refused
                assert dev.stats.errors == len(errors) and dev.stats.reads == len(reads)
        finally:
            sim.stop()

    asyncio.run(main())


def test_the_cli_scanner_sends_noise_and_listen_counts_it_as_errors(tmp_path) -> None:
    import json
    import re
    import signal
    import subprocess

    from tests.system.test_linedev_cli import _wolfpack

    link = tmp_path / "scanner"
    sim = subprocess.Popen(
        [*_wolfpack(), "sim", "scanner", "--link", str(link), "--every", "0.02", "--noise", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None and "noise rate 1" in sim.stdout.readline()
        out = subprocess.run(
            [*_wolfpack(), "linedev", "listen", "--port", str(link), "--count", "20", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        events = [json.loads(line) for line in out.stdout.splitlines()]
        reads = [e["text"] for e in events if e["event"] == "read"]
        assert len(reads) == 20 and all(re.fullmatch(r"WP\d{6}|1NOISE..", r) for r in reads)
        assert events[-1]["errors"] > 0  # NUL-only, control and over-long lines, refused
        assert all("\x00" not in line for line in out.stdout.splitlines())
    finally:
        sim.send_signal(signal.SIGTERM)
        tail = sim.communicate(timeout=10)[0]
    assert re.search(r"[1-9]\d* garbage lines", tail), tail
