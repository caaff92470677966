"""Which parcel the arm picks next, inside the tracking window.

Earliest deadline first: of the parcels waiting (decided, pickable, not yet taken), the one
furthest downstream leaves the window first, so it is tried first. A parcel whose earliest
feasible meeting lies past the window's downstream limit is **skipped** (it rides on to the
belt's end, recorded with the reason); the arm never chases it downstream. A parcel that
cannot be planned for another reason now (the belt stopped, out of reach where it is) waits
and is tried again on the next occasion, until it leaves the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.arm.grasp import Footprint
from edge.arm.kinematics import Joints
from edge.arm.moves import Mover, PickPlan
from edge.arm.tracking import BeltTracker, LeftWindow, Target

NOT_TRIED = "not tried yet"


@dataclass(frozen=True)
class Candidate:
    parcel_id: int
    target: Target
    clear_z: float | None = None  # the highest neighbour's top the cup must pass over
    others: tuple[Footprint, ...] = ()  # the other parcels on the belt (the approach's path)


@dataclass(frozen=True)
class Choice:
    """The planner's answer: the pick to make (or None), the parcels to skip with the
    reason, and why the others wait."""

    pick: tuple[int, PickPlan] | None
    skipped: tuple[tuple[int, str], ...]
    waiting: tuple[tuple[int, str], ...]


def order(cands: Sequence[Candidate], belt: BeltTracker, t: float) -> list[Candidate]:
    """Most downstream first (earliest to leave the window); ties by parcel id."""
    count = belt.count_at(t)
    return sorted(cands, key=lambda c: (-c.target.u_at_count(count, belt.cpm), c.parcel_id))


def choose(
    mover: Mover,
    q0: Joints,
    t0: float,
    cands: Sequence[Candidate],
    belt: BeltTracker,
    max_tries: int = 4,
) -> Choice:
    """The first candidate (in ``order``) the arm can pick starting at rest at ``q0`` at
    ``t0``. Parcels already past the window, or whose meeting would be, are skipped."""
    skipped: list[tuple[int, str]] = []
    waiting: list[tuple[int, str]] = []
    down = mover.cfg.tracking.downstream_mm
    tries = 0
    count = belt.count_at(t0)
    for c in order(cands, belt, t0):
        u = c.target.u_at_count(count, belt.cpm)
        if u > down:
            skipped.append((c.parcel_id, f"past the tracking window (u {u:.0f} > {down:.0f} mm)"))
            continue
        if tries >= max_tries:
            waiting.append((c.parcel_id, NOT_TRIED))
            continue
        tries += 1
        res = mover.pick(q0, t0, c.target, belt, c.clear_z, c.others)
        if isinstance(res, LeftWindow):
            skipped.append((c.parcel_id, str(res)))
        elif isinstance(res, str):
            waiting.append((c.parcel_id, res))
        else:
            rest = [w for w in waiting]
            return Choice((c.parcel_id, res), tuple(skipped), tuple(rest))
    return Choice(None, tuple(skipped), tuple(waiting))
