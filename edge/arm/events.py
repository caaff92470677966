"""What the arm core takes in (facts with their time, and encoder count where they have one)
and what it gives back (actions for the adapters). Plain frozen data: the core does no I/O.

Times are the node's monotonic seconds; the MCU adapter maps them onto the MCU's clock
(docs/mcu-protocol.md section 6). Joint vectors are (j1 deg, j2 deg, j3 mm, j4 deg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edge.arm.kinematics import Joints
from edge.arm.trajectory import Trajectory
from edge.cell.record import StoryEntry

# ---- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """The belt's encoder count at ``t`` (an encoder report, or the runtime's tick)."""

    count: int
    t: float


@dataclass(frozen=True)
class ParcelSeen:
    """The camera's detection of one parcel: the oriented box on the belt plane in the
    camera's belt coordinates (mm, from the vision calibration), at the frame's encoder count.
    ``track_id`` is the vision tracker's id: a parcel seen again updates its estimate."""

    track_id: int
    count: int
    t: float
    along_mm: float  # the box centre, along the travel
    across_mm: float  # the box centre, across (left of travel: +)
    length_mm: float  # the box's long side
    width_mm: float
    angle_deg: float  # the long side vs the travel
    height_mm: float | None = None  # None: not measured (a single camera looking down)
    class_name: str | None = None
    label: str | None = None
    # False: an early sighting, for the parcel's place on the belt; a final one (its label,
    # or its class alone when its track ends without one) follows, and decides it
    final: bool = True


@dataclass(frozen=True)
class CameraFrame:
    """The camera delivered a frame (with or without parcels): it is not silent."""

    count: int
    t: float


@dataclass(frozen=True)
class BrainAnswer:
    parcel_id: int
    destination: str | None  # None: the brain does not know it (the routing table decides)
    t: float


@dataclass(frozen=True)
class BrainUnavailable:
    parcel_id: int
    why: str
    t: float


@dataclass(frozen=True)
class JointState:
    """Measured joint positions (at start, after a replug, after a stop) at rest."""

    q: Joints
    t: float


@dataclass(frozen=True)
class MotionEnded:
    """The MCU finished a move's last segment (END): the arm is at rest at ``q``."""

    move_id: int
    q: Joints
    t: float


@dataclass(frozen=True)
class MotionHalted:
    """The MCU stopped the arm by itself or on command (queue underrun, safety input,
    watchdog, stop command): at rest at ``q`` from ``t`` on; the queue is empty."""

    reason: str
    q: Joints
    t: float


@dataclass(frozen=True)
class Grip:
    """The vacuum sensor crossed the grip threshold (the MCU's ``grip_changed``), or a
    periodic vacuum report (``gripped`` as the MCU judges it)."""

    gripped: bool
    kpa: float
    t: float


@dataclass(frozen=True)
class PlaceSensor:
    """A destination's entry sensor saw a parcel arrive."""

    destination: str
    t: float


@dataclass(frozen=True)
class Curtain:
    """The light curtain / door interlock: ``broken`` True while a beam is broken / the door
    is open (the MCU's safety input)."""

    broken: bool
    t: float


@dataclass(frozen=True)
class Estop:
    pressed: bool
    t: float


@dataclass(frozen=True)
class ReducedSpeed:
    """Reduced-speed mode on or off (a mode switch or an operator's command)."""

    on: bool
    t: float


@dataclass(frozen=True)
class SafetyState:
    """The shared safety state machine's decision, as the core must know it: ``running``
    allows picking; ``halt`` True when it stopped the machine (stop, e-stop, fault)."""

    state: str  # edge.safety.State value: boot, ready, running, stopping, estop, fault
    halt: bool
    emergency: bool
    cause: str
    t: float


ArmFact = (
    Tick
    | ParcelSeen
    | CameraFrame
    | BrainAnswer
    | BrainUnavailable
    | JointState
    | MotionEnded
    | MotionHalted
    | Grip
    | PlaceSensor
    | Curtain
    | Estop
    | ReducedSpeed
    | SafetyState
)

# ---- actions --------------------------------------------------------------------------------

MoveKind = Literal["pick", "carry", "escape", "place", "home"]


@dataclass(frozen=True)
class Move:
    """Send these timed joint setpoints to the MCU (as its timed linear segments; the last
    one ends at rest). ``replace_from``: None appends after everything queued; a time
    replaces what was planned from that instant on (the adapter streams segments at most
    ``tracking.lead_ms`` ahead, so what follows that instant is not yet on the MCU)."""

    move_id: int
    kind: MoveKind
    parcel_id: int | None
    trajectory: Trajectory
    replace_from: float | None = None


@dataclass(frozen=True)
class StopMotion:
    """Stop the arm now (the MCU's controlled stop) and drop every queued segment."""

    cause: str
    emergency: bool
    t: float


@dataclass(frozen=True)
class Suction:
    on: bool
    cause: str
    t: float


@dataclass(frozen=True)
class AskBrain:
    parcel_id: int
    label: str
    class_name: str | None
    size_mm: tuple[float, float, float] | None
    deadline_t: float


@dataclass(frozen=True)
class SafetyInput:
    """Feed the shared safety state machine (the node calls ``host.safety.<kind>``):
    ``estop`` (value: pressed), ``fault`` (the light curtain), ``motion`` (value: the arm
    moves; the machine's 'belt' input: moving while not running is stopped, moving after
    an e-stop's stop time is an alarm)."""

    kind: Literal["estop", "fault", "motion"]
    value: bool
    cause: str
    t: float


Outcome = Literal["placed", "unconfirmed", "misplaced", "dropped", "passed"]


@dataclass(frozen=True)
class PickRecord:
    """One parcel's end: what happened, where, who decided, and its story."""

    parcel_id: int
    outcome: Outcome
    destination: str  # where it was meant to go (pass_id: left on the belt)
    actual: str | None  # where a sensor saw it arrive
    reason: str
    decision_source: Literal["brain", "routing_table", "unreadable", "safety"] | None
    label: str | None
    class_name: str | None
    size_mm: tuple[float, float, float] | None
    attempts: int
    contact: tuple[float, float] | None  # cup x, y at contact (arm frame, mm)
    dropped_at: tuple[float, float, float] | None  # cup x, y, z when the grip was lost
    cycle_ms: float | None  # first move's start to release
    latency_ms: dict[str, float] = field(default_factory=dict)
    story: tuple[StoryEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "parcel_id": self.parcel_id,
            "outcome": self.outcome,
            "destination": self.destination,
            "actual": self.actual,
            "reason": self.reason,
            "decision_source": self.decision_source,
            "label": self.label,
            "class": self.class_name,
            "size_mm": list(self.size_mm) if self.size_mm else None,
            "attempts": self.attempts,
            "contact_mm": list(self.contact) if self.contact else None,
            "dropped_at_mm": list(self.dropped_at) if self.dropped_at else None,
            "cycle_ms": self.cycle_ms,
            "latency_ms": dict(self.latency_ms),
            "story": [
                {"t": s.t, "count": s.count, "stage": s.stage, "detail": s.detail}
                for s in self.story
            ],
        }


@dataclass(frozen=True)
class PublishPick:
    record: PickRecord


AlarmKind = Literal[
    "drop",
    "no_grip",
    "unconfirmed_place",
    "misplaced",
    "camera_silent",
    "camera_back",
    "curtain",
    "stop_time",
    "unplanned",
    "unexpected_place",
    "release_refused",
]


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    detail: str
    t: float


ArmAction = Move | StopMotion | Suction | AskBrain | SafetyInput | PublishPick | Alarm
