"""Benchmark of the MCU link over a real pty: acknowledged commands/s and round-trip times.

Runs `wolfpack sim mcu` in its own process (unlimited, and with wire time modelled at
115200 / 250000 / 1000000 baud) and drives it from this process with the real host link.
For each line it prints:
  * acked cmds/s: pings answered per second with up to --inflight outstanding (pipelined);
  * wire limit:   what the line could carry at most: (baud / 10) bytes/s divided by the bytes
                  per command actually sent in the busier direction (frame overhead, ACKs and
                  heartbeats included), i.e. the bytes x 10 / baud bound;
  * ratio:        acked cmds/s / wire limit;
  * RTT p50/p99:  one ping at a time on an otherwise idle link.
Each throughput figure is the median of --repeat runs (the machine is shared).

    .venv/bin/python bench/mcu_link.py [--seconds 2] [--repeat 3]

``--spec-figures`` measures instead the two figures of docs/mcu-protocol.md section 11, with
the host's default timeouts, against the Python firmware or the C host build (--firmware):
  * connect at --noise corrupted bytes per byte (both directions), one sim per seed
    (--seeds), at 250000 baud modelled and without a wire model: connects that succeed,
    their time, the SYN frames resent on an unsynchronised NAK;
  * --pings pings one at a time at 9600 baud: lost pings, and retransmissions on each side
    (any retransmission on a clean line is spurious).

    .venv/bin/python bench/mcu_link.py --spec-figures [--firmware c] [--seeds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_bridge.mcu import McuLink  # noqa: E402
from firmware_bridge.mcu.diagnostics import percentile, run_pings  # noqa: E402
from firmware_bridge.mcu.errors import McuError  # noqa: E402

BAUDS = (None, 115200, 250000, 1000000)


def _wolfpack() -> list[str]:
    exe = Path(sys.executable).with_name("wolfpack")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge.cli.main"]


C_HOST = ROOT / "firmware" / "build" / "host" / "wolfpack-mcu-host"


def start_sim(
    link: str, baud: int | None, *extra: str, firmware: str = "python"
) -> subprocess.Popen:
    if firmware == "c":
        if not C_HOST.exists():
            raise RuntimeError(f"{C_HOST}: build the C host firmware first (make -C firmware)")
        cmd = [str(C_HOST), "--link", link, *extra]
    else:
        cmd = [*_wolfpack(), "sim", "mcu", "--link", link, *extra]
    if baud:
        cmd += ["--baud", str(baud)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.lexists(link):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"simulator did not create {link}")


async def throughput(link: McuLink, seconds: float, inflight: int) -> tuple[float, float, float]:
    """(acked cmds/s, bytes written per cmd, bytes read per cmd) over ``seconds``."""
    loop = asyncio.get_running_loop()
    done = 0
    stop_at = 0.0
    finished = loop.create_future()
    outstanding = 0

    def issue() -> None:
        nonlocal outstanding
        outstanding += 1
        link.request_nowait("ping", data=done).add_done_callback(completed)

    def completed(fut: asyncio.Future) -> None:
        nonlocal done, outstanding
        outstanding -= 1
        if fut.exception() is None:
            done += 1
        if time.monotonic() < stop_at:
            issue()
        elif outstanding == 0 and not finished.done():
            finished.set_result(None)

    w0, r0 = link.bytes_written, link.bytes_read
    start = time.monotonic()
    stop_at = start + seconds
    for _ in range(inflight):
        issue()
    await finished
    elapsed = time.monotonic() - start
    return (
        done / elapsed,
        (link.bytes_written - w0) / done,
        (link.bytes_read - r0) / done,
    )


async def idle_rtts(link: McuLink, count: int) -> list[float]:
    return [await link.ping(i) for i in range(count)]


async def measure(path: str, baud: int | None, seconds: float, repeat: int, inflight: int):
    link = McuLink(path, baud=baud or 250000, clock_interval_s=0)
    await link.connect()
    try:
        await throughput(link, 0.3, inflight)  # warm-up
        runs = [await throughput(link, seconds, inflight) for _ in range(repeat)]
        rtts = await idle_rtts(link, 500)
    finally:
        await link.close()
    return runs, rtts


async def one_connect(path: str) -> tuple[bool, float, dict[str, int], str]:
    """(connected, seconds, host counters, error) with the host's defaults."""
    link = McuLink(path)
    start = time.monotonic()
    try:
        await link.connect()
    except McuError as exc:
        return False, time.monotonic() - start, link.endpoint.counters.as_dict(), str(exc)
    took = time.monotonic() - start
    await link.close()
    return True, took, link.endpoint.counters.as_dict(), ""


def connect_figures(args: argparse.Namespace, tmp: str, baud: int | None) -> None:
    ok, times, resends, unaks = 0, [], 0, 0
    failures = []
    for seed in range(args.seeds):
        path = os.path.join(tmp, f"noise-{baud}-{seed}")
        extra = ("--noise", str(args.noise), "--seed", str(seed))
        proc = start_sim(path, baud, *extra, firmware=args.firmware)
        try:
            good, took, counters, err = asyncio.run(one_connect(path))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        ok += good
        times.append(took)
        resends += counters["syn_resends"]
        unaks += counters["unaks_sent"]
        if not good:
            failures.append(f"seed {seed}: {err}")
    line = f"{baud} baud modelled" if baud else "no wire model"
    print(
        f"connect at {args.noise:g} byte noise, {line}: {ok}/{args.seeds} seeds; time p50 "
        f"{percentile(times, 50) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; host sent "
        f"{unaks} unsynchronised NAKs, resent its SYN {resends} times on one",
        flush=True,
    )
    for failure in failures:
        print("  failed:", failure)


async def slow_pings(path: str, baud: int, count: int) -> tuple[Any, dict[str, int]]:
    async with McuLink(path, baud=baud) as link:
        report = await run_pings(link, count)
        return report, link.endpoint.counters.as_dict()


def ping_figures(args: argparse.Namespace, tmp: str, baud: int) -> None:
    path = os.path.join(tmp, f"slow-{baud}")
    proc = start_sim(path, baud, firmware=args.firmware)
    try:
        report, host = asyncio.run(slow_pings(path, baud, args.pings))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    mcu = report.mcu or {}
    print(
        f"{args.pings} pings at {baud} baud: {report.completed} completed, {report.lost} lost "
        f"in {report.seconds:.1f} s (RTT p50 {percentile(report.rtts, 50) * 1000:.1f} ms, "
        f"p99 {percentile(report.rtts, 99) * 1000:.1f} ms); retransmissions: host "
        f"{host['retransmits']} ({host['timeouts']} timeouts), MCU "
        f"{mcu.get('retransmits', '?')}",
        flush=True,
    )


def spec_figures(args: argparse.Namespace) -> int:
    print(f"spec figures, {args.firmware} firmware, host defaults, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for baud in (250000, None):
            connect_figures(args, tmp, baud)
        ping_figures(args, tmp, 9600)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one throughput run")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per line (median)")
    ap.add_argument("--inflight", type=int, default=2000, help="pings outstanding at once")
    ap.add_argument("--spec-figures", action="store_true", help="noise connects, 9600 baud")
    ap.add_argument("--firmware", choices=("python", "c"), default="python")
    ap.add_argument("--seeds", type=int, default=20, help="--spec-figures: connects")
    ap.add_argument("--noise", type=float, default=0.01, help="--spec-figures: byte noise")
    ap.add_argument("--pings", type=int, default=2000, help="--spec-figures: pings at 9600")
    args = ap.parse_args()
    if args.spec_figures:
        return spec_figures(args)
    print(
        f"MCU link over a pty, host and simulated MCU in separate processes, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} x {args.seconds:g} s runs, "
        f"{args.inflight} in flight"
    )
    header = (
        f"{'line':>14} {'acked cmds/s':>13} {'runs':>22} {'B/cmd out/in':>13} "
        f"{'wire limit/s':>12} {'ratio':>6} {'RTT p50 ms':>10} {'RTT p99 ms':>10}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for baud in BAUDS:
            path = os.path.join(tmp, f"mcu-{baud or 'unlimited'}")
            proc = start_sim(path, baud)
            try:
                runs, rtts = asyncio.run(measure(path, baud, args.seconds, args.repeat,
                                                 args.inflight))  # fmt: skip
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
            rate = statistics.median(r[0] for r in runs)
            out_b = statistics.median(r[1] for r in runs)
            in_b = statistics.median(r[2] for r in runs)
            if baud:
                limit = baud / 10 / max(out_b, in_b)
                limit_s, ratio_s = f"{limit:12.0f}", f"{rate / limit:6.1%}"
            else:
                limit_s, ratio_s = f"{'-':>12}", f"{'-':>6}"
            line = f"{baud} baud" if baud else "unlimited"
            each = "/".join(f"{r[0]:.0f}" for r in runs)
            print(
                f"{line:>14} {rate:13.0f} {each:>22} {out_b:6.2f}/{in_b:<6.2f} {limit_s} "
                f"{ratio_s} {percentile(rtts, 50) * 1000:10.3f} "
                f"{percentile(rtts, 99) * 1000:10.3f}",
                flush=True,
            )
    print("goals: >= 90% of the wire limit at 115200 baud; >= 5,000 acked cmds/s unlimited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
