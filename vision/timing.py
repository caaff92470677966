"""Per-stage latency summaries (p50 / p99) of pipeline runs, as a printable table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class _Timed(Protocol):
    times: object
    label_reads: list[float]

    @property
    def total_ms(self) -> float: ...


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, mean) in the unit given; zeros for an empty sequence."""
    if not values:
        return 0.0, 0.0, 0.0
    a = np.asarray(values, dtype=np.float64)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.mean())


def stage_samples(results: Sequence[_Timed]) -> dict[str, list[float]]:
    """Milliseconds per frame for each stage, plus per-read label times and the total."""
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "nms": []}
    for r in results:
        t = r.times
        stages["preprocess"].append(t.preprocess)  # type: ignore[attr-defined]
        stages["inference"].append(t.inference)  # type: ignore[attr-defined]
        stages["nms"].append(t.nms)  # type: ignore[attr-defined]
        for k, v in t.extra.items():  # type: ignore[attr-defined]
            stages.setdefault(k, []).append(v)
    stages["label read (per parcel)"] = [ms for r in results for ms in r.label_reads]
    stages["whole pipeline"] = [r.total_ms for r in results]
    return stages


def table(rows: list[tuple[str, tuple[float, float, float], str]]) -> str:
    lines = [f"{'stage':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s}  note", "-" * 72]
    for name, (p50, p99, mean), note in rows:
        lines.append(f"{name:34s} {p50:8.2f} {p99:8.2f} {mean:8.2f}  {note}")
    return "\n".join(lines)


def summarize(results: Sequence[_Timed]) -> str:
    samples = stage_samples(results)
    rows = []
    for name, values in samples.items():
        note = f"{len(values)} reads" if name == "label read (per parcel)" else ""
        rows.append((name, percentiles(values), note))
    total = percentiles(samples["whole pipeline"])
    fps = 1000.0 / total[2] if total[2] else 0.0
    return table(rows) + f"\nthroughput: {fps:.0f} frames/s (mean), one frame at a time"
