"""What the arm core alone sustains on the pure bench (tests/edge/arm/helpers.Bench): parcels
at a rate, destinations spread over the example's four, and the core's own CPU per fact.

    lowprio .venv/bin/python -m tests.edge.arm.throughput --rate 2400 --seconds 120
    lowprio .venv/bin/python -m tests.edge.arm.throughput --config configs/sim-arm.yaml

``--config``: any board config with an ``arm:`` section (default: the annotated example);
the belt runs at its nominal speed unless ``--speed`` says otherwise.

No physics here (the MuJoCo cell is `wolfpack sim --machine arm`): the cup seals 20 ms after
it sits on a top, the belt runs at a constant speed. It measures what the core's planning
allows with the example arm's limits, and what one fact costs the node's loop in CPU time
(thread time: contention on a loaded machine does not count).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from pathlib import Path

from ruamel.yaml import YAML

from edge.arm.config import ArmConfig
from edge.arm.events import Alarm, Move
from tests.edge.arm.helpers import EXAMPLE, Bench


def load(path: Path) -> ArmConfig:
    return ArmConfig.model_validate(YAML(typ="safe").load(path.read_text())["arm"])


def run(
    rate: float,
    seconds: float,
    speed: float | None,
    seed: int,
    cfg: ArmConfig | None = None,
    poisson: bool = False,
    unpickable: float = 0.0,
) -> dict[str, object]:
    rng = random.Random(seed)
    cfg = cfg or load(EXAMPLE)
    # a share of parcels the cup must leave (as the simulator's irregular items: 10-12 %):
    # they take belt and window, not the arm's time
    refused = [n for n, c in cfg.suction.classes.items() if not c.pickable]
    if unpickable > 0 and not refused:
        raise SystemExit("--unpickable: the config has no class with pickable: false")
    labels = {f"L{i}": d.id for i, d in enumerate(cfg.destinations)}
    across = max(0.0, cfg.belt.width_mm / 2 - 180)
    b = Bench(cfg, speed=speed or cfg.belt.nominal_speed_mm_s, brain=labels)
    spent: list[float] = []
    orig = b.core.handle

    def timed(fact):
        t = time.thread_time()
        out = orig(fact)
        spent.append(time.thread_time() - t)
        return out

    b.core.handle = timed  # type: ignore[method-assign]
    gap = 3600.0 / rate
    mm_s = b.speed
    next_t, track, t_end = b.t, 0, b.t + seconds
    last: tuple[float, float] | None = None  # the last parcel put on: when, its length
    due: list[float] = []  # Poisson arrivals waiting for the induction's gap
    n_pickable = 0
    while b.t < t_end:
        if poisson:
            while next_t <= b.t:
                due.append(next_t)
                next_t += rng.expovariate(1 / gap)
        elif b.t >= next_t:
            due.append(next_t)
            next_t += gap * rng.uniform(0.8, 1.2)
        if due:
            length = rng.uniform(200, 450)
            # as `wolfpack sim`'s induction: 80 mm at least between one parcel and the next
            if last is None or b.t >= last[0] + ((last[1] + length) / 2 + 80) / mm_s:
                due.pop(0)
                track += 1
                last = (b.t, length)
                label = rng.choice(list(labels))
                size = (length, rng.uniform(150, 300), rng.uniform(40, 250))
                where = rng.uniform(-across, across)
                cls = refused[0] if unpickable > 0 and rng.random() < unpickable else "box"
                n_pickable += cls == "box"
                b.see(track, 0.0, label=label, cls=cls, size=size, across=where)
        b.step()
    b.run(6.0)
    recs = b.records()
    out = Counter(r.outcome for r in recs)
    reasons = Counter(r.reason.split(":")[0] for r in recs if r.outcome == "passed")
    cycles = sorted(r.cycle_ms for r in recs if r.cycle_ms is not None)
    alarms = Counter(a.kind for a in b.actions if isinstance(a, Alarm))
    phases = _phases(b)
    spent.sort()
    # sustained: places per hour from the first place to the end of the arrivals (the belt's
    # ride to the window, ~6 s at 300 mm/s, is a fill time, not the arm's pace)
    placed_t = sorted(r.story[-1].t for r in recs if r.outcome == "placed" and r.story)
    sustained = None
    if placed_t and placed_t[0] < t_end - 10:
        n_in = sum(1 for x in placed_t if x <= t_end)
        sustained = round(n_in * 3600 / (t_end - placed_t[0]))
    return {
        "rate": rate,
        "seen": track,
        "records": len(recs),
        "placed": out["placed"],
        "outcomes": dict(out),
        "passed_by": dict(reasons),
        "placed_share": round(out["placed"] / max(1, track), 4),
        "pickable": n_pickable,
        "placed_of_pickable": round(out["placed"] / max(1, n_pickable), 4),
        "pickable_per_hour": round(n_pickable * 3600 / seconds),
        "picks_per_hour": round(out["placed"] * 3600 / seconds),
        "sustained_per_hour": sustained,
        "cycle_ms_p50": cycles[len(cycles) // 2] if cycles else None,
        "cycle_ms_p99": cycles[min(len(cycles) - 1, int(len(cycles) * 0.99))] if cycles else None,
        "alarms": dict(alarms),
        "phase_ms_mean": phases,
        "core_ms_per_fact_mean": round(statistics.mean(spent) * 1000, 3),
        "core_ms_per_fact_max": round(spent[-1] * 1000, 1),
    }


def _phases(b: Bench) -> dict[str, float]:
    """Where a pick's time goes, mean ms: the pick move's approach (start to contact), on the
    parcel's top until the carry takes over, the carry (to the end of its release dwell)."""
    picks = {m.parcel_id: m for m in b.moves("pick")}
    sums: Counter[str] = Counter()
    n = 0
    for c in b.moves("carry"):
        p = picks.get(c.parcel_id)
        if p is None or not isinstance(c, Move):
            continue
        n += 1
        mk = p.trajectory.marks
        sums["approach"] += mk["contact"] - p.trajectory.t0
        sums["on_top"] += c.trajectory.t0 - mk["contact"]
        sums["carry"] += c.trajectory.t_end - c.trajectory.t0
    return {k: round(v / max(1, n) * 1000) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, nargs="+", default=[1800, 2400])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--speed", type=float, default=None, help="belt mm/s (default: nominal)")
    ap.add_argument("--config", type=Path, default=EXAMPLE, help="board config (arm: section)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--poisson", action="store_true", help="Poisson arrivals (default: the rate's gap +-20 %%)"
    )
    ap.add_argument(
        "--unpickable",
        type=float,
        default=0.0,
        help="share of parcels of a class the cup must leave (the simulator's: ~0.12)",
    )
    a = ap.parse_args()
    for rate in a.rate:
        print(run(rate, a.seconds, a.speed, a.seed, load(a.config), a.poisson, a.unpickable))


if __name__ == "__main__":
    main()
