"""Divert planning: the encoder count at which a parcel's reference point reaches a diverter.

A parcel is known by the count at which its leading edge crossed the induction eye. Its
leading edge is at ``eye_mm + (count - lead_count) / counts_per_mm``, so it reaches a
diverter at a fixed count, independent of belt speed: the MCU fires there, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StrokePlan:
    count: int


@dataclass(frozen=True)
class TooLate:
    reason: str


def count_at(lead_count: int, eye_mm: float, position_mm: float, counts_per_mm: float) -> int:
    """The count at which a parcel whose leading edge crossed ``eye_mm`` at ``lead_count``
    has its leading edge at ``position_mm``."""
    return lead_count + round((position_mm - eye_mm) * counts_per_mm)


def position_mm(lead_count: int, eye_mm: float, count: int, counts_per_mm: float) -> float:
    """Where that parcel's leading edge is at ``count``."""
    return eye_mm + (count - lead_count) / counts_per_mm


def plan_stroke(
    lead_count: int,
    eye_mm: float,
    diverter_mm: float,
    counts_per_mm: float,
    now_count: int,
    min_lead_counts: int,
) -> StrokePlan | TooLate:
    """Refuse a target already passed or closer than ``min_lead_counts`` (the MCU refuses a
    past count, and a stroke that arrives just in time is a coin toss)."""
    target = count_at(lead_count, eye_mm, diverter_mm, counts_per_mm)
    ahead = target - now_count
    if ahead <= 0:
        return TooLate(f"already past its diverter (target count {target}, now {now_count})")
    if ahead < min_lead_counts:
        return TooLate(
            f"too close to schedule safely ({ahead} counts ahead at count {now_count}, "
            f"need {min_lead_counts})"
        )
    return StrokePlan(target)
