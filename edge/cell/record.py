"""One parcel's final record: what happened to it, who decided, and how long each stage took.

Every tracked parcel ends as exactly one record; the core's tests hold it to that.

A record is published as one MQTT message, so it has a size bound whatever happened to the
parcel: the story keeps its first ``STORY_HEAD`` and last ``STORY_TAIL`` entries with one
``elided`` entry between them saying how many were left out, and every text is clipped to a
bounded JSON length (issue 13: late brain answers grew one story to 1.2 MB, over the broker's
packet limit, and that message wedged the outbox). ``MAX_RECORD_JSON_BYTES`` is the bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["sorted", "mis_sorted", "rejected", "run_out", "lost"]
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


STORY_HEAD = 12  # first entries kept: how the parcel was seen, read and decided
STORY_TAIL = 12  # last entries kept: how it ended
DETAIL_MAX = 160  # JSON-encoded bytes of one entry's detail (escapes counted)
STAGE_MAX = 40
TEXT_MAX = 256  # JSON-encoded bytes of reason, label, chute and the other texts
# The bound of json.dumps(record.to_json()): 25 story entries of at most ~330 bytes each, the
# clipped texts, numbers and keys (tests/edge/cell/test_record_bound.py checks it).
MAX_RECORD_JSON_BYTES = 12 * 1024
_ELIDED = "elided"


def clip_text(text: str, limit: int) -> str:
    """``text`` shortened so that its JSON encoding (quotes and escapes counted) is at most
    ``limit`` bytes; a shortened text ends with "...". Cheap for the short texts of a story."""
    if len(text) * 12 + 2 <= limit or len(json.dumps(text)) <= limit:  # 12: a surrogate pair
        return text
    lo, hi = 0, min(len(text), limit)
    while lo < hi:  # the longest prefix that fits with the marker
        mid = (lo + hi + 1) // 2
        if len(json.dumps(text[:mid] + "...")) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "..."


def _clip_opt(text: str | None) -> str | None:
    return None if text is None else clip_text(text, TEXT_MAX)


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

    def __post_init__(self) -> None:
        # Bounded at birth, so the record held in memory and the event published are small.
        object.__setattr__(self, "story", cap_story(self.story))
        object.__setattr__(self, "reason", clip_text(self.reason, TEXT_MAX))
        for name in ("chute", "actual_chute", "label", "label_source", "class_name"):
            object.__setattr__(self, name, _clip_opt(getattr(self, name)))

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


def cap_story(story: tuple[StoryEntry, ...] | list[StoryEntry]) -> tuple[StoryEntry, ...]:
    """The first STORY_HEAD and last STORY_TAIL entries, with one ``elided`` entry between
    them (its detail says how many were left out), each entry's texts clipped."""
    entries = tuple(story)
    if len(entries) > STORY_HEAD + STORY_TAIL + 1:
        head, tail = entries[:STORY_HEAD], entries[-STORY_TAIL:]
        left_out = len(entries) - STORY_HEAD - STORY_TAIL
        gap = StoryEntry(
            tail[0].t, tail[0].count, _ELIDED, f"{left_out} entries left out of the record"
        )
        entries = (*head, gap, *tail)
    return tuple(_clip_entry(e) for e in entries)


def _clip_entry(e: StoryEntry) -> StoryEntry:
    stage, detail = clip_text(e.stage, STAGE_MAX), clip_text(e.detail, DETAIL_MAX)
    if stage is e.stage and detail is e.detail:
        return e
    return StoryEntry(e.t, e.count, stage, detail)


def stage_latencies(milestones: dict[str, float]) -> dict[str, float]:
    """Milliseconds between consecutive milestones that both happened."""
    out: dict[str, float] = {}
    for name, start, end in STAGES:
        if start in milestones and end in milestones:
            out[name] = round((milestones[end] - milestones[start]) * 1000, 3)
    return out
