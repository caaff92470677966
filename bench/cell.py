"""Benchmark of the cell controller core: host CPU time per parcel, whole life cycle.

Each parcel goes through induction (two eye edges), a camera sighting with a label, the ask,
the brain's answer, the stroke, its action_done and the chute sensor edge, with encoder Ticks
every 5 mm. Parcels are spaced so that N are on the belt at once (matching and per-event
work grow with the parcels in flight). There is no peer doing the same job in Python to
compare with; the ratio printed is against the time budget of one parcel at 24,000
parcels/hour (150 ms): budget / cost. Figures are process CPU time, median of --repeat runs
(the machine is shared; expect noise).

    .venv/bin/python bench/cell.py [--parcels 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.cell.config import CellConfig  # noqa: E402
from edge.cell.controller import CellCore  # noqa: E402
from edge.cell.events import (  # noqa: E402
    AskBrain,
    BrainAnswer,
    CellEvent,
    ChuteSensor,
    EyeEdge,
    PublishRecord,
    ScheduleStroke,
    Sighting,
    StrokeDone,
    Tick,
)
from edge.config import load_board_config  # noqa: E402

BUDGET_MS = 3600 * 1000 / 24000


def run(cfg: CellConfig, parcels: int, spacing_mm: int) -> tuple[float, int, int]:
    """(CPU seconds, events handled, records) for ``parcels`` parcels ``spacing_mm`` apart."""
    core = CellCore(cfg)
    cpm = cfg.belt.counts_per_mm
    eye = cfg.induction.position_mm
    chutes = [c.id for c in cfg.chutes if c.id != "oversize"]
    due: dict[int, list[CellEvent]] = {}

    def at(count: int, ev: CellEvent) -> None:
        due.setdefault(count, []).append(ev)

    for i in range(parcels):
        lead = round(i * spacing_mm * cpm)
        at(lead, EyeEdge(cfg.induction_eye, True, lead, lead / 5000))
        at(lead + 600, EyeEdge(cfg.induction_eye, False, lead + 600, (lead + 600) / 5000))
        cam = lead + round(500 * cpm)
        at(cam, Sighting("camera", cam, cam / 5000, eye + 500, f"DE-1{i % 10}-{i}", "box"))
    end = round(parcels * spacing_mm * cpm + cfg.belt.length_mm * cpm + 2000)
    step = round(5 * cpm)
    events = records = 0
    start = time.process_time()
    for count in range(0, end, step):
        batch: list[CellEvent] = []
        for c in range(count - step + 1, count + 1):
            batch.extend(due.pop(c, ()))
        batch.append(Tick(count, count / 5000))
        for ev in batch:
            events += 1
            for action in core.handle(ev):
                if isinstance(action, AskBrain):
                    chute = chutes[action.parcel_id % len(chutes)]
                    at(count + step, BrainAnswer(action.parcel_id, chute, count / 5000 + 0.002))
                elif isinstance(action, ScheduleStroke):
                    at(action.count, StrokeDone(action.parcel_id, action.count, 0.0))
                    c2 = action.count + round(100 * cpm)
                    at(c2, ChuteSensor(action.chute, c2, c2 / 5000))
                elif isinstance(action, PublishRecord):
                    records += 1
    return time.process_time() - start, events, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    board = load_board_config(ROOT / "configs" / "examples" / "cell-controller.yaml")
    cfg = board.cell
    assert cfg is not None
    print(f"cell core, {args.parcels} parcels, example cell (12 m belt), median of {args.repeat}")
    print(f"{'in flight':>9} {'spacing mm':>10} {'us/parcel':>10} {'us/event':>9} "
          f"{'records':>8} {'budget/cost':>11}")  # fmt: skip
    for spacing in (3000, 1000, 375):  # 375 mm: 24,000 parcels/hour at 2.5 m/s
        runs = [run(cfg, args.parcels, spacing) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        events, records = runs[0][1], runs[0][2]
        per_parcel_us = cpu / args.parcels * 1e6
        in_flight = max(1, round(cfg.belt.length_mm / spacing))
        print(
            f"{in_flight:>9} {spacing:>10} {per_parcel_us:>10.1f} {cpu / events * 1e6:>9.2f} "
            f"{records:>8} {BUDGET_MS * 1000 / per_parcel_us:>10.0f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
