"""`wolfpack modbus ...`: read, poll and write the tags of a board config's Modbus devices."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware_bridge.modbus.codec import Value
    from firmware_bridge.modbus.config import ModbusConfig, ModbusDeviceConfig, ModbusTag
    from firmware_bridge.modbus.quality import TagValue

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "modbus",
        help="read, poll and write Modbus RTU/TCP devices of a board config",
        description="Talk to the Modbus devices named in a board config's 'modbus:' section, "
        "with the same register maps, timeouts and decoding the node uses. Every value is "
        "shown with its unit and quality (good, stale, bad with the cause).",
    )
    cmds = parser.add_subparsers(dest="modbus_command", metavar="ACTION")
    cmds.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, metavar="FILE", help="board config (YAML)")

    read = cmds.add_parser(
        "read",
        help="read tags once and print them",
        description="Read the tags of one device once (all, or those named). Exit status 0 "
        "when every value is good, 1 when any is bad (the cause is printed).",
        epilog="Example: wolfpack modbus read --config board.yaml --device conveyor speed",
    )
    common(read)
    read.add_argument("--device", required=True, help="device name from the config")
    read.add_argument("tags", nargs="*", metavar="TAG", help="tag names (default: all)")
    read.add_argument("--json", action="store_true", help="print one JSON object")
    read.set_defaults(handler=_read)

    poll = cmds.add_parser(
        "poll",
        help="poll devices on their periods and show a live table",
        description="Poll devices (default: all in the config) on their configured periods, "
        "each line (TCP endpoint, RS-485 port) in its own worker, and refresh a table of "
        "every tag. Ends after --count refreshes or --duration seconds, or on Ctrl-C.",
    )
    common(poll)
    poll.add_argument(
        "--device", action="append", default=[], help="device to poll (repeatable; default all)"
    )
    poll.add_argument("--interval", type=float, default=1.0, help="table refresh period, s")
    poll.add_argument("--count", type=int, help="stop after this many refreshes")
    poll.add_argument("--duration", type=float, help="stop after this many seconds")
    poll.add_argument("--json", action="store_true", help="one JSON object per refresh")
    poll.set_defaults(handler=_poll)

    write = cmds.add_parser(
        "write",
        help="write one read-write tag, range-checked against the config",
        description="Write a value to one tag. Refused before anything is sent when the "
        "tag is read-only, the value is outside the tag's min/max, or does not fit its "
        "data type. With --verify (or the tag's verify_write) the tag is read back.",
        epilog="Example: wolfpack modbus write --config board.yaml --device conveyor "
        "speed-setpoint 1.5",
    )
    common(write)
    write.add_argument("--device", required=True, help="device name from the config")
    write.add_argument("tag", help="tag name")
    write.add_argument("value", help="value: a number, true/false for bool, text for string")
    write.add_argument("--verify", action="store_true", default=None, help="read back")
    write.set_defaults(handler=_write)


def _load(path: str) -> ModbusConfig | None:
    from edge.config import ConfigError, load_board_config

    try:
        return load_board_config(path).modbus
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
    except OSError as exc:
        print(f"wolfpack modbus: cannot read {path}: {exc}", file=sys.stderr)
    return None


def _device(cfg: ModbusConfig, name: str) -> ModbusDeviceConfig | None:
    try:
        return cfg.device(name)
    except KeyError as exc:
        print(f"wolfpack modbus: {exc.args[0]}", file=sys.stderr)
        return None


def _show(value: Value | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(rows: list[TagValue], with_device: bool = False) -> str:
    head = (["DEVICE"] if with_device else []) + ["TAG", "VALUE", "UNIT", "QUALITY", "CAUSE"]
    cells = [head] + [
        ([r.device] if with_device else [])
        + [r.tag, _show(r.value), r.unit, r.quality.value, r.cause]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _read(args: argparse.Namespace) -> int:
    from firmware_bridge.modbus.device import ModbusDevice
    from firmware_bridge.modbus.link import open_link
    from firmware_bridge.modbus.quality import Quality

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    dev_cfg = _device(cfg, args.device)
    if dev_cfg is None:
        return EXIT_USAGE
    names = args.tags or [t.name for t in dev_cfg.tags]
    unknown = [n for n in names if n not in {t.name for t in dev_cfg.tags}]
    if unknown:
        known = ", ".join(t.name for t in dev_cfg.tags)
        print(f"wolfpack modbus: device {dev_cfg.name} has no tag {', '.join(unknown)} "
              f"(tags: {known})", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    link = open_link(dev_cfg.link)
    try:
        device = ModbusDevice(dev_cfg, link)
        values = device.poll(names)
    finally:
        link.close()
    rows = [values[n] for n in names]
    if args.json:
        print(json.dumps({"device": dev_cfg.name, "values": [r.as_dict() for r in rows]}))
    else:
        print(_table(rows))
    bad = [r for r in rows if r.quality is not Quality.GOOD]
    if bad and device.last_error is not None:
        print(f"wolfpack modbus: {device.last_error} (unit {dev_cfg.unit_id})", file=sys.stderr)
    return 1 if bad else 0


def _poll(args: argparse.Namespace) -> int:
    from firmware_bridge.modbus.config import ModbusConfig
    from firmware_bridge.modbus.poller import Poller

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    if args.device:
        devices = [_device(cfg, name) for name in args.device]
        if any(d is None for d in devices):
            return EXIT_USAGE
        cfg = ModbusConfig(devices=[d for d in devices if d is not None])
    if not cfg.devices:
        print(f"wolfpack modbus: {args.config} has no Modbus devices", file=sys.stderr)
        return EXIT_USAGE
    interactive = sys.stdout.isatty() and not args.json
    started = time.monotonic()
    refreshes = 0
    with Poller(cfg) as poller:
        while True:
            time.sleep(args.interval)
            refreshes += 1
            snap = poller.snapshot()
            rows = [snap[d.name][t.name] for d in cfg.devices for t in d.tags
                    if t.name in snap.get(d.name, {})]  # fmt: skip
            if args.json:
                print(json.dumps({"refresh": refreshes, "values": [r.as_dict() for r in rows]}))
            else:
                if interactive:
                    print("\x1b[H\x1b[2J", end="")
                stamp = time.strftime("%H:%M:%S")
                print(f"-- {stamp}  refresh {refreshes}  ({len(rows)} tags)")
                print(_table(rows, with_device=True), flush=True)
            if args.count is not None and refreshes >= args.count:
                break
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
    return 0


def _parse_value(tag: ModbusTag, text: str) -> Value:
    from firmware_bridge.modbus.datatypes import DataType

    if tag.type is DataType.BOOL:
        lowered = text.lower()
        if lowered in ("1", "true", "on", "yes"):
            return True
        if lowered in ("0", "false", "off", "no"):
            return False
        raise ValueError(f"expected true/false, on/off or 1/0 for bool tag {tag.name}")
    if tag.type is DataType.STRING:
        return text
    if tag.type.is_integer and tag.scale == 1 and tag.offset == 0:
        return int(text, 0)
    return float(text)


def _write(args: argparse.Namespace) -> int:
    from firmware_bridge.modbus.device import ModbusDevice
    from firmware_bridge.modbus.errors import ModbusError, WriteRefusedError
    from firmware_bridge.modbus.link import open_link

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    dev_cfg = _device(cfg, args.device)
    if dev_cfg is None:
        return EXIT_USAGE
    try:
        tag = dev_cfg.tag(args.tag)
        value = _parse_value(tag, args.value)
    except (KeyError, ValueError) as exc:
        print(f"wolfpack modbus write: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    link = open_link(dev_cfg.link)
    try:
        regs = ModbusDevice(dev_cfg, link).write(tag.name, value, verify=args.verify)
    except WriteRefusedError as exc:
        print(f"wolfpack modbus write: refused: {exc}", file=sys.stderr)
        return 1
    except ModbusError as exc:
        print(f"wolfpack modbus write: {exc} (unit {dev_cfg.unit_id})", file=sys.stderr)
        return 1
    finally:
        link.close()
    print(f"{dev_cfg.name} {tag.name} = {_show(value)} {tag.unit}".rstrip()
          + f"  (registers {regs})")  # fmt: skip
    return 0
