"""Ground truth for scoring: where each parcel should have gone and where it went."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sim_hardware.world.parcels import Parcel

END = "end"  # rode off the belt end: lost to the sort


@dataclass
class ParcelRecord:
    parcel: Parcel
    intended: int  # station index (the reject chute for unreadable labels)
    inducted_s: float | None = None
    induct_travel_mm: float = 0.0  # belt position when its head crossed the induction point
    actual: int | str | None = None  # station index, END, or None while on the belt
    ended_s: float | None = None
    divert_error_mm: float | None = None  # centre minus diverter at the stroke's start

    @property
    def done(self) -> bool:
        return self.actual is not None


@dataclass
class Scoreboard:
    """Outcome counts, with the reject chute told apart from the sort chutes."""

    reject: int
    records: dict[int, ParcelRecord] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Safe beside a thread that adds parcels (the real-time runner): it works on a
        snapshot of the records (one C-level copy, which the GIL keeps whole)."""
        records = list(self.records.values())
        done = [r for r in records if r.done]
        outcome: Counter[str] = Counter()
        for r in done:
            if r.actual == END:
                outcome["lost"] += 1
            elif r.actual == r.intended:
                outcome["rejected_correct" if r.actual == self.reject else "sorted_correct"] += 1
            elif r.actual == self.reject:
                outcome["rejected_wrongly"] += 1
            else:
                outcome["mis_sorted"] += 1
        errors = sorted(abs(r.divert_error_mm) for r in done if r.divert_error_mm is not None)
        return {
            "parcels_in": len(records),
            "inducted": sum(1 for r in records if r.inducted_s is not None),
            "finished": len(done),
            "on_belt_or_waiting": len(records) - len(done),
            "sorted_correct": outcome["sorted_correct"],
            "rejected_correct": outcome["rejected_correct"],
            "rejected_wrongly": outcome["rejected_wrongly"],
            "mis_sorted": outcome["mis_sorted"],
            "lost": outcome["lost"],
            "divert_error_mm": _percentiles(errors),
        }


def _percentiles(sorted_values: list[float]) -> dict[str, float | None]:
    if not sorted_values:
        return {"p50": None, "p99": None, "max": None}

    def q(p: float) -> float:
        return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]

    return {"p50": q(0.5), "p99": q(0.99), "max": sorted_values[-1]}
