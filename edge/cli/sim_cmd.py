"""`wolfpack sim`: the whole simulated sorting cell with the real node (the main job), and
`wolfpack sim DEVICE`: one simulated device that a node reaches the way it reaches real ones.

Each simulated device has its own module exposing ``register(subparsers)``; the whole cell
is ``edge.cli.sim_cell``.
"""

from __future__ import annotations

import argparse
import importlib

# Simulated devices, in the order `wolfpack sim --help` lists them.
SIM_MODULES: tuple[str, ...] = ("edge.cli.sim_plc", "edge.cli.sim_mcu", "edge.cli.sim_scanner")


def register(sub: argparse._SubParsersAction) -> None:
    from edge.cli import sim_cell

    parser = sub.add_parser(
        "sim",
        help="run the simulated sorting cell with the node, or one simulated device",
        description="Without DEVICE: run the whole simulated sorting cell (belt, parcels, "
        "PLC, MCU, scanner, an embedded MQTT broker and a reference brain) with the real "
        "node beside it, show live progress, and end with a report of every parcel. With "
        "DEVICE: run that simulated device alone. Each presents the same OS-level interface "
        "as the real one (a pty path, a TCP port), so the node uses the same drivers.",
        epilog="Examples:\n  wolfpack sim --rate 12000 --duration 60 --report r.json\n"
        "  wolfpack sim --duration 90 --faults brain-absent@20+20,serial-noise=0.001,"
        "broker-restart@60\n  wolfpack sim mcu --link /tmp/wp-mcu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_cell.add_arguments(parser)
    devices = parser.add_subparsers(dest="sim_device", metavar="DEVICE")
    for name in SIM_MODULES:
        importlib.import_module(name).register(devices)
    parser.set_defaults(handler=sim_cell.run)
