"""`wolfpack run CONFIG`: the node on a board (or beside the simulator)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import signal
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run the node: the sorting cell described by a board config",
        description="Load the board config, connect the MCU, the PLC, the scanners and the "
        "fleet link, and run the cell controller and its safety machine until SIGINT or "
        "SIGTERM; then stop the belt, cancel every stroke, publish 'offline' and flush the "
        "outbox. The belt starts only on the 'start' command (MQTT: cmd/start) or, with "
        "--start, once at boot when the cell is ready; after an e-stop or a fault it needs "
        "a 'reset' and a 'start'. Under systemd (Type=notify, WatchdogSec=) it reports "
        "READY and pings the watchdog.",
        epilog="Example: wolfpack run /etc/wolfpack/config.yaml --health-file "
        "/run/wolfpack/health.json",
    )
    parser.add_argument("config", help="board config file (YAML)")
    parser.add_argument(
        "--start",
        action="store_true",
        help="start the belt once the cell is ready at boot (simulator, supervised setups)",
    )
    parser.add_argument(
        "--health-file",
        metavar="FILE",
        help="keep FILE updated with the node's health as JSON (read by 'config flash')",
    )
    parser.add_argument(
        "--config-version",
        metavar="V",
        help="the version shown in the state topic (default: a hash of the file)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_board_config
    from edge.logsetup import setup_logging
    from edge.node.cell_node import CellNode

    path = Path(args.config)
    try:
        board = load_board_config(path)
    except ConfigError as exc:
        print(exc.render())
        return 1
    except OSError as exc:
        print(f"{path}: cannot read the config: {exc.strerror or exc}")
        return 1
    if args.node_id is None:
        setup_logging(node=board.node.id, json_lines=args.log_json, level=args.log_level)
    if board.cell is None:
        print(f"{path}: no 'cell:' section; 'wolfpack run' runs a sorting cell")
        return 1
    version = args.config_version or hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    node = CellNode(
        board, config_version=version, health_file=args.health_file, start_when_ready=args.start
    )
    return asyncio.run(_serve(node))


async def _serve(node: object) -> int:
    from edge.node.cell_node import CellNode

    assert isinstance(node, CellNode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.run(stop)
    except Exception:
        logging.getLogger("wolfpack").exception("the node failed")
        return 1
    return 0
