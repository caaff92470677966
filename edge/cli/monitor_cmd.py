"""`wolfpack monitor`: a live terminal view of a site's fleet over MQTT."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "monitor",
        help="live view of a site's nodes: online, session, last seen, parcels/min, faults",
        description="Watch every node of a site through the broker: online or not (retained "
        "state and last will), session number, when it was last heard, parcels per minute, "
        "active faults, outbox depth and dropped messages. Read-only: it sends no commands.",
        epilog="examples:\n"
        "  wolfpack monitor --broker mqtt://127.0.0.1:1883 --site sim\n"
        "  wolfpack monitor --broker mqtts://mqtt.dc-berlin.example:8883 --site dc-berlin \\\n"
        "      --username monitor --password-file ~/.wolfpack-monitor --ca-file ca.crt\n"
        "  wolfpack monitor --broker mqtt://127.0.0.1:1883 --site sim --once   # one table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    parser.add_argument("--site", required=True, help="site id, the 3rd topic level")
    parser.add_argument("--username", help="broker credential (the ACL's read-only 'monitor')")
    parser.add_argument("--password-file", type=Path, help="file holding the password")
    parser.add_argument("--ca-file", help="CA certificate for an mqtts:// broker")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default: 2)"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--once",
        action="store_true",
        help="listen for --settle seconds, print one table and exit (for scripts)",
    )
    when.add_argument("--duration", type=float, help="refresh for this many seconds, then exit")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="with --once: how long to listen first (default: 2 s)",
    )
    parser.set_defaults(handler=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from fleet_link.brain import Brain
    from fleet_link.monitor import FleetView, render

    view = FleetView()
    try:
        password = (
            args.password_file.read_text(encoding="utf-8").strip() if args.password_file else None
        )
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"wolfpack monitor: --password-file {args.password_file}: {reason}", file=sys.stderr)
        return 2
    try:
        brain = Brain(
            args.broker,
            args.site,
            on_message=view.on_message,
            on_state=view.on_state,
            username=args.username,
            password=password,
            ca_file=args.ca_file,
            request_replays=False,
        )
    except ValueError as exc:  # a site that is no topic level, a broker URL that is no URL
        print(f"wolfpack monitor: {exc}", file=sys.stderr)
        return 2

    def table() -> str:
        rejected = brain.rejected.snapshot()
        for reason, n in view.rejected.snapshot().items():
            rejected[reason] = rejected.get(reason, 0) + n
        return render(view.rows(), args.site, rejected)

    try:
        brain.start(wait_s=10)
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"wolfpack monitor: cannot connect to {args.broker}: {exc}", file=sys.stderr)
        return 1
    live = sys.stdout.isatty() and not args.once
    try:
        if args.once:
            time.sleep(args.settle)
            print(table())
            return 0
        end = time.monotonic() + args.duration if args.duration else None
        while end is None or time.monotonic() < end:
            stamp = time.strftime("%H:%M:%S")
            if live:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(f"{stamp}  {table()}\n", flush=True)
            time.sleep(
                args.interval
                if end is None
                else min(args.interval, max(0.0, end - time.monotonic()))
            )
        return 0
    finally:
        brain.stop()
