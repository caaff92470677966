"""One parcel's final record: what happened to it, who decided, and how long each stage took.

Every tracked parcel ends as exactly one record; the core's tests hold it to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["sorted", "mis_sorted", "rejected", "lost"]
DecisionSource = Literal["brain", "routing_table", "unreadable", "safety"]

# Stage latencies, each from the previous milestone: (name, from, to).
STAGES = (
    ("seen_to_label", "seen", "label"),
    ("label_to_decision", "label", "decided"),
    ("decision_to_scheduled", "decided", "scheduled"),
    ("scheduled_to_mcu_ack", "scheduled", "accepted"),
    ("scheduled_to_fired", "scheduled", "fired"),
    ("fired_to_confirmed", "fired", "confirmed"),
)


@dataclass(frozen=True)
class StoryEntry:
    t: float
    count: int
    stage: str
    detail: str


@dataclass(frozen=True)
class ParcelRecord:
    parcel_id: int
    outcome: Outcome
    chute: str  # where it was meant to go at the end
    actual_chute: str | None  # where a sensor saw it (None: not confirmed)
    confirmed: bool
    reason: str  # why it went where it went (decision, reroute, loss)
    decision_source: DecisionSource | None
    label: str | None
    label_source: str | None
    class_name: str | None
    size_mm: tuple[float, float, float] | None
    lead_count: int
    scheduled_count: int | None
    fired_count: int | None
    divert_error_mm: float | None  # fired minus planned count, in mm
    latency_ms: dict[str, float] = field(default_factory=dict)
    story: tuple[StoryEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the event payload published for the parcel)."""
        return {
            "parcel_id": self.parcel_id,
            "outcome": self.outcome,
            "chute": self.chute,
            "actual_chute": self.actual_chute,
            "confirmed": self.confirmed,
            "reason": self.reason,
            "decision_source": self.decision_source,
            "label": self.label,
            "label_source": self.label_source,
            "class": self.class_name,
            "size_mm": list(self.size_mm) if self.size_mm else None,
            "lead_count": self.lead_count,
            "scheduled_count": self.scheduled_count,
            "fired_count": self.fired_count,
            "divert_error_mm": self.divert_error_mm,
            "latency_ms": dict(self.latency_ms),
            "story": [
                {"t": s.t, "count": s.count, "stage": s.stage, "detail": s.detail}
                for s in self.story
            ],
        }


def stage_latencies(milestones: dict[str, float]) -> dict[str, float]:
    """Milliseconds between consecutive milestones that both happened."""
    out: dict[str, float] = {}
    for name, start, end in STAGES:
        if start in milestones and end in milestones:
            out[name] = round((milestones[end] - milestones[start]) * 1000, 3)
    return out
