"""Entry point of the `wolfpack` command.

Each command group lives in its own module exposing ``register(subparsers)``; handlers take
the parsed arguments and return the process exit code. Heavy imports stay inside handlers so
`wolfpack --help` is quick on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge.logsetup import setup_logging

# Command groups, in the order `wolfpack --help` lists them.
COMMAND_MODULES = (
    "edge.cli.run_cmd",
    "edge.cli.config_cmd",
    "edge.cli.sim_cmd",
    "edge.cli.mcu_cmd",
    "edge.cli.modbus_cmd",
    "edge.cli.linedev_cmd",
    "edge.cli.vision_cmd",
    "edge.cli.monitor_cmd",
    "edge.cli.cmd_cmd",
    "edge.cli.broker_cmd",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wolfpack",
        description="Edge controller for warehouse sorting cells: run a board, simulate a "
        "cell, validate and flash configs, and check the wiring of MCUs and PLCs.",
        epilog="Run 'wolfpack COMMAND --help' for the options of each command.",
    )
    parser.add_argument(
        "--log-json", action="store_true", help="log JSON lines (for journald / log shippers)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    parser.add_argument(
        "--node-id",
        default=None,
        help="node id shown in log lines when no config names one (default: the hostname)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(node=args.node_id, json_lines=args.log_json, level=args.log_level)
    try:
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        logging.getLogger("wolfpack").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
