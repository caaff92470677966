"""Action states and blocking (VDA 5050 2.1 sections 6.8, 6.11, 6.12).

An action's state goes WAITING -> INITIALIZING -> RUNNING (<-> PAUSED) -> FINISHED | FAILED.
The actions of one node (or edge) run in list order by blocking type: NONE and SOFT ones
gather into a parallel group, a HARD one runs alone after the group before it has ended,
and the next group starts after it (figure 17). SOFT and HARD actions hold the vehicle
while they run; NONE ones do not.

Pure bookkeeping: the vehicle core decides when a site is reached and sends the commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleet_link.vda5050.models import Action

Status = Literal["WAITING", "INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED"]
Scope = Literal["NODE", "EDGE", "INSTANT"]
STATUSES: tuple[Status, ...] = (
    "WAITING", "INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED",
)  # fmt: skip
TERMINAL: frozenset[str] = frozenset({"FINISHED", "FAILED"})

# The official 2.1.0 state.schema lists no PAUSED (its description does; it was added to the
# schema after 2.1.0). A paused action goes out as RUNNING with this result description, the
# vehicle's ``paused`` flag telling why; internally it is PAUSED.
WIRE_PAUSED_AS = "RUNNING"
PAUSED_NOTE = "paused"

# Legal transitions reported by the vehicle (figure 16), besides staying put.
_NEXT: dict[str, frozenset[str]] = {
    "WAITING": frozenset({"INITIALIZING", "RUNNING", "FINISHED", "FAILED"}),
    "INITIALIZING": frozenset({"RUNNING", "FINISHED", "FAILED", "PAUSED"}),
    "RUNNING": frozenset({"PAUSED", "FINISHED", "FAILED"}),
    "PAUSED": frozenset({"RUNNING", "FINISHED", "FAILED"}),
    "FINISHED": frozenset(),
    "FAILED": frozenset(),
}


def can_move(old: str, new: str) -> bool:
    return new == old or new in _NEXT.get(old, frozenset())


@dataclass
class ActionRecord:
    """One actionState: the action, where it belongs, where it is in its life."""

    action: Action
    scope: Scope
    owner_sequence_id: int | None = None  # the node's or edge's sequenceId
    owner_id: str | None = None  # its nodeId or edgeId
    status: Status = "WAITING"
    result: str | None = None
    triggered: bool = False  # its node reached / edge entered / instant: received
    started: bool = False  # handed to the vehicle (StartAction sent)

    @property
    def action_id(self) -> str:
        return self.action.action_id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def holds_vehicle(self) -> bool:
        """A triggered SOFT/HARD action that has not ended keeps the vehicle standing."""
        return (
            self.triggered and not self.terminal and self.action.blocking_type in ("SOFT", "HARD")
        )

    def wire(self) -> dict[str, Any]:
        """The actionState as the 2.1.0 state schema has it."""
        out: dict[str, Any] = {
            "actionId": self.action.action_id,
            "actionType": self.action.action_type,
            "actionStatus": WIRE_PAUSED_AS if self.status == "PAUSED" else self.status,
        }
        if self.action.description is not None:
            out["actionDescription"] = self.action.description
        result = self.result
        if self.status == "PAUSED":
            result = PAUSED_NOTE if not result else f"{PAUSED_NOTE}: {result}"
        if result is not None:
            out["resultDescription"] = result
        return out


def groups(actions: list[ActionRecord]) -> list[list[ActionRecord]]:
    """Execution groups of one site in list order: runs of NONE/SOFT together, each HARD
    alone (figure 17)."""
    out: list[list[ActionRecord]] = []
    run: list[ActionRecord] = []
    for rec in actions:
        if rec.action.blocking_type == "HARD":
            if run:
                out.append(run)
                run = []
            out.append([rec])
        else:
            run.append(rec)
    if run:
        out.append(run)
    return out


@dataclass
class Site:
    """The actions of the node just reached or the edge just entered, group by group."""

    kind: Literal["NODE", "EDGE"]
    sequence_id: int
    pending: list[list[ActionRecord]] = field(default_factory=list)
    current: list[ActionRecord] = field(default_factory=list)

    def next_group(self) -> list[ActionRecord] | None:
        """The group to start now: the next one once every action of the current one ended."""
        if any(not r.terminal for r in self.current):
            return None
        if not self.pending:
            return None
        self.current = self.pending.pop(0)
        return self.current

    @property
    def done(self) -> bool:
        return not self.pending and all(r.terminal for r in self.current)


class ActionBook:
    """Every actionState the vehicle reports, in the order received; lookup by actionId."""

    def __init__(self, keep_instant: int = 50) -> None:
        self._records: dict[str, ActionRecord] = {}
        self._keep_instant = keep_instant

    def add(self, rec: ActionRecord) -> None:
        self._records.pop(rec.action_id, None)
        self._records[rec.action_id] = rec
        self._trim()

    def get(self, action_id: str) -> ActionRecord | None:
        return self._records.get(action_id)

    def __contains__(self, action_id: str) -> bool:
        return action_id in self._records

    def all(self) -> list[ActionRecord]:
        return list(self._records.values())

    def of_order(self) -> list[ActionRecord]:
        return [r for r in self._records.values() if r.scope != "INSTANT"]

    def owned_by(self, scope: Scope, sequence_id: int) -> list[ActionRecord]:
        return [
            r
            for r in self._records.values()
            if r.scope == scope and r.owner_sequence_id == sequence_id
        ]

    def drop_order_actions(self, keep_unfinished: bool = False) -> None:
        """A new order: the previous order's actionStates go (unfinished ones may stay)."""
        self._records = {
            k: r
            for k, r in self._records.items()
            if r.scope == "INSTANT" or (keep_unfinished and not r.terminal)
        }

    def drop_untriggered(self, sequence_ids: set[int]) -> None:
        """Horizon replaced: its actions (never triggered) go."""
        self._records = {
            k: r
            for k, r in self._records.items()
            if r.scope == "INSTANT" or r.triggered or r.owner_sequence_id not in sequence_ids
        }

    def wire(self) -> list[dict[str, Any]]:
        return [r.wire() for r in self._records.values()]

    def _trim(self) -> None:
        """Keep at most ``keep_instant`` ended instant actions (oldest go first), so a master
        that sends a stateRequest every second does not grow the state without bound."""
        ended = [k for k, r in self._records.items() if r.scope == "INSTANT" and r.terminal]
        for key in ended[: max(0, len(ended) - self._keep_instant)]:
            del self._records[key]
