"""What the cell controller core takes in (facts with their time and encoder count) and what
it gives back (actions for the drivers). Plain frozen data: the core does no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.cell.record import ParcelRecord
from edge.cell.routing import Size

# ---- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Time and belt position moved on (an encoder report, or a timer reading the encoder)."""

    count: int
    t: float


@dataclass(frozen=True)
class EyeEdge:
    """A photo-eye changed: blocked=True is a leading edge, False a trailing edge."""

    eye: str
    blocked: bool
    count: int
    t: float


@dataclass(frozen=True)
class Sighting:
    """A camera detection or a scanner read. ``position_mm`` is a point on the parcel at
    ``count``: the camera gives its leading edge, a fixed scanner its own position."""

    source: str  # "camera", "scanner", ...
    count: int
    t: float
    position_mm: float
    label: str | None = None
    class_name: str | None = None
    size_mm: Size | None = None
    in_order_mm: float = 0.0  # > 0: a fixed reader's report, matched in passing order
    no_read: bool = False  # the reader saw the parcel and could not read it
    # > 0: a camera's sighted body, this far back along the belt from position_mm (its box):
    # matched by its middle to the parcel the eye measured, or to none (tracking.match_body)
    extent_mm: float = 0.0
    # a camera's length x width of the parcel on the belt plane: shown in the record's story
    # (the simulator scores it against the truth), never routed on (a camera gives no height)
    measured_mm: tuple[float, float] | None = None


@dataclass(frozen=True)
class BrainAnswer:
    parcel_id: int
    chute: str | None  # None: the brain does not know this parcel (routing table decides)
    t: float


@dataclass(frozen=True)
class BrainUnavailable:
    """The brain could not be asked or failed: decide locally now rather than at the deadline."""

    parcel_id: int
    why: str
    t: float


@dataclass(frozen=True)
class StrokeDone:
    """The MCU reported that the parcel's stroke fired (action_done) at ``count``."""

    parcel_id: int
    count: int
    t: float


@dataclass(frozen=True)
class StrokeAccepted:
    """The MCU accepted the stroke: it is scheduled where time is kept."""

    parcel_id: int
    t: float


@dataclass(frozen=True)
class StrokeRefused:
    """The MCU refused the stroke (e.g. the count had passed by the time it arrived)."""

    parcel_id: int
    why: str
    t: float


@dataclass(frozen=True)
class ChuteSensor:
    """A chute-entry sensor saw a parcel fall in (blocked=True), or cleared again (False)."""

    chute: str
    count: int
    t: float
    blocked: bool = True


@dataclass(frozen=True)
class ChuteFull:
    chute: str
    full: bool
    t: float


@dataclass(frozen=True)
class Halt:
    """Safety took diverting away (e-stop, fault, stop): cancel every pending stroke."""

    cause: str
    t: float


@dataclass(frozen=True)
class Resume:
    t: float


CellEvent = (
    Tick
    | EyeEdge
    | Sighting
    | BrainAnswer
    | BrainUnavailable
    | StrokeDone
    | StrokeAccepted
    | StrokeRefused
    | ChuteSensor
    | ChuteFull
    | Halt
    | Resume
)

# ---- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AskBrain:
    parcel_id: int
    label: str
    class_name: str | None
    size_mm: Size | None
    deadline_t: float


@dataclass(frozen=True)
class ScheduleStroke:
    """Fire ``output`` for ``duration_ms`` when encoder ``encoder`` reaches ``count``."""

    parcel_id: int
    chute: str
    output: int
    count: int
    duration_ms: float
    encoder: int


@dataclass(frozen=True)
class CancelStroke:
    parcel_id: int
    chute: str
    output: int
    count: int


@dataclass(frozen=True)
class PublishRecord:
    record: ParcelRecord


AlarmKind = Literal[
    "jam", "chute_full", "chute_free", "mis_sort", "unmatched_chute_event", "unmatched_read",
    "run_out",
]


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    detail: str
    t: float
    fault: bool = False  # True: safety must stop the cell (a jam)


CellAction = AskBrain | ScheduleStroke | CancelStroke | PublishRecord | Alarm
