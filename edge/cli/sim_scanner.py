"""`wolfpack sim scanner`: a simulated fixed barcode scanner on a pty and/or TCP port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys


def register(devices: argparse._SubParsersAction) -> None:
    p = devices.add_parser(
        "scanner",
        help="simulated barcode scanner on a pty and/or TCP port (no-read rate, trigger mode)",
        description="Run a simulated fixed barcode scanner that reports each read as a line. "
        "It listens on a pty behind the stable symlink --link and/or a TCP port, so "
        "'wolfpack linedev listen' and a board config's line_devices[] reach it as they would "
        "a real one. Labels pass it every --every seconds (WP000001, WP000002, ...); at "
        "--no-read-rate it reports its no-read token instead. With --trigger it reads only "
        "when the host sends that command. Runs until Ctrl-C or SIGTERM.",
        epilog="examples:\n"
        "  wolfpack sim scanner --link /tmp/wp-scanner --every 0.5 --no-read-rate 0.02\n"
        "  wolfpack sim scanner --tcp-port 51236 --framing stx-etx --trigger '\\x16T\\r'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--link", help="pty symlink path to create, e.g. /tmp/wp-scanner")
    p.add_argument(
        "--tcp-port", type=int, default=None, help="TCP port to listen on (0: any free port)"
    )
    p.add_argument("--host", default="127.0.0.1", help="TCP address to listen on (127.0.0.1)")
    p.add_argument(
        "--framing", choices=["crlf", "cr", "lf", "stx-etx"], default="crlf", help="(crlf)"
    )
    p.add_argument(
        "--no-read-rate", type=float, default=0.0, metavar="R", help="share of no-reads in [0, 1]"
    )
    p.add_argument("--no-read-token", default="NoRead", help="sent for a no-read (NoRead)")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="R",
        help="share of readings that come with a garbage line in [0, 1]: printable junk, "
        "NUL-only, control bytes, over-long (default 0)",
    )
    p.add_argument(
        "--trigger",
        default=None,
        metavar="CMD",
        help="trigger mode: read only on this command (escapes like \\x16 and \\r allowed)",
    )
    p.add_argument(
        "--every", type=float, default=1.0, metavar="S", help="a label passes every S s (1.0)"
    )
    p.add_argument("--prefix", default="WP", help="label text prefix (WP)")
    p.add_argument("--decode-ms", type=float, default=0.0, help="delay before each reading")
    p.add_argument("--baud", type=int, default=None, help="model the pty's wire time")
    p.add_argument("--seed", type=int, default=None, help="seed the no-read draws")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sim_hardware.scanner import ScannerOptions, SimScanner

    if args.link is None and args.tcp_port is None:
        print("wolfpack sim scanner: give --link PATH, --tcp-port N, or both", file=sys.stderr)
        return 2
    if not 0.0 <= args.no_read_rate <= 1.0:
        print("wolfpack sim scanner: --no-read-rate must be in [0, 1]", file=sys.stderr)
        return 2
    if not 0.0 <= args.noise <= 1.0:
        print("wolfpack sim scanner: --noise must be in [0, 1]", file=sys.stderr)
        return 2
    if args.every <= 0:
        print("wolfpack sim scanner: --every must be positive", file=sys.stderr)
        return 2
    trigger = None
    if args.trigger:
        from edge.cli.linedev_cmd import parse_escapes

        try:
            trigger = parse_escapes(args.trigger)
        except ValueError as exc:
            print(f"wolfpack sim scanner: --trigger {args.trigger!r}: {exc}", file=sys.stderr)
            return 2
    opts = ScannerOptions(
        link=args.link,
        tcp_port=args.tcp_port,
        host=args.host,
        framing=args.framing,
        no_read_rate=args.no_read_rate,
        no_read_token=args.no_read_token,
        trigger_command=trigger,
        decode_ms=args.decode_ms,
        baud=args.baud,
        seed=args.seed,
        noise_rate=args.noise,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            sim = await SimScanner(opts).start()
        except OSError as exc:
            print(f"wolfpack sim scanner: cannot listen: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(sim.describe(), flush=True)

        async def labels() -> None:
            n = 0
            while True:
                await asyncio.sleep(args.every)
                n += 1
                sim.scan(f"{args.prefix}{n:06d}")

        task = loop.create_task(labels())
        try:
            await stop.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sim.stop()
            s = sim.stats
            print(
                f"simulated scanner stopped: {s.scans} labels, {s.reads} reads, "
                f"{s.no_reads} no-reads, {s.triggers} triggers, {s.noise} garbage lines",
                flush=True,
            )

    asyncio.run(main())
    return 0
