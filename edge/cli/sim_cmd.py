"""`wolfpack sim ...`: simulated hardware that a node reaches the way it reaches real devices.

Each simulated device has its own module exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib

# Simulated devices, in the order `wolfpack sim --help` lists them.
SIM_MODULES: tuple[str, ...] = ("edge.cli.sim_plc", "edge.cli.sim_mcu", "edge.cli.sim_scanner")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sim",
        help="run simulated hardware (MCU on a pty, PLC on Modbus, ...)",
        description="Run simulated devices. Each presents the same OS-level interface as the "
        "real one (a pty path, a TCP port), so 'wolfpack' commands and the node use them "
        "with the same drivers.",
    )
    devices = parser.add_subparsers(dest="sim_device", metavar="DEVICE")
    for name in SIM_MODULES:
        importlib.import_module(name).register(devices)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
