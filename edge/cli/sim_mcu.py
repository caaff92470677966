"""`wolfpack sim mcu`: the simulated MCU firmware on a pty, until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable


def register(devices: argparse._SubParsersAction) -> None:
    p = devices.add_parser(
        "mcu",
        help="simulated MCU firmware on a pty (encoder, I/O, diverters, watchdog, faults)",
        description="Run the simulated MCU firmware behind a pty whose stable symlink is "
        "--link. Point 'wolfpack mcu ...' or a board config's mcus[].port at that path. "
        "Wire time is modelled at --baud (a pty has none of its own); faults are injected on "
        "request. Runs until Ctrl-C or SIGTERM.",
        epilog="example: wolfpack sim mcu --link /tmp/wp-mcu --baud 250000 --noise 0.001",
    )
    p.add_argument("--link", required=True, help="symlink path to create, e.g. /tmp/wp-mcu")
    p.add_argument(
        "--baud",
        type=int,
        default=None,
        help="model the wire time of this baud rate (bytes x 10 / baud); default: unlimited",
    )
    p.add_argument(
        "--noise", type=float, default=0.0, help="corrupted-byte rate per byte, both directions"
    )
    p.add_argument("--drop", type=float, default=0.0, help="dropped-byte rate per byte")
    p.add_argument("--seed", type=int, default=None, help="seed the fault generator")
    p.add_argument(
        "--watchdog-ms",
        type=int,
        default=500,
        help="watchdog until the host sets its own (default 500)",
    )
    p.add_argument("--belt-speed", type=float, default=500.0, help="belt speed in mm/s")
    p.add_argument("--counts-per-mm", type=float, default=1.0, help="encoder resolution")
    p.add_argument("--drift-ppm", type=float, default=40.0, help="MCU crystal error in ppm")
    p.add_argument(
        "--stall-every", type=float, default=0.0, metavar="S", help="stall the line every S s"
    )
    p.add_argument("--stall-for", type=float, default=0.2, metavar="S", help="stall length")
    p.add_argument(
        "--unplug-every", type=float, default=0.0, metavar="S", help="unplug every S seconds"
    )
    p.add_argument(
        "--unplug-for", type=float, default=0.5, metavar="S", help="replug after S seconds"
    )
    p.add_argument(
        "--reset-every", type=float, default=0.0, metavar="S", help="reset the MCU every S s"
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="ask the OS for real-time scheduling (needs root or CAP_SYS_NICE), so scheduled "
        "actions stay sub-millisecond on a loaded machine, as on a real MCU",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sim_hardware.mcu import SimMcu, SimMcuOptions
    from sim_hardware.mcu.device import request_realtime

    for name in ("noise", "drop"):
        if not 0.0 <= getattr(args, name) < 1.0:
            print(f"wolfpack sim mcu: --{name} must be in [0, 1)", file=sys.stderr)
            return 2
    opts = SimMcuOptions(
        link=args.link,
        baud=args.baud,
        noise=args.noise,
        drop=args.drop,
        seed=args.seed,
        watchdog_ms=args.watchdog_ms,
        belt_speed_mm_s=args.belt_speed,
        counts_per_mm=args.counts_per_mm,
        drift_ppm=args.drift_ppm,
    )

    if args.realtime and not request_realtime():
        print(
            "wolfpack sim mcu: real-time scheduling not permitted; running without", file=sys.stderr
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sim = SimMcu(opts)
        sim.start()
        print(sim.describe(), flush=True)
        tasks = []

        async def every(period: float, action: Callable[[], object]) -> None:
            while True:
                await asyncio.sleep(period)
                action()

        if args.stall_every > 0:
            tasks.append(
                loop.create_task(every(args.stall_every, lambda: sim.stall(args.stall_for)))
            )
        if args.unplug_every > 0:
            tasks.append(
                loop.create_task(every(args.unplug_every, lambda: sim.unplug(args.unplug_for)))
            )
        if args.reset_every > 0:
            tasks.append(loop.create_task(every(args.reset_every, sim.reset)))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            sim.stop()
            print(f"simulated MCU on {args.link} stopped", flush=True)

    asyncio.run(main())
    return 0
