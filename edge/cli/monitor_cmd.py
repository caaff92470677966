"""`wolfpack monitor`: a live terminal view of a site's fleet over MQTT (rich)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge.cli.cmd_cmd import (
    UsageError,
    add_broker_options,
    broker_url,
    read_password,
    start_brain,
)

if TYPE_CHECKING:
    from fleet_link.monitor import FleetView


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "monitor",
        help="live view of a site's nodes: link, safety state, faults, parcels/min, age",
        description="Watch every node of a site through the broker: DEAD at once when a "
        "node's last will arrives, the cell's safety state (ESTOP, FAULT, READY, RUNNING ..., "
        "DEGRADED), active faults, devices missing, parcels sorted / rejected / lost per "
        "minute, the brain's share of decisions, config version, and the age of the newest "
        "message by its own timestamp. Read-only: it sends no commands (docs/operators.md).",
        epilog="examples:\n"
        "  wolfpack monitor --broker 127.0.0.1:1883 --site sim\n"
        "  wolfpack monitor --broker mqtts://mqtt.dc-berlin.example:8883 --site dc-berlin \\\n"
        "      --username monitor --password-file ~/.wolfpack-monitor --ca-file ca.crt\n"
        "  wolfpack monitor --broker 127.0.0.1:1883 --site sim --once          # one table\n"
        "  wolfpack monitor --broker 127.0.0.1:1883 --site sim --once --json   # for scripts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--site", required=True, help="site id, the 3rd topic level")
    add_broker_options(parser, "the ACL's read-only 'monitor', one per tool")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (default: 1)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="seconds of parcel records the per-minute rates are taken over (default: 60)",
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=30.0,
        help="a node silent this long (by its messages' ts) is shown STALE (default: 30)",
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
    parser.add_argument("--json", action="store_true", help="with --once: the rows as JSON")
    parser.set_defaults(handler=_monitor)


def _check(args: argparse.Namespace) -> tuple[str, str | None]:
    from fleet_link import topics

    url = broker_url(args.broker)
    try:
        topics.check_level(args.site, "site")
    except ValueError as exc:
        hint = args.site.lower()
        fits = hint != args.site and topics._LEVEL.match(hint)
        tip = f" (did you mean {hint!r}?)" if fits else ""
        raise UsageError(f"{exc}{tip}") from None
    for name in ("interval", "window", "stale_after", "settle"):
        value = getattr(args, name)
        if not 0 < value <= 86400:
            raise UsageError(f"--{name.replace('_', '-')} {value}: expected 0 < seconds <= 86400")
    if args.duration is not None and not 0 < args.duration <= 10**7:
        raise UsageError(f"--duration {args.duration}: expected a positive number of seconds")
    if args.json and not args.once:
        raise UsageError("--json goes with --once")
    return url, read_password(args)


def _monitor(args: argparse.Namespace) -> int:
    from fleet_link.brain import Brain
    from fleet_link.monitor import FleetView, render, rows_json

    try:
        url, password = _check(args)
    except UsageError as exc:
        print(f"wolfpack monitor: {exc}", file=sys.stderr)
        return 2
    view = FleetView(window_s=args.window, stale_after_s=args.stale_after)
    try:
        brain = Brain(
            url,
            args.site,
            on_message=view.on_message,
            on_state=view.on_state,
            username=args.username,
            password=password,
            ca_file=args.ca_file,
            request_replays=False,
        )
    except (ValueError, OSError) as exc:  # a site that is no topic level, a CA file unread
        print(f"wolfpack monitor: {exc}", file=sys.stderr)
        return 2

    def rejected() -> dict[str, int]:
        counts = brain.rejected.snapshot()
        for reason, n in view.rejected.snapshot().items():
            counts[reason] = counts.get(reason, 0) + n
        return counts

    try:
        start_brain(brain, 10.0)
        view.mark_subscribed()
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"wolfpack monitor: cannot connect to {args.broker}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.once:
            time.sleep(args.settle)
            if args.json:
                print(json.dumps({"site": args.site, "nodes": rows_json(view.rows())}, indent=1))
            else:
                print(render(view.rows(), args.site, rejected()))
            return 0
        end = time.monotonic() + args.duration if args.duration else None
        if sys.stdout.isatty():
            return _live(view, args, rejected, end)
        while end is None or time.monotonic() < end:  # a pipe: a table per refresh
            print(f"{time.strftime('%H:%M:%S')}  {render(view.rows(), args.site, rejected())}\n")
            sys.stdout.flush()
            time.sleep(_pause(args.interval, end))
        return 0
    finally:
        brain.stop()


def _pause(interval: float, end: float | None) -> float:
    return interval if end is None else max(0.0, min(interval, end - time.monotonic()))


def _live(
    view: FleetView, args: argparse.Namespace, rejected: Callable[[], dict[str, int]],
    end: float | None,
) -> int:  # fmt: skip
    """Redraw in place (rich Live) until Ctrl-C or --duration."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    from fleet_link.monitor import table

    def frame() -> Group:
        stamp = Text(f"{time.strftime('%H:%M:%S')}  wolfpack monitor (Ctrl-C quits)", "dim")
        return Group(stamp, table(view.rows(), args.site, rejected(), args.window))

    with Live(frame(), console=Console(), auto_refresh=False) as live:
        while end is None or time.monotonic() < end:
            time.sleep(_pause(args.interval, end))
            live.update(frame(), refresh=True)
    return 0
