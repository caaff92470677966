"""The cell core's parcels in flight as plain data, and back: what a node killed and
restarted needs to go on tracking the parcels already on the belt (issue 13: "nothing lost").

Pure like the core: ``snapshot`` reads it, ``restore`` writes it; the node decides where the
data lives (``edge/node/parcel_journal.py``). Tracking is in encoder counts, and the MCU keeps
counting while the node is away, so a restored parcel's position is as exact as before. What
cannot be trusted is said in the record: a stroke that was scheduled when the node died may
or may not have fired (the MCU's watchdog cancels what had not), so such a parcel is decided
again at the next start; a parcel that left the belt meanwhile is finished as lost with why.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from edge.cell.controller import CellCore
from edge.cell.record import StoryEntry
from edge.cell.tracking import Parcel

FORMAT = "wolfpack-parcels-v1"
RESTART_SLACK_MM = 500.0  # an encoder this far behind the snapshot: the MCU restarted
_PHASES = ("tracking", "asking", "decided")


def snapshot(
    core: CellCore, count: int | None, t: float, actions: dict[int, int] | None = None
) -> dict[str, Any]:
    """The active parcels and the next parcel id, JSON-ready. ``actions``: parcel id -> the
    MCU action id of its pending stroke (so a stroke that fires while the node is away is
    recognised when the MCU reports it to the next node)."""
    actions = actions or {}
    parcels = []
    for p in core.active.values():
        entry = _parcel(p)
        if p.id in actions:
            entry["action"] = actions[p.id]
        parcels.append(entry)
    return {
        "format": FORMAT,
        "count": count,
        "t": t,
        "next_id": core.tracker._next_id,
        "parcels": parcels,
        "reader_lags": {k: list(v) for k, v in core._lags.items()},
    }


def pending_actions(data: dict[str, Any]) -> dict[int, int]:
    """Parcel id -> MCU action id of the strokes pending in a snapshot."""
    out: dict[int, int] = {}
    for raw in data.get("parcels", []):
        if isinstance(raw, dict) and isinstance(raw.get("action"), int):
            if isinstance(raw.get("id"), int):
                out[raw["id"]] = raw["action"]
    return out


def _parcel(p: Parcel) -> dict[str, Any]:
    return {
        "id": p.id,
        "lead": p.lead_count,
        "trail": p.trail_count,
        "by": p.created_by,
        "label": p.label,
        "label_source": p.label_source,
        "conflict": p.conflict,
        "class": p.class_name,
        "size": list(p.size_mm) if p.size_mm is not None else None,
        "phase": p.phase,
        "deadline": p.ask_deadline,
        "chute": p.chute,
        "reason": p.reason,
        "source": p.decision_source,
        "stroke": p.stroke_count,
        "stroke_chute": p.stroke_chute,
        "pending": p.stroke_pending,
        "fired": p.fired_count,
        "read_by": sorted(p.read_by),
        "cancelled": sorted(p.cancelled_chutes),
        "milestones": p.milestones,
    }


class RestoreError(ValueError):
    """The saved data is not a snapshot this core can take (another format, a corrupt file)."""


def next_id(data: dict[str, Any]) -> int:
    """The first parcel id a restarted node may give out (ids stay unique across restarts)."""
    _check(data)
    return int(data["next_id"])


def restore(
    core: CellCore,
    data: dict[str, Any],
    count: int,
    t: float,
    recorded: Collection[tuple[int, int]] = (),
) -> list[str]:
    """Put the saved parcels back into ``core`` at encoder ``count``; returns notes for the
    log. Parcels are left for the core's own rules (deadlines, decision point, confirmation
    windows) at its next event; nothing is scheduled here (the core is halted until start).

    ``recorded``: (parcel id, lead count) of records the dead node had already committed.
    Its record goes out before the snapshot that drops the parcel, so a kill between the two
    leaves a finished parcel in the journal; it is not restored (one parcel, one record)."""
    _check(data)
    recorded = set(recorded)
    saved_count = data.get("count")
    notes: list[str] = []
    core.tracker._next_id = max(core.tracker._next_id, int(data["next_id"]))
    lags = data.get("reader_lags")
    if isinstance(lags, dict):  # the readers' lags: the first reports after the restart
        for reader, values in lags.items():  # are matched by them, not by passing order
            if isinstance(values, list) and reader not in core._lags:
                core._lags[str(reader)] = [float(v) for v in values[-16:]
                                           if isinstance(v, int | float)]  # fmt: skip
    core.now_count = count if core.now_count is None else max(core.now_count, count)
    core.now_t = max(core.now_t, t)
    lost_why = None
    slack = round(RESTART_SLACK_MM * core.cpm)  # events of the dead node's last moments
    if isinstance(saved_count, int) and count < saved_count - slack:
        lost_why = (
            f"the encoder went back from {saved_count} to {count} while the node was down "
            "(the MCU restarted): positions unknown"
        )
    for raw in data["parcels"]:
        p = _from(raw)
        if p.id in core.active or p.id in core.finished:
            continue
        if (p.id, p.lead_count) in recorded:
            notes.append(f"parcel {p.id} not restored: its record was committed before the "
                         "node died")  # fmt: skip
            continue
        p.note(t, count, "restored", "tracking resumed after a node restart")
        core.tracker.active[p.id] = p
        if p.stroke_pending:
            # scheduled on the MCU by the node that died: fired, or cancelled by its watchdog
            p.stroke_pending = False
            p.note(t, count, "stroke_unknown", "scheduled before the restart; decided again")
        if lost_why is not None:
            core._finish(p, "lost", reason=lost_why)
            continue
        pos = core.tracker.position(p, count)
        if pos > core.cfg.belt.length_mm:
            core._finish(p, "lost", reason=f"left the belt while the node was down ({pos:.0f} mm)")
            continue
        passed = core.tracker.middle(p, count) - core.tracker.tolerance_mm
        for reader in core.cfg.scanners:  # its report went to a node that was not there
            if reader.name not in p.read_by and passed > reader.position_mm:
                p.read_by.add(reader.name)
                p.note(t, count, "no_report", f"passed {reader.name} while the node was down")
    notes.append(f"{len(core.active)} parcels restored at count {count}")
    return notes


def _check(data: Any) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RestoreError(f"not a {FORMAT} snapshot")
    if not isinstance(data.get("next_id"), int) or not isinstance(data.get("parcels"), list):
        raise RestoreError("snapshot without next_id / parcels")


def _from(raw: Any) -> Parcel:
    try:
        p = Parcel(int(raw["id"]), int(raw["lead"]), str(raw["by"]))
        p.trail_count = None if raw["trail"] is None else int(raw["trail"])
        p.label, p.label_source = raw["label"], raw["label_source"]
        p.conflict, p.class_name = raw["conflict"], raw["class"]
        size = raw["size"]
        p.size_mm = None if size is None else (float(size[0]), float(size[1]), float(size[2]))
        phase = raw["phase"]
        if phase not in _PHASES:
            raise RestoreError(f"parcel {p.id}: unknown phase {phase!r}")
        p.phase = phase
        p.ask_deadline = raw["deadline"]
        p.chute, p.reason, p.decision_source = raw["chute"], raw["reason"], raw["source"]
        p.stroke_count, p.stroke_chute = raw["stroke"], raw["stroke_chute"]
        p.stroke_pending, p.fired_count = bool(raw["pending"]), raw["fired"]
        p.read_by = set(raw["read_by"])
        p.cancelled_chutes = {str(c) for c in raw.get("cancelled", [])}
        p.milestones = {str(k): float(v) for k, v in raw["milestones"].items()}
        p.story = [StoryEntry(0.0, p.lead_count, "journal", "parcel restored from the journal")]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RestoreError(f"bad parcel entry: {exc}") from None
    if p.phase == "decided" and p.chute is None:
        raise RestoreError(f"parcel {p.id}: decided without a chute")
    return p
