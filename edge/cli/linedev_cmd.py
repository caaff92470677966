"""`wolfpack linedev listen`: is the scanner (or scale) wired and reading? Prints each reading."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "linedev",
        help="line devices (barcode scanners, scales): listen to what they report",
        description="Talk to devices that report one line per reading over serial or TCP.",
    )
    cmds = parser.add_subparsers(dest="linedev_command", metavar="COMMAND")
    p = cmds.add_parser(
        "listen",
        help="print every reading, no-read, framing error and link change of one device",
        description="Open a line device and print what it reports, to check that it is wired "
        "and reading: each reading with its time, each no-read with its cause, each framing "
        "error with what was wrong, and each time the line goes down or comes back. Name the "
        "device with --port or --tcp, or take it from a board config with --config FILE "
        "--device NAME (options given here override the config). Exits 0 once it saw at least "
        "one reading, 1 if it saw none.",
        epilog="examples:\n"
        "  wolfpack linedev listen --port /dev/serial/by-id/usb-Honeywell... --count 5\n"
        "  wolfpack linedev listen --tcp 192.168.10.31:51236 --framing stx-etx\n"
        "  wolfpack linedev listen --port /tmp/wp-scanner --trigger '\\x16T\\r' --count 10\n"
        "  wolfpack linedev listen --config board.yaml --device scanner-1 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", help="serial device or pty path")
    where.add_argument("--tcp", metavar="HOST:PORT", help="the device's TCP endpoint")
    p.add_argument("--config", help="board config file whose line_devices[] names the device")
    p.add_argument("--device", help="which line_devices[].name of --config (default: the first)")
    p.add_argument("--baud", type=int, default=None, help="serial baud rate (default 9600)")
    p.add_argument(
        "--framing",
        choices=["crlf", "cr", "lf", "stx-etx"],
        default=None,
        help="how readings are delimited (default crlf: a line ending in LF, CR removed)",
    )
    p.add_argument("--encoding", default=None, help="text encoding (default ascii)")
    p.add_argument(
        "--no-read-token", default=None, help="what the device sends for a no-read (NoRead)"
    )
    p.add_argument("--max-line", type=int, default=None, help="longest reading (default 256)")
    p.add_argument(
        "--trigger",
        default=None,
        metavar="CMD",
        help="trigger mode: send CMD (escapes like \\x16 and \\r allowed) for each reading",
    )
    p.add_argument("--trigger-timeout-ms", type=int, default=None, help="read window (300)")
    p.add_argument(
        "--trigger-every", type=float, default=0.5, metavar="S", help="trigger period (0.5 s)"
    )
    p.add_argument("--count", type=int, default=None, help="stop after N readings / no-reads")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=_listen)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


_SIMPLE_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\", "e": "\x1b"}


def parse_escapes(text: str) -> str:
    """``\\x16T\\r`` -> the characters it names; ValueError saying where when it is bad.

    Knows ``\\xHH``, ``\\r``, ``\\n``, ``\\t``, ``\\0``, ``\\e`` and ``\\\\``; anything
    else after a backslash is refused rather than guessed.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError(
                f"a lone backslash at the end (position {i}); write \\\\ for a backslash"
            )
        code = text[i + 1]
        if code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
            i += 2
        elif code == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(f"\\x at position {i} needs two hex digits, e.g. \\x16")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            raise ValueError(
                f"unknown escape \\{code} at position {i} (known: \\xHH \\r \\n \\t \\0 \\e \\\\)"
            )
    return "".join(out)


def _device_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from firmware_bridge.linedev import LineDeviceConfig

    base: dict[str, Any] = {"name": "listen"}
    if args.config:
        from edge.config import ConfigError, load_board_config

        try:
            board = load_board_config(args.config)
        except ConfigError as exc:
            raise SystemExit(
                f"wolfpack linedev: {args.config}: invalid config\n{exc.render()}"
            ) from None
        found = [d for d in board.line_devices if args.device in (None, d.name)]
        if not found:
            names = ", ".join(d.name for d in board.line_devices) or "none"
            raise SystemExit(
                f"wolfpack linedev: {args.config} has no line device {args.device!r} ({names})"
            )
        base = found[0].model_dump()
    if args.port:
        base.pop("tcp", None)
        base["serial"] = {"port": args.port, "baud": args.baud or 9600}
    elif args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SystemExit(f"wolfpack linedev: --tcp {args.tcp!r}: expected HOST:PORT")
        base.pop("serial", None)
        base["tcp"] = {"host": host, "port": int(port)}
    elif not args.config:
        raise SystemExit("wolfpack linedev: name the device with --port, --tcp or --config")
    elif args.baud and base.get("serial"):
        base["serial"]["baud"] = args.baud
    for key, value in (
        ("framing", args.framing),
        ("encoding", args.encoding),
        ("no_read_token", args.no_read_token),
        ("max_line_length", args.max_line),
    ):
        if value is not None:
            base[key] = value
    if args.trigger is not None:
        try:
            command = parse_escapes(args.trigger)
        except ValueError as exc:
            print(f"wolfpack linedev: --trigger {args.trigger!r}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        base["trigger"] = {**(base.get("trigger") or {}), "command": command}
    if args.trigger_timeout_ms is not None:
        if not base.get("trigger"):
            raise SystemExit("wolfpack linedev: --trigger-timeout-ms needs --trigger")
        base["trigger"]["timeout_ms"] = args.trigger_timeout_ms
    base.setdefault("reconnect", {"min_s": 0.2, "max_s": 2.0})
    try:
        return LineDeviceConfig.model_validate(base)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'device'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"wolfpack linedev: {problems}") from None


def _human(ev: Any) -> str:
    from firmware_bridge.linedev import LineError, NoRead, Read

    stamp = time.strftime("%H:%M:%S", time.localtime(ev.wall_time))
    stamp += f".{int(ev.wall_time * 1000) % 1000:03d}"
    if isinstance(ev, Read):
        return f"{stamp}  read      {ev.text!r}"
    if isinstance(ev, NoRead):
        return f"{stamp}  no-read   cause {ev.cause}" + (f" ({ev.raw!r})" if ev.raw else "")
    if isinstance(ev, LineError):
        return f"{stamp}  error     {ev.kind}: {ev.detail}; bytes {ev.raw[:40]!r}"
    return f"{stamp}  {ev.state:<9} {ev.reason}"


def _listen(args: argparse.Namespace) -> int:
    import asyncio

    from firmware_bridge.linedev import LineDevice, NoRead, Read

    cfg = _device_config(args)

    def show(ev: Any) -> None:
        print(json.dumps(ev.to_dict()) if args.json else _human(ev), flush=True)

    async def main() -> dict[str, Any]:
        seen = 0
        deadline = None if args.duration is None else time.monotonic() + args.duration
        async with LineDevice(cfg) as dev:
            trigger_task = None
            if cfg.trigger is not None:

                async def keep_triggering() -> None:
                    while True:
                        await dev.wait_connected(3600)
                        await dev.trigger()
                        await asyncio.sleep(args.trigger_every)

                trigger_task = asyncio.get_running_loop().create_task(keep_triggering())
            try:
                while args.count is None or seen < args.count:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    ev = await dev.next_event(left)
                    if ev is None:
                        break
                    show(ev)
                    if isinstance(ev, (Read, NoRead)):
                        seen += 1
            finally:
                if trigger_task is not None:
                    trigger_task.cancel()
            s = dev.stats
            return {
                "device": cfg.name,
                "link": cfg.link_description,
                "reads": s.reads,
                "no_reads": s.no_reads,
                "errors": s.errors,
                "triggers": s.triggers,
                "connects": s.connects,
                "losses": s.losses,
                "bytes_in": s.bytes_in,
                "state": dev.state,
                "reason": dev.reason,
            }

    try:
        summary = asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps({"event": "summary", **summary}), flush=True)
    else:
        total = summary["reads"] + summary["no_reads"]
        rate = f"{summary['no_reads'] / total:.1%}" if total else "n/a"
        print(
            f"{summary['link']}: {summary['reads']} reads, {summary['no_reads']} no-reads "
            f"(no-read rate {rate}), {summary['errors']} errors, {summary['connects']} "
            f"connects, {summary['losses']} losses; line {summary['state']} "
            f"({summary['reason']})",
            flush=True,
        )
    if summary["reads"] == 0:
        print(f"wolfpack linedev: no reading from {summary['link']}", file=sys.stderr)
        return 1
    return 0
