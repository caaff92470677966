"""Several vehicle nodes in one process: ``python -m edge.amr.node_host CFG... [--start]``.

On a vehicle one board runs one node (``wolfpack run``). The simulator on a small machine
cannot give each of ten vehicles a Python process of its own without the processes' fixed
cost (imports, threads, ~60 MB each) crowding out the simulation, so `wolfpack sim --machine
amr --hosts K` spreads its vehicles over K processes of this host. Each vehicle is still a
whole node on the runtime (its own safety machine, supervisor, fleet link, VDA 5050 session,
health file); they only share the asyncio loop and the interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.amr.node_host", description=__doc__)
    parser.add_argument("configs", nargs="+", help="vehicle board configs (machine: amr)")
    parser.add_argument("--start", action="store_true", help="start each vehicle when ready")
    parser.add_argument(
        "--health-dir", metavar="DIR", help="write DIR/<node id>.health.json for each vehicle"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    from edge.cli.run_cmd import build_node
    from edge.config import ConfigError, load_board_config
    from edge.logsetup import setup_logging
    from edge.runtime.machine import MachineError

    setup_logging(node="amr-host", level=args.log_level)
    nodes = []
    for path in args.configs:
        try:
            board = load_board_config(Path(path))
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            return 2
        if board.machine != "amr":
            print(f"{path}: machine is {board.machine!r}, not 'amr'", file=sys.stderr)
            return 2
        health = (
            str(Path(args.health_dir) / f"{board.node.id}.health.json") if args.health_dir else None
        )
        try:
            nodes.append(build_node(board, "sim", health, args.start))
        except MachineError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(_serve_all(nodes))


async def _serve_all(nodes: list[object]) -> int:
    from edge.runtime.node import Node

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runs = [n.run(stop) for n in nodes if isinstance(n, Node)]
    results = await asyncio.gather(*runs, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for r in failed:
        logging.getLogger("wolfpack").error("a vehicle node failed: %r", r)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
