"""`wolfpack sim`: a whole simulated machine with the real node (the main job), and
`wolfpack sim DEVICE`: one simulated device that a node reaches the way it reaches real ones.

Without ``--machine`` (or with ``--machine diverter``) it is the sorting cell,
``edge.cli.sim_cell``, with exactly the arguments it always had. ``--machine arm`` hands the
parsed arguments to ``edge.cli.sim_arm.run_arm(args)``, ``--machine amr`` to
``edge.cli.sim_amr.run_amr(args)``; each is imported only then, so a build without it still
simulates the others (docs/runtime.md). ``wolfpack sim fleet`` is ``edge.cli.sim_fleet``
(``register(parser)``, ``run(args)``). Each simulated device has its own module exposing
``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Simulated devices, in the order `wolfpack sim --help` lists them.
SIM_MODULES: tuple[str, ...] = ("edge.cli.sim_plc", "edge.cli.sim_mcu", "edge.cli.sim_scanner")

# --machine KIND -> "module:function(args) -> int"; the diverter's is sim_cell.run.
MACHINE_RUNNERS: dict[str, str] = {
    "arm": "edge.cli.sim_arm:run_arm",
    "amr": "edge.cli.sim_amr:run_amr",
}
FLEET_MODULE = "edge.cli.sim_fleet"

EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    from edge.cli import sim_cell

    parser = sub.add_parser(
        "sim",
        help="run a simulated machine (sorting cell, arm, vehicles) with the node, or one "
        "simulated device",
        description="Without DEVICE: run the whole simulated machine with the real node "
        "beside it, show live progress, and end with a report. The default, --machine "
        "diverter, is the sorting cell (belt, parcels, PLC, MCU, scanner, an embedded MQTT "
        "broker and a reference brain) and its report of every parcel; --machine arm is the "
        "sorting arm cell (docs/sim-arm.md); --machine amr runs --vehicles N vehicles on a "
        "warehouse map with a VDA 5050 master control (docs/sim-amr.md). With DEVICE: run "
        "that simulated device alone ('fleet': many virtual nodes on a broker cluster, "
        "docs/fleet-scale.md). Each presents the same OS-level interface as the real one (a "
        "pty path, a TCP port), so the node uses the same drivers.",
        epilog="Examples:\n  wolfpack sim --rate 12000 --duration 60 --report r.json\n"
        "  wolfpack sim --duration 90 --faults brain-absent@20+20,serial-noise=0.001,"
        "broker-restart@60\n  wolfpack sim --machine arm --rate 1800 --duration 120\n"
        "  wolfpack sim --machine amr --vehicles 10 --duration 300\n"
        "  wolfpack sim fleet --nodes 200 --duration 60\n  wolfpack sim mcu --link /tmp/wp-mcu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_cell.add_arguments(parser)
    parser.add_argument(
        "--machine",
        choices=("diverter", *MACHINE_RUNNERS),
        default="diverter",
        help="which machine to simulate: diverter (the sorting cell, default), arm, amr",
    )
    parser.add_argument(
        "--vehicles",
        type=int,
        default=None,
        metavar="N",
        help="with --machine amr: how many vehicles (default: the amr simulation's)",
    )
    devices = parser.add_subparsers(dest="sim_device", metavar="DEVICE")
    for name in SIM_MODULES:
        importlib.import_module(name).register(devices)
    _register_fleet(devices)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """`wolfpack sim` without DEVICE: the machine ``--machine`` names."""
    from edge.cli import sim_cell

    machine = getattr(args, "machine", "diverter")
    if getattr(args, "vehicles", None) is not None and machine != "amr":
        print("wolfpack sim: --vehicles is for --machine amr", file=sys.stderr)
        return EXIT_USAGE
    if machine == "diverter":
        return int(sim_cell.run(args))
    runner = _load(MACHINE_RUNNERS[machine], f"--machine {machine}")
    if runner is None:
        return EXIT_USAGE
    return int(runner(args))


def _load(dotted: str, what: str) -> object | None:
    """The function ``module:name``, or None after one line saying why it is missing."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        print(f"wolfpack sim {what}: not available in this build ({dotted}: {exc})",
              file=sys.stderr)  # fmt: skip
        return None


def _register_fleet(devices: argparse._SubParsersAction) -> None:
    """`wolfpack sim fleet`: its arguments come from edge.cli.sim_fleet.register(parser),
    so the module is imported when the parser is built (it imports only the standard
    library at the top); if it cannot be, the command answers with why."""
    help_text = "many virtual nodes on a broker cluster and a pool of brain workers"
    try:
        module = importlib.import_module(FLEET_MODULE)
        register_fleet = module.register
        run_fleet = module.run
    except Exception as exc:  # a build without it, or a broken one: the rest of the CLI works
        why = f"{FLEET_MODULE}: {type(exc).__name__}: {exc}"
        fleet = devices.add_parser("fleet", help=help_text + " (not available in this build)")
        fleet.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

        def unavailable(_args: argparse.Namespace) -> int:
            print(f"wolfpack sim fleet: not available in this build ({why})", file=sys.stderr)
            return EXIT_USAGE

        fleet.set_defaults(handler=unavailable)
        return
    fleet = devices.add_parser(
        "fleet",
        help=help_text,
        description="N virtual nodes, each with its own MQTT session and outbox and a real "
        "cell's message mix, against a broker cluster (started here without --broker) and a "
        "pool of brain workers; a live view and a report of messages lost, duplicated and "
        "out of order (docs/fleet-scale.md).",
    )
    register_fleet(fleet)
    fleet.set_defaults(handler=run_fleet)
