"""The sorting arm at several rates: the real node against the oracle, same world and seed.

For each rate the node's run is `wolfpack sim --machine arm` (the node in its own process,
the simulated arm cell in real time: MuJoCo world, MCU on a pty, camera frames, broker,
brain); the oracle's run is the same cell and parcel stream driven by
``sim_hardware.arm.oracle``, which reads the simulator's truth (each parcel's pose and
destination the moment it enters the belt) and commands the same arm within the same limits.
Printed: parcels in, pickable, picks/h, sustained picks/h, placed right of pickable, lost,
cycle p50/p99, tracking error p99 and the node's CPU and RSS; then the oracle's picks/h,
sustained picks/h and success, and the ratios node / oracle (of sustained picks/h).

``picks/h`` is the report's: places during the arrivals over their whole span, so it
includes the time the first parcels ride from the induction to the window (~6 s at 300 mm/s,
when no arm can place anything). ``sust/h`` is the arm's pace once the cell is filled: the
places from the first place to the end of the arrivals, per hour of that span.

    .venv/bin/python bench/arm.py [--rates 1200,1800,2400,3000] [--duration 120] [--seed 1]
        [--belt-speed MM_S] [--workdir DIR]

``--workdir DIR``: each node run's work directory is kept in DIR/node-RATE-seedN (records,
the world's truth, the valve trace, the node's log and health: what a miss is traced from).

``--belt-speed``: the config with its belt's ``nominal_speed_mm_s`` replaced (a copy in a
temporary directory; node, world and oracle all run at it): the infeed's trade, since the
induction's 80 mm gap caps what a belt takes on (~2,770 parcels/h at 300 mm/s, ~3,230 at
350) while the tracking window's time shrinks as the belt speeds up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
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


def sustained(parcels: Iterable[Mapping[str, Any]], span_s: float) -> float | None:
    """Places in a destination per hour from the first place to the end of the arrivals
    (``span_s``; the world's ``ended_s`` counts from their start): the arm's pace once the
    belt has brought the first parcels to it. None: no place, or one too late to tell."""
    times = sorted(
        float(p["ended_s"])
        for p in parcels
        if str(p.get("end", "")).startswith("dest:") and p.get("ended_s") is not None
    )
    if not times or times[0] > span_s - 10.0:
        return None
    first = times[0]
    return round(sum(1 for t in times if t <= span_s) * 3600.0 / (span_s - first), 1)


def node_run(
    rate: float, duration: float, seed: int, config: Path, keep: Path | None = None
) -> dict[str, Any]:
    """The node's run; ``keep``: its work directory is kept there (records, world truth,
    valve trace, node log: what a miss is traced from), else a temporary one."""
    with contextlib.ExitStack() as stack:
        if keep is None:
            wd = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arm-bench-")))
        else:
            wd = keep / f"node-{rate:g}-seed{seed}"
            wd.mkdir(parents=True, exist_ok=True)
        report = ArmSimulation(
            ArmSimOptions(rate_pph=rate, duration_s=duration, seed=seed, config=config, workdir=wd)
        ).run()
        world = wd / "world.jsonl"
        rows = [json.loads(x) for x in world.read_text().splitlines()] if world.exists() else []
    report["sustained_per_hour"] = sustained(rows, duration)
    return report


def oracle_run(rate: float, duration: float, seed: int, config: Path) -> dict[str, Any]:
    """The oracle on the same cell (the node's config) and parcel stream."""
    from edge.config import load_board_config
    from sim_hardware.arm.oracle import run_oracle

    board = load_board_config(config)
    settings = cell_settings(
        board, ArmSimOptions(rate_pph=rate, duration_s=duration, seed=seed, config=config)
    )
    truth = run_oracle(settings, duration)
    report = build_arm_report(
        world={int(p["id"]): p for p in truth["parcels"]},
        records=[],
        node_usage={},
        span_s=duration,
        settings={"rate_pph": rate, "duration_s": duration, "seed": seed, "oracle": True},
        extra={"oracle": truth.get("stats", {})},
    )
    report["sustained_per_hour"] = sustained(truth["parcels"], duration)
    return report


def with_belt_speed(config: Path, speed: float, into: Path) -> Path:
    """A copy of ``config`` in ``into`` with the arm belt's nominal speed set to ``speed``
    (the line edited, so the file's comments stay)."""
    text, n = re.subn(
        r"^(\s*nominal_speed_mm_s:\s*)[0-9.]+", rf"\g<1>{speed:g}", config.read_text(), flags=re.M
    )
    if n != 1:
        raise SystemExit(f"{config}: expected one nominal_speed_mm_s, found {n}")
    out = into / config.name
    out.write_text(text)
    return out


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}%"


def _num(x: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if x is None else f"{x:{width}.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1200,1800,2400,3000", help="parcels/h, comma separated")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals per run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--oracle-only", action="store_true", help="skip the node's runs")
    ap.add_argument("--belt-speed", type=float, help="mm/s: the config's belt speed replaced")
    ap.add_argument("--json", metavar="FILE", help="also write every run's report")
    ap.add_argument(
        "--workdir", type=Path, help="keep each node run's work directory under this folder"
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.belt_speed is not None:
        tmp = Path(tempfile.mkdtemp(prefix="arm-bench-config-"))
        args.config = with_belt_speed(args.config, args.belt_speed, tmp)
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        o = oracle_run(rate, args.duration, args.seed, args.config)
        print(f"oracle {rate:g}/h done: {o['picks_per_hour']:.0f} picks/h", file=sys.stderr)
        n = (
            None
            if args.oracle_only
            else node_run(rate, args.duration, args.seed, args.config, args.workdir)
        )
        if n is not None:
            print(f"node {rate:g}/h done: {n['picks_per_hour']:.0f} picks/h", file=sys.stderr)
        rows.append((rate, n, o))
    head = (
        f"{'rate/h':>7} {'in':>4} {'pick':>4} {'picks/h':>8} {'sust/h':>7} {'right':>8}"
        f" {'lost':>4} {'cycle p50/p99 ms':>17} {'trk p99':>7} {'cpu%':>5} {'rss':>5} |"
        f" {'oracle/h':>8} {'o.sust/h':>8} {'o.right':>8} | {'sust/h x':>8} {'right x':>7}"
    )
    print(head)
    print("-" * len(head))
    for rate, n, o in rows:
        if n is None:
            print(
                f"{rate:7.0f} {o['parcels_in']:4d} {o['pickable']:4d} {'':80} |"
                f" {o['picks_per_hour']:8.0f} {_num(o['sustained_per_hour'], 8)}"
                f" {_pct(o['placed_right_of_pickable'])} |"
            )
            continue
        c, t = n["cycle_ms"], n["tracking_error_mm"]
        ns, os_ = n["sustained_per_hour"], o["sustained_per_hour"]
        ratio_p = ns / os_ if ns is not None and os_ else 0.0
        nr, orr = n["placed_right_of_pickable"] or 0.0, o["placed_right_of_pickable"] or 0.0
        print(
            f"{rate:7.0f} {n['parcels_in']:4d} {n['pickable']:4d} {n['picks_per_hour']:8.0f}"
            f" {_num(ns, 7)} {_pct(n['placed_right_of_pickable'])} {n['lost']:4d}"
            f" {c['p50'] or 0:8.0f}/{c['p99'] or 0:<8.0f} {t['p99'] or 0:7.1f}"
            f" {n['node'].get('cpu_percent', 0):5.1f} {n['node'].get('rss_mb', 0):5.0f} |"
            f" {o['picks_per_hour']:8.0f} {_num(os_, 8)} {_pct(o['placed_right_of_pickable'])} |"
            f" {ratio_p:8.3f} {nr / orr if orr else 0.0:7.3f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"rate": r, "node": n, "oracle": o} for r, n, o in rows], indent=1)
        )


if __name__ == "__main__":
    main()
