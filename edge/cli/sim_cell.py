"""`wolfpack sim` without a device: the whole cell with the node, and its report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge.sim.faults import KINDS

    parser.add_argument(
        "--rate",
        type=float,
        default=12_000.0,
        metavar="PPH",
        help="parcels per hour arriving at the induction (default 12000)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds of arrivals; then the belt is emptied (default 60)",
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="LIST",
        help="faults on a schedule, NAME[=VALUE][@START_S][+DURATION_S] "
        f"separated by commas; names: {', '.join(KINDS)} "
        "(see docs/sim-cell.md)",
    )
    parser.add_argument(
        "--broker", metavar="URL", help="use this MQTT broker (default: start the embedded one)"
    )
    parser.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--config", metavar="FILE", default=None, help="node config (default configs/sim-cell.yaml)"
    )
    parser.add_argument("--seed", type=int, default=1, help="parcel stream seed (default 1)")
    parser.add_argument(
        "--unreadable",
        type=float,
        default=0.02,
        metavar="FRACTION",
        help="share of labels no reader can decode (default 0.02)",
    )
    parser.add_argument(
        "--scanner-no-read",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="share of legible labels the scanner misses (default 0)",
    )
    parser.add_argument(
        "--brain-latency",
        type=float,
        default=5.0,
        metavar="MS",
        help="the reference brain's answer time (default 5 ms)",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="keep the node config, its log and outbox here (default: a "
        "temporary directory, kept and named at the end)",
    )
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument(
        "--camera",
        action="store_true",
        help="run the simulated camera and the node's vision pipeline beside the fixed "
        "scanner, as a second label source and the class source (the default when the "
        "config has a vision: section, as configs/sim-cell.yaml does; docs/vision.md, 'The "
        "camera in the main loop')",
    )
    camera.add_argument(
        "--no-camera",
        action="store_true",
        help="the fixed scanner alone, no camera (about a core less on a 2-core machine)",
    )
    camera.add_argument(
        "--camera-only",
        action="store_true",
        help="the simulated camera as the node's only label source (the node gets no scanner)",
    )
    parser.add_argument(
        "--camera-fps",
        type=float,
        default=15.0,
        metavar="N",
        help="frames/s the simulated camera renders and the node processes (default 15)",
    )
    parser.add_argument(
        "--mcu-firmware",
        choices=("python", "c"),
        default="python",
        help="the simulated MCU's firmware: the Python one (default) or the C reference "
        "firmware's host build (firmware/, built with make if needed)",
    )
    parser.add_argument("--quiet", action="store_true", help="no live progress")


def run(args: argparse.Namespace) -> int:
    from edge.sim.faults import FaultSpecError, parse_faults
    from edge.sim.report import render_text
    from edge.sim.run import DEFAULT_CONFIG, CellSimulation, SimError, SimOptions

    try:
        faults = parse_faults(args.faults)
    except FaultSpecError as exc:
        print(f"wolfpack sim: --faults: {exc}", file=sys.stderr)
        return 2
    for name, value in (("--rate", args.rate), ("--duration", args.duration)):
        if not value > 0:
            print(f"wolfpack sim: {name} must be > 0", file=sys.stderr)
            return 2
    if args.broker and any(f.kind == "broker-restart" for f in faults):
        print("wolfpack sim: broker-restart needs the embedded broker (drop --broker)",
              file=sys.stderr)  # fmt: skip
        return 2

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    options = SimOptions(
        rate_pph=args.rate,
        duration_s=args.duration,
        faults=faults,
        broker=args.broker,
        config=Path(args.config) if args.config else DEFAULT_CONFIG,
        seed=args.seed,
        unreadable_fraction=args.unreadable,
        scanner_no_read=args.scanner_no_read,
        brain_latency_ms=args.brain_latency,
        workdir=Path(args.workdir) if args.workdir else None,
        progress=None if args.quiet else progress,
        camera=_camera_option(args),
        camera_fps=args.camera_fps,
        camera_only=args.camera_only,
        mcu_firmware=args.mcu_firmware,
    )
    try:
        sim = CellSimulation(options)
        report = sim.run()
    except SimError as exc:
        print(f"wolfpack sim: {exc}", file=sys.stderr)
        return 1
    print(render_text(report))
    print(f"(node config, log and outbox: {sim.workdir})")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.report}")
    return 0


def _camera_option(args: argparse.Namespace) -> bool | None:
    """``SimOptions.camera``: None (neither flag) runs the camera when the config has a
    vision: section to run it with."""
    if args.camera or args.camera_only:
        return True
    return False if args.no_camera else None
