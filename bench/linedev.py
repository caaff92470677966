"""Benchmark of the line-device stack: the framing decoder, and readings end to end.

1. Decoder: 20,000 labels of 24 bytes, fed in chunks of 1, 16 and 4096 bytes (a pty
   delivers what has arrived; at 9600 baud that is often a byte or two). For each framing it
   prints lines/s of our LineDecoder and of two peers measured in the same run on the same
   chunks: asyncio.StreamReader.readuntil (what a plain asyncio driver would use) and
   pyserial's serial.threaded.LineReader/Packetizer (buffer, find the terminator, split).
   Neither peer limits the line length, reports errors, or handles STX/ETX; the ratio is
   ours / peer (above 1: ours is faster).
2. End to end: the simulated scanner and the driver in one asyncio loop, over a real pty and
   over loopback TCP: readings/s when labels are scanned back to back, and the latency from
   scan() to the Read event (p50/p99) at 200 labels/s.
Each figure is the median of --repeat runs (the machine is shared; expect noise).

    .venv/bin/python bench/linedev.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serial.threaded import LineReader  # noqa: E402

from firmware_bridge.linedev import LineDevice, LineDeviceConfig, Read  # noqa: E402
from firmware_bridge.linedev.framing import LineDecoder, encode  # noqa: E402
from sim_hardware.scanner import ScannerOptions, SimScanner  # noqa: E402

N_LINES = 20_000


def _stream(framing: str) -> bytes:
    return b"".join(encode(f"1Z{n:010d}ABCDEFGHIJKL".encode(), framing) for n in range(N_LINES))


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_ours(chunks: list[bytes], framing: str) -> float:
    dec = LineDecoder(framing, 256)
    t0 = time.perf_counter()
    n = 0
    for c in chunks:
        n += len(dec.feed(c))
    dt = time.perf_counter() - t0
    assert n == N_LINES
    return n / dt


def bench_streamreader(chunks: list[bytes], framing: str) -> float:
    sep = b"\x03" if framing == "stx-etx" else b"\r\n"

    async def run() -> float:
        reader = asyncio.StreamReader(limit=1 << 20)
        t0 = time.perf_counter()
        n = 0
        for c in chunks:
            reader.feed_data(c)
            while True:
                buf = reader._buffer  # what readuntil would find without waiting
                if sep not in buf:
                    break
                await reader.readuntil(sep)
                n += 1
        dt = time.perf_counter() - t0
        assert n == N_LINES
        return n / dt

    return asyncio.run(run())


def bench_pyserial(chunks: list[bytes], framing: str) -> float:
    count = [0]

    class Counter(LineReader):
        TERMINATOR = b"\x03" if framing == "stx-etx" else b"\r\n"

        def handle_packet(self, packet: bytes) -> None:
            count[0] += 1

    proto = Counter()
    t0 = time.perf_counter()
    for c in chunks:
        proto.data_received(c)
    dt = time.perf_counter() - t0
    assert count[0] == N_LINES
    return count[0] / dt


async def end_to_end(where: str, tmp: str) -> tuple[float, float, float]:
    opts = (
        ScannerOptions(link=f"{tmp}/scanner-bench")
        if where == "pty"
        else ScannerOptions(tcp_port=0)
    )
    sim = await SimScanner(opts).start()
    link = (
        {"serial": {"port": opts.link, "baud": 115200}}
        if where == "pty"
        else {"tcp": {"host": "127.0.0.1", "port": sim.tcp_port}}
    )
    cfg = LineDeviceConfig.model_validate({"name": "bench", **link})
    try:
        async with LineDevice(cfg) as dev:
            assert await dev.wait_connected(5)
            await asyncio.sleep(0.05)
            # throughput: 5,000 labels back to back, 100 per loop turn
            total = 5000
            t0 = time.perf_counter()
            got = 0
            for i in range(total):
                sim.scan(f"1Z{i:010d}")
                if i % 100 == 99:
                    await asyncio.sleep(0)
            while got < total:
                ev = await dev.next_event(5)
                assert ev is not None, f"{where}: only {got} of {total} readings arrived"
                got += isinstance(ev, Read)
            rate = total / (time.perf_counter() - t0)
            # latency: one label every 5 ms
            lat = []
            for i in range(400):
                t = time.monotonic()
                sim.scan(f"L{i}")
                while True:
                    ev = await dev.next_event(5)
                    assert ev is not None
                    if isinstance(ev, Read):
                        lat.append((ev.mono_time - t) * 1000)
                        break
                await asyncio.sleep(0.005)
            lat.sort()
            return rate, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    finally:
        sim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    med = statistics.median

    print(f"Decoder: {N_LINES} labels of 24 bytes; lines/s (median of {args.repeat})")
    print(
        f"{'framing':<8} {'chunk':>6} {'ours':>11} {'readuntil':>11} {'pyserial':>11} "
        f"{'/readuntil':>10} {'/pyserial':>9}"
    )
    for framing in ("crlf", "stx-etx"):
        data = _stream(framing)
        for size in (1, 16, 4096):
            chunks = _chunks(data, size)
            ours = med(bench_ours(chunks, framing) for _ in range(args.repeat))
            peer = med(bench_streamreader(chunks, framing) for _ in range(args.repeat))
            pys = med(bench_pyserial(chunks, framing) for _ in range(args.repeat))
            print(
                f"{framing:<8} {size:>6} {ours:>11,.0f} {peer:>11,.0f} {pys:>11,.0f} "
                f"{ours / peer:>10.2f} {ours / pys:>9.2f}"
            )

    print(f"\nEnd to end, simulated scanner -> driver, one loop (median of {args.repeat})")
    print(f"{'line':<5} {'readings/s':>11} {'latency p50 ms':>15} {'p99 ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for where in ("pty", "tcp"):
            runs = [asyncio.run(end_to_end(where, tmp)) for _ in range(args.repeat)]
            rate = med(r[0] for r in runs)
            p50 = med(r[1] for r in runs)
            p99 = med(r[2] for r in runs)
            print(f"{where:<5} {rate:>11,.0f} {p50:>15.3f} {p99:>8.3f}")


if __name__ == "__main__":
    main()
