"""What the arm core alone sustains on the pure bench (tests/edge/arm/helpers.Bench): parcels
at a rate, destinations spread over the example's four, and the core's own CPU per fact.

    nice -n 19 .venv/bin/python -m tests.edge.arm.throughput --rate 2400 --seconds 120

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

from edge.arm.events import Alarm
from tests.edge.arm.helpers import Bench, example_cfg

LABELS = {"DE-10": "c1", "DE-20": "c2", "AT-1": "c3", "EN-1": "c4"}


def run(rate: float, seconds: float, speed: float, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    b = Bench(example_cfg(), speed=speed, brain=LABELS)
    spent: list[float] = []
    orig = b.core.handle

    def timed(fact):
        t = time.thread_time()
        out = orig(fact)
        spent.append(time.thread_time() - t)
        return out

    b.core.handle = timed  # type: ignore[method-assign]
    gap = 3600.0 / rate
    next_t, track, t_end = b.t, 0, b.t + seconds
    while b.t < t_end:
        if b.t >= next_t:
            track += 1
            b.see(
                track,
                0.0,
                label=rng.choice(list(LABELS)),
                size=(rng.uniform(200, 450), rng.uniform(150, 300), rng.uniform(40, 250)),
                across=rng.uniform(-120, 120),
            )
            next_t += gap * rng.uniform(0.8, 1.2)
        b.step()
    b.run(6.0)
    recs = b.records()
    out = Counter(r.outcome for r in recs)
    reasons = Counter(r.reason.split(":")[0] for r in recs if r.outcome == "passed")
    cycles = sorted(r.cycle_ms for r in recs if r.cycle_ms is not None)
    alarms = Counter(a.kind for a in b.actions if isinstance(a, Alarm))
    spent.sort()
    return {
        "rate": rate,
        "seen": track,
        "records": len(recs),
        "placed": out["placed"],
        "outcomes": dict(out),
        "passed_by": dict(reasons),
        "placed_share": round(out["placed"] / max(1, track), 4),
        "picks_per_hour": round(out["placed"] * 3600 / seconds),
        "cycle_ms_p50": cycles[len(cycles) // 2] if cycles else None,
        "cycle_ms_p99": cycles[min(len(cycles) - 1, int(len(cycles) * 0.99))] if cycles else None,
        "alarms": dict(alarms),
        "core_ms_per_fact_mean": round(statistics.mean(spent) * 1000, 3),
        "core_ms_per_fact_max": round(spent[-1] * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, nargs="+", default=[1800, 2400])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--speed", type=float, default=800, help="belt mm/s")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    for rate in a.rate:
        print(run(rate, a.seconds, a.speed, a.seed))


if __name__ == "__main__":
    main()
