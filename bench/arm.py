"""The sorting arm at several rates: the real node against the oracle, same world and seed.

For each rate the node's run is `wolfpack sim --machine arm` (the node in its own process,
the simulated arm cell in real time: MuJoCo world, MCU on a pty, camera frames, broker,
brain); the oracle's run is the same cell and parcel stream driven by
``sim_hardware.arm.oracle``, which reads the simulator's truth (each parcel's pose and
destination the moment it enters the belt) and commands the same arm within the same limits.
Printed: parcels in, pickable, picks/h, placed right of pickable, lost, cycle p50/p99,
tracking error p99 and the node's CPU and RSS; then the oracle's picks/h and success, and
the ratios node / oracle.

    .venv/bin/python bench/arm.py [--rates 1200,1800,2400,3000] [--duration 120] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.cli.sim_arm import (  # noqa: E402
    DEFAULT_CONFIG,
    ArmSimOptions,
    ArmSimulation,
    build_arm_report,
    cell_settings,
)


def node_run(rate: float, duration: float, seed: int, config: Path) -> dict[str, Any]:
    return ArmSimulation(
        ArmSimOptions(rate_pph=rate, duration_s=duration, seed=seed, config=config)
    ).run()


def oracle_run(rate: float, duration: float, seed: int, config: Path) -> dict[str, Any]:
    """The oracle on the same cell (the node's config) and parcel stream."""
    from edge.config import load_board_config
    from sim_hardware.arm.oracle import run_oracle

    board = load_board_config(config)
    settings = cell_settings(
        board, ArmSimOptions(rate_pph=rate, duration_s=duration, seed=seed, config=config)
    )
    truth = run_oracle(settings, duration)
    return build_arm_report(
        world={int(p["id"]): p for p in truth["parcels"]},
        records=[],
        node_usage={},
        span_s=duration,
        settings={"rate_pph": rate, "duration_s": duration, "seed": seed, "oracle": True},
        extra={"oracle": truth.get("stats", {})},
    )


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1200,1800,2400,3000", help="parcels/h, comma separated")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals per run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--oracle-only", action="store_true", help="skip the node's runs")
    ap.add_argument("--json", metavar="FILE", help="also write every run's report")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        o = oracle_run(rate, args.duration, args.seed, args.config)
        print(f"oracle {rate:g}/h done: {o['picks_per_hour']:.0f} picks/h", file=sys.stderr)
        n = None if args.oracle_only else node_run(rate, args.duration, args.seed, args.config)
        if n is not None:
            print(f"node {rate:g}/h done: {n['picks_per_hour']:.0f} picks/h", file=sys.stderr)
        rows.append((rate, n, o))
    head = (
        f"{'rate/h':>7} {'in':>4} {'pick':>4} {'picks/h':>8} {'right':>8} {'lost':>4}"
        f" {'cycle p50/p99 ms':>17} {'trk p99':>7} {'cpu%':>5} {'rss':>5} |"
        f" {'oracle/h':>8} {'o.right':>8} | {'picks/h x':>9} {'right x':>7}"
    )
    print(head)
    print("-" * len(head))
    for rate, n, o in rows:
        if n is None:
            print(
                f"{rate:7.0f} {'':71} | {o['picks_per_hour']:8.0f}"
                f" {_pct(o['placed_right_of_pickable'])} |"
            )
            continue
        c, t = n["cycle_ms"], n["tracking_error_mm"]
        ratio_p = n["picks_per_hour"] / o["picks_per_hour"] if o["picks_per_hour"] else 0.0
        nr, orr = n["placed_right_of_pickable"] or 0.0, o["placed_right_of_pickable"] or 0.0
        print(
            f"{rate:7.0f} {n['parcels_in']:4d} {n['pickable']:4d} {n['picks_per_hour']:8.0f}"
            f" {_pct(n['placed_right_of_pickable'])} {n['lost']:4d}"
            f" {c['p50'] or 0:8.0f}/{c['p99'] or 0:<8.0f} {t['p99'] or 0:7.1f}"
            f" {n['node'].get('cpu_percent', 0):5.1f} {n['node'].get('rss_mb', 0):5.0f} |"
            f" {o['picks_per_hour']:8.0f} {_pct(o['placed_right_of_pickable'])} |"
            f" {ratio_p:9.3f} {nr / orr if orr else 0.0:7.3f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"rate": r, "node": n, "oracle": o} for r, n, o in rows], indent=1)
        )


if __name__ == "__main__":
    main()
