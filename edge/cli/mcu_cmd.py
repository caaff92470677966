"""`wolfpack mcu ...`: check an MCU link the way a technician would, on the board itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mcu",
        help="talk to an MCU over serial: identify it, measure the link",
        description="Diagnostics for a microcontroller on a serial port (or a simulated one "
        "from 'wolfpack sim mcu'). Name the port with --port, or take it from a board config "
        "with --config FILE --mcu NAME.",
    )
    cmds = parser.add_subparsers(dest="mcu_command", metavar="ACTION")
    cmds.required = True

    info = cmds.add_parser(
        "info",
        help="print what the firmware identifies as",
        description="Connect, identify the firmware (name, version, protocol, receive "
        "window, clock, I/O, commands) and synchronise the clock. Exit 1 with the port and "
        "the cause when nothing answers or the firmware is incompatible.",
    )
    _port_args(info)
    info.add_argument(
        "--sync",
        type=float,
        default=0.0,
        metavar="S",
        help="keep sampling the clock for S seconds to measure its drift (needs >= 2)",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_info)

    ping = cmds.add_parser(
        "ping",
        help="run N round trips and report loss, retransmits, bad frames, RTT p50/p99",
        description="Send --count pings and wait for each answer. Reports completed and lost "
        "pings, retransmits, NAKs and bad frames seen by the host and (from the MCU's own "
        "counters) by the MCU, and round-trip times. A noisy cable shows as bad frames and "
        "retransmits with 0 lost; lost > 0 means the link did not recover. Exit 1 if any "
        "ping was lost.",
    )
    _port_args(ping)
    ping.add_argument("--count", type=int, default=100, help="number of pings (default 100)")
    ping.add_argument(
        "--inflight",
        type=int,
        default=1,
        help="pings outstanding at once (default 1: true round trips; more measures throughput)",
    )
    ping.add_argument(
        "--timeout", type=float, default=2.0, help="seconds before a ping counts as lost"
    )
    ping.add_argument("--json", action="store_true", help="print one JSON object, no progress")
    ping.set_defaults(handler=_ping)
    _register_flash(cmds)


def _register_flash(cmds: argparse._SubParsersAction) -> None:
    from edge.cli.mcu_flash import BOARDS

    flash = cmds.add_parser(
        "flash",
        help="write the reference firmware onto a board (avrdude), verify it, identify it",
        description="Check that FIRMWARE (.hex or .elf, from 'make -C firmware') was built for "
        "--board, write it through the board's bootloader with avrdude (progress shown), let "
        "avrdude verify every byte, then connect and identify the new firmware. Refuses an "
        "image built for another board, and a board whose chip signature is not the one "
        "named. Exit 2: the image or arguments are wrong; 1: flashing or identify failed.",
        epilog="example: wolfpack mcu flash --board mega2560 --port /dev/serial/by-id/usb-"
        "Arduino... firmware/build/mega2560/wolfpack-mcu.hex",
    )
    flash.add_argument("image", metavar="FIRMWARE", help="the image: .hex (Intel hex) or .elf")
    flash.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board")
    flash.add_argument("--port", required=True, help="the board's serial port")
    flash.add_argument(
        "--upload-baud", type=int, default=None, help="bootloader baud (default: the board's)"
    )
    flash.add_argument(
        "--baud", type=int, default=250000, help="the firmware's link baud, for the identify"
    )
    flash.add_argument("--avrdude", default="avrdude", help="avrdude executable")
    flash.add_argument(
        "--dry-run", action="store_true", help="check the image, print the command, write nothing"
    )
    flash.add_argument(
        "--force", action="store_true", help="flash an image that is not a wolfpack firmware"
    )
    flash.add_argument("--no-identify", action="store_true", help="skip the identify afterwards")
    flash.set_defaults(handler=_flash)


def _port_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", help="serial device or pty path, e.g. /dev/serial/by-id/usb-...")
    p.add_argument("--config", help="board config file to take the port, baud, watchdog from")
    p.add_argument("--mcu", help="which mcus[].name of --config (default: the first)")
    p.add_argument("--baud", type=int, default=None, help="baud rate (default 250000 / config)")


def _link_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Port settings from --port/--baud or from the board config."""
    if args.config:
        from edge.config import ConfigError, load_board_config

        try:
            cfg = load_board_config(args.config)
        except ConfigError as exc:
            raise SystemExit(
                f"wolfpack mcu: {args.config}: invalid config\n{exc.render()}"
            ) from None
        mcus = [m for m in cfg.mcus if args.mcu is None or m.name == args.mcu]
        if not mcus:
            names = ", ".join(m.name for m in cfg.mcus) or "none"
            raise SystemExit(f"wolfpack mcu: {args.config} has no mcu {args.mcu!r} ({names})")
        mc = mcus[0]
        return {
            "port": args.port or mc.port,
            "baud": args.baud or mc.baud,
            "watchdog_ms": mc.watchdog_ms,
            "heartbeat_ms": mc.heartbeat_interval_ms,
            "name": mc.name,
        }
    if not args.port:
        raise SystemExit("wolfpack mcu: name the port with --port PATH (or --config FILE)")
    return {"port": args.port, "baud": args.baud or 250000}


def _info(args: argparse.Namespace) -> int:
    from firmware_bridge.mcu import McuError, McuLink

    kwargs = _link_kwargs(args)

    async def main() -> dict[str, Any]:
        link = McuLink(reconnect=False, **kwargs)
        await link.connect()
        try:
            if args.sync > 0:
                end = asyncio.get_running_loop().time() + args.sync
                while asyncio.get_running_loop().time() < end:
                    await link.sync_clock(1)
                    await asyncio.sleep(0.1)
            ident = link.identity
            assert ident is not None
            return {
                "port": link.port,
                **ident.as_dict(),
                "clock_drift_ppm": (
                    round(link.clock.drift_ppm, 2) if link.clock.freq_measured else None
                ),
                "clock_uncertainty_us": round(link.clock.uncertainty_s * 1e6, 1),
                "rtt_ms": round((link.endpoint.rtt.srtt or 0) * 1000, 3),
            }
        finally:
            await link.close()

    try:
        info = asyncio.run(main())
    except McuError as exc:
        print(f"wolfpack mcu info: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['port']}: {info['firmware']} {info['version']} (protocol {info['protocol']})")
    drift = info["clock_drift_ppm"]
    drift_text = f"drift {drift:+.1f} ppm" if drift is not None else "drift not measured (--sync 3)"
    print(f"  clock      {info['clock_freq']} Hz, {drift_text}, "
          f"sync uncertainty {info['clock_uncertainty_us']} us")  # fmt: skip
    print(f"  rx window  {info['rx_window']} frames of up to {info['max_payload']} bytes")
    print(f"  I/O        {info['outputs']} outputs, {info['inputs']} inputs, "
          f"{info['encoders']} encoder(s)")  # fmt: skip
    print(f"  round trip {info['rtt_ms']} ms")
    print(f"  commands   {', '.join(info['commands'])}")
    return 0


def _ping(args: argparse.Namespace) -> int:
    from firmware_bridge.mcu import McuError, McuLink
    from firmware_bridge.mcu.diagnostics import run_pings

    if args.count < 1 or args.inflight < 1:
        print("wolfpack mcu ping: --count and --inflight must be >= 1", file=sys.stderr)
        return 2
    kwargs = _link_kwargs(args)
    tty = sys.stderr.isatty()
    step = max(1, args.count // (50 if tty else 4))

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            if tty:  # one line, rewritten in place
                end = "\n" if done == total else ""
                print(f"\r  {done}/{total} pings", end=end, file=sys.stderr, flush=True)
            else:  # a log or a pipe: a few whole lines
                print(f"  {done}/{total} pings", file=sys.stderr, flush=True)

    async def main() -> dict[str, Any]:
        link = McuLink(**kwargs)
        await link.connect()
        try:
            report = await run_pings(
                link, args.count, inflight=args.inflight, timeout=args.timeout,
                progress=None if args.json else progress,
            )  # fmt: skip
            return {"port": link.port, **report.as_dict()}
        finally:
            await link.close()

    try:
        result = asyncio.run(main())
    except McuError as exc:
        print(f"wolfpack mcu ping: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        h, mcu, rtt = result["host"], result["mcu"] or {}, result["rtt_ms"]
        print(f"{result['port']}: {result['completed']}/{result['requested']} completed, "
              f"{result['lost']} lost, {result['round_trips_per_s']} round trips/s")  # fmt: skip
        print(f"  rtt        p50 {rtt['p50']} ms, p99 {rtt['p99']} ms, max {rtt['max']} ms")
        print(f"  host saw   {h['bad_frames_received']} bad frames, sent {h['naks_sent']} NAKs, "
              f"{h['retransmits']} retransmits ({h['timeouts']} timeouts)")  # fmt: skip
        if mcu:
            print(f"  MCU saw    {mcu['rx_bad']} bad frames, sent {mcu['naks_sent']} NAKs, "
                  f"{mcu['retransmits']} retransmits")  # fmt: skip
        for err in result["errors"]:
            print(f"  {err}")
    return 1 if result["lost"] else 0


def _flash(args: argparse.Namespace) -> int:
    import os
    import shlex
    import shutil
    import subprocess
    import time
    from pathlib import Path

    from edge.cli.mcu_flash import (
        BOARDS,
        FlashError,
        avrdude_command,
        avrdude_failure,
        bytes_verified,
        check_image,
        read_image,
    )

    def fail(text: str, code: int) -> int:
        print(f"wolfpack mcu flash: {text}", file=sys.stderr)
        return code

    board = BOARDS[args.board]
    try:
        image = read_image(Path(args.image))
        warnings = check_image(image, board, force=args.force)
    except FlashError as exc:
        return fail(str(exc), 2)
    for warning in warnings:
        print(f"wolfpack mcu flash: warning: {warning}", file=sys.stderr)
    cmd = avrdude_command(board, args.port, image, args.avrdude, args.upload_baud)
    what = image.firmware_name or "an image"
    print(f"flashing {image.path} ({what}, {image.size} bytes) onto the {board.name} "
          f"on {args.port}")  # fmt: skip
    print(f"  $ {shlex.join(cmd)}", flush=True)
    if args.dry_run:
        return 0
    if not os.path.exists(args.port):
        return fail(f"{args.port}: no such serial port", 1)
    if shutil.which(args.avrdude) is None:
        return fail(f"{args.avrdude}: not found (install it: apt-get install avrdude)", 1)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    chunks: list[bytes] = []
    while True:  # avrdude's progress bars, as they grow
        chunk = proc.stdout.read1(256)
        if not chunk:
            break
        chunks.append(chunk)
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
    rc = proc.wait()
    output = b"".join(chunks).decode("utf-8", "replace")
    if rc != 0:
        return fail(avrdude_failure(output, board, args.port), 1)
    verified = bytes_verified(output)
    if verified is None:
        return fail(f"{args.port}: avrdude finished but reported no verification", 1)
    print(f"{args.port}: wrote and verified {verified} bytes")
    if args.no_identify:
        return 0
    return _identify_after_flash(args.port, args.baud, board.firmware_name, time.monotonic())


def _identify_after_flash(port: str, baud: int, expected: str, since: float) -> int:
    """Connect to the freshly flashed firmware and say what it identifies as."""
    from firmware_bridge.mcu import McuError, McuLink

    async def main() -> tuple[str, str, int]:
        last: Exception | None = None
        for _ in range(3):  # the bootloader hands over within a second or two
            link = McuLink(port, baud=baud, reconnect=False)
            try:
                await link.connect()
                ident = link.identity
                assert ident is not None
                return ident.firmware, ident.version, ident.protocol
            except McuError as exc:
                last = exc
                await asyncio.sleep(0.5)
            finally:
                await link.close()
        assert last is not None
        raise last

    try:
        firmware, version, protocol = asyncio.run(main())
    except McuError as exc:
        print(f"wolfpack mcu flash: flashed and verified, but the new firmware did not answer: "
              f"{exc}", file=sys.stderr)  # fmt: skip
        return 1
    print(f"{port}: now running {firmware} {version} (protocol {protocol})")
    if firmware != expected:
        print(f"wolfpack mcu flash: {port} identifies as {firmware}, expected {expected}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
