"""Parcel tracking in encoder coordinates.

A parcel is identified by the encoder count at which its leading edge crossed the induction
photo-eye (``lead_count``); its position at any later count follows from counts/mm alone, so
tracking survives belt speed changes and stops. Camera sightings are attached to the parcel
whose body covers the sighted point at the sighting's count (or start one the eye has not
seen yet); a fixed reader's reports are matched in passing order and never start a parcel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge.cell.divert import position_mm
from edge.cell.record import STORY_HEAD, STORY_TAIL, DecisionSource, StoryEntry
from edge.cell.routing import Size

_STORY_IN_MEMORY = 3 * (STORY_HEAD + STORY_TAIL)


@dataclass
class Parcel:
    """A parcel on the belt, from first sighting to its final record (mutable while active)."""

    id: int
    lead_count: int
    created_by: str
    trail_count: int | None = None
    label: str | None = None
    label_source: str | None = None
    conflict: str | None = None
    class_name: str | None = None
    size_mm: Size | None = None
    phase: str = "tracking"  # tracking -> asking -> decided
    ask_deadline: float | None = None
    chute: str | None = None
    reason: str = ""
    decision_source: DecisionSource | None = None
    stroke_count: int | None = None
    stroke_output: int | None = None
    stroke_chute: str | None = None
    stroke_pending: bool = False
    fired_count: int | None = None
    awaiting_length: bool = False  # aim "centre": the stroke waits for the trailing edge
    sensor_busy: bool = False  # its chute's sensor was still blocked when its stroke fired
    read_by: set[str] = field(default_factory=set)  # fixed readers that reported it (FIFO)
    cancelled_chutes: set[str] = field(default_factory=set)  # strokes cancelled (may have fired)
    stopped_past: str | None = None  # why a halt may have carried it past the reject diverter
    milestones: dict[str, float] = field(default_factory=dict)
    story: list[StoryEntry] = field(default_factory=list)
    story_elided: int = 0  # entries dropped from the middle while it was on the belt

    def note(self, t: float, count: int, stage: str, detail: str = "") -> None:
        """Add to its story; the middle is dropped (and counted) past a bound, so a parcel
        that collects late answers for minutes stays small in memory too."""
        self.story.append(StoryEntry(t, count, stage, detail))
        if len(self.story) > _STORY_IN_MEMORY:
            self.story_elided += len(self.story) - STORY_HEAD - STORY_TAIL
            del self.story[STORY_HEAD:-STORY_TAIL]

    def full_story(self) -> tuple[StoryEntry, ...]:
        """The story for its record: with one entry saying how many were left out."""
        if not self.story_elided:
            return tuple(self.story)  # the record caps it the same way if it is long
        head, tail = self.story[:STORY_HEAD], self.story[STORY_HEAD:][-STORY_TAIL:]
        left_out = self.story_elided + len(self.story) - len(head) - len(tail)
        gap = StoryEntry(tail[0].t, tail[0].count, "elided",
                         f"{left_out} entries left out of the record")  # fmt: skip
        return (*head, gap, *tail)

    def mark(self, milestone: str, t: float) -> None:
        self.milestones.setdefault(milestone, t)

    def length_mm(self, counts_per_mm: float) -> float | None:
        if self.trail_count is None:
            return None
        return (self.trail_count - self.lead_count) / counts_per_mm


class Tracker:
    """The parcels on the belt and the matching of edges and sightings to them."""

    def __init__(self, eye_mm: float, counts_per_mm: float, tolerance_mm: float) -> None:
        self.eye_mm = eye_mm
        self.counts_per_mm = counts_per_mm
        self.tolerance_mm = tolerance_mm
        self.active: dict[int, Parcel] = {}
        self._next_id = 1

    def position(self, parcel: Parcel, count: int) -> float:
        """Leading-edge position (mm) of ``parcel`` at ``count``."""
        return position_mm(parcel.lead_count, self.eye_mm, count, self.counts_per_mm)

    def new(self, lead_count: int, created_by: str) -> Parcel:
        parcel = Parcel(self._next_id, lead_count, created_by)
        self._next_id += 1
        self.active[parcel.id] = parcel
        return parcel

    def lead_count_for(self, count: int, point_mm: float) -> int:
        """The lead count of a parcel whose leading edge is at ``point_mm`` at ``count``."""
        return count - round((point_mm - self.eye_mm) * self.counts_per_mm)

    def match_leading_edge(self, count: int) -> Parcel | None:
        """A tracked parcel (seen by the camera first) whose leading edge is at the eye now."""
        tol = self.tolerance_mm * self.counts_per_mm
        best = min(
            (p for p in self.active.values() if abs(p.lead_count - count) <= tol),
            key=lambda p: abs(p.lead_count - count),
            default=None,
        )
        return best

    def match_trailing_edge(self, count: int) -> Parcel | None:
        """The most recent parcel that entered the eye and has not left it."""
        waiting = [
            p for p in self.active.values() if p.trail_count is None and p.lead_count < count
        ]
        return max(waiting, key=lambda p: p.lead_count, default=None)

    def match_in_order(
        self, count: int, point_mm: float, source: str, window_mm: float
    ) -> Parcel | None:
        """A fixed reader reports parcels in the order they pass it, each once (a label or a
        no-read), after a delay the host cannot see (decoding, the line, a busy host). So its
        report belongs to the oldest parcel whose middle has reached ``point_mm`` and that the
        reader has not reported yet, if that parcel passed the point at most ``window_mm``
        ago. Matching by position alone would give a late report to the parcel behind."""
        waiting = self.awaiting(count, point_mm, source, window_mm)
        return waiting[0] if waiting else None

    def middle(self, parcel: Parcel, count: int) -> float:
        """Position (mm) of ``parcel``'s middle at ``count`` (its leading edge while its
        length is not known yet)."""
        lead = self.position(parcel, count)
        if parcel.trail_count is None:
            return lead
        return lead - (parcel.trail_count - parcel.lead_count) / self.counts_per_mm / 2

    def awaiting(self, count: int, point_mm: float, source: str, window_mm: float) -> list[Parcel]:
        """Every parcel ``match_in_order`` could give a report to now, oldest first."""
        found = []
        for p in self.active.values():
            if source in p.read_by:
                continue
            lead = self.position(p, count)
            length = (
                (p.trail_count - p.lead_count) / self.counts_per_mm
                if p.trail_count is not None
                else 0.0
            )
            middle = lead - length / 2
            if point_mm - self.tolerance_mm <= middle <= point_mm + window_mm + length / 2:
                found.append(p)
        return sorted(found, key=lambda p: p.lead_count)

    def match_body(self, count: int, lead_mm: float, extent_mm: float) -> Parcel | None:
        """The parcel a camera's sighted body (leading edge ``lead_mm``, ``extent_mm`` long,
        at ``count``) is, or None. A parcel is a candidate when its middle (from the eye's
        edges) is within tolerance of the sighted middle (a yawed parcel's box is longer
        than the parcel, but centred on it), or when the sighted body lies within the
        parcel's (each end within tolerance: a long parcel boxed short, by a part of it: its
        middle may be far from the parcel's, but the part is on it). A parcel still on the
        eye (no trailing edge yet) joins by its leading edge, and its body, which reaches
        back past the eye, makes any sighting led within tolerance of that edge or behind it
        ambiguous. The sighting joins the one candidate when no other parcel could be it
        within tolerance; with none, or with two (touching parcels, a part near a
        neighbour), it is nobody's, as a neighbour's label would be a mis-sort."""
        middle = lead_mm - extent_mm / 2
        back_mm = lead_mm - extent_mm
        tol = self.tolerance_mm
        near: list[Parcel] = []
        others = 0  # parcels the sighting could also be, within tolerance
        for p in self.active.values():
            back, lead = self._span(p, count)
            if p.trail_count is None:
                joins = abs(lead - lead_mm) <= tol
                # its body reaches back past the eye: a sighting led within tolerance of its
                # leading edge, or behind it, may be a part of it
                could = lead_mm <= lead + tol
            else:
                joins = abs(self.middle(p, count) - middle) <= tol or (
                    back - tol <= back_mm and lead_mm <= lead + tol
                )
                could = joins
            if joins:
                near.append(p)
            elif could:
                others += 1
        if len(near) != 1 or others:
            return None
        return near[0]

    def _span(self, parcel: Parcel, count: int) -> tuple[float, float]:
        """Where ``parcel`` lies on the belt at ``count``: (back, leading edge) in mm; a
        parcel still on the eye reaches back past it, as far as is known (to the eye)."""
        lead = self.position(parcel, count)
        if parcel.trail_count is None:
            return -math.inf, lead
        return lead - (parcel.trail_count - parcel.lead_count) / self.counts_per_mm, lead

    def match_point(self, count: int, point_mm: float) -> Parcel | None:
        """The parcel whose body (leading edge back to trailing edge, or back past the eye if
        its trailing edge is not known yet) covers ``point_mm`` at ``count``, within tolerance;
        the nearest leading edge wins among several."""
        best: tuple[float, float, Parcel] | None = None
        for p in self.active.values():
            lead = self.position(p, count)
            if p.trail_count is not None:
                back = lead - (p.trail_count - p.lead_count) / self.counts_per_mm
            else:
                back = -math.inf
            gap = max(0.0, back - point_mm, point_mm - lead)
            if gap > self.tolerance_mm:
                continue
            key = (gap, abs(lead - point_mm), p)
            if best is None or key[:2] < best[:2]:
                best = key
        return best[2] if best else None
