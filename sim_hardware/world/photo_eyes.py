"""Photo-eyes: a beam across the belt covering an interval [start, end] of it (mm).

The beam is blocked while any parcel's extent [tail, head] overlaps the interval. Edge
positions are exact, so the world reports each edge at the time the belt reached it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhotoEye:
    index: int
    start_mm: float
    end_mm: float

    def blocked_by(self, tail_mm: float, head_mm: float) -> bool:
        return head_mm >= self.start_mm and tail_mm <= self.end_mm

    def block_travel(self, head_at_0: float) -> float:
        """Belt travel (from the parcel's induction) at which its head reaches the beam."""
        return self.start_mm - head_at_0

    def clear_travel(self, tail_at_0: float) -> float:
        """Belt travel at which its tail leaves the beam."""
        return self.end_mm - tail_at_0
