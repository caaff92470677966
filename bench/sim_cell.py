"""The whole sorting cell at several rates: the real node (its own process) against the
simulated cell in real time, versus the ideal controller (the world's oracle, which reads the
truth and fires each stroke exactly) on the same parcel stream.

For each rate it prints parcels in, the share of legible parcels sorted right, lost, the p99
of the brain round trip (label -> decision) and of the MCU's acceptance of a stroke, the
divert error p50/p99 (world truth), and the node's CPU and RSS; then the oracle's divert
error and share sorted right on the same seed and rate, and the ratio node / oracle.

    .venv/bin/python bench/sim_cell.py [--rates 6000,12000,24000] [--duration 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.sim.run import CellSimulation, SimOptions  # noqa: E402
from sim_hardware.world import WorldConfig  # noqa: E402
from sim_hardware.world.config import ArrivalConfig  # noqa: E402
from sim_hardware.world.oracle import OracleController  # noqa: E402
from sim_hardware.world.world import CellWorld  # noqa: E402


def oracle(rate: float, duration: float, seed: int) -> dict[str, float]:
    world = CellWorld(WorldConfig(seed=seed, arrivals=ArrivalConfig(rate_pph=rate)))
    world.command_belt(True, 2500.0, 1000.0)
    ctl = OracleController(world)
    ctl.run(duration)
    world.close_induction()
    ctl.run(duration + 15)
    s = world.score.summary()
    legible = sum(1 for r in world.score.records.values() if r.done and r.parcel.label_legible)
    return {
        "parcels": s["finished"],
        "sorted": s["sorted_correct"] / legible if legible else 0.0,
        "err_p99": s["divert_error_mm"]["p99"] or 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="6000,12000,24000")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        r = CellSimulation(
            SimOptions(rate_pph=rate, duration_s=args.duration, seed=args.seed)
        ).run()
        o = oracle(rate, args.duration, args.seed)
        legible = r["legible"] or 1
        rows.append((rate, r, o, r["sorted_correct"] / legible))
        print(f"done {rate:g} pph", file=sys.stderr)
    head = (f"{'pph':>7} {'in':>5} {'sorted':>8} {'lost':>5} {'brain p99':>10} {'mcu ack p99':>12}"
            f" {'err p50/p99 mm':>15} {'cpu %':>6} {'rss MB':>7} | {'oracle sorted':>13}"
            f" {'oracle err p99':>15} {'node/oracle':>11}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for rate, r, o, share in rows:
        lat = r["latency_ms"]
        err = r["divert_error_mm"]
        ratio = share / o["sorted"] if o["sorted"] else 0.0
        print(
            f"{rate:7.0f} {r['parcels_in']:5d} {100 * share:7.2f}% {r['lost']:5d}"
            f" {lat.get('label_to_decision', {}).get('p99') or 0:10.1f}"
            f" {lat.get('scheduled_to_mcu_ack', {}).get('p99') or 0:12.1f}"
            f" {err['p50'] or 0:7.2f}/{err['p99'] or 0:<7.2f}"
            f" {r['node']['cpu_percent']:6.1f} {r['node']['rss_mb']:7.1f} |"
            f" {100 * o['sorted']:12.2f}% {o['err_p99']:15.2f} {ratio:11.3f}"
        )


if __name__ == "__main__":
    main()
