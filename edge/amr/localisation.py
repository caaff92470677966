"""Localisation: odometry corrected by floor codes read at nodes (pure, no clock).

A downward camera reads a 2D code (DataMatrix / QR) glued to the floor at known map poses.
A reading gives the code's id and its pose in the vehicle frame at the moment of the frame
(dx, dy forward/left of the vehicle centre, dtheta the code's rotation relative to the
vehicle). With the code's map pose that fixes the vehicle's map pose at that moment; the
odometry travelled since the frame is applied on top, so a frame that arrives 80 ms late
still corrects the present pose exactly.

Between codes the pose comes from odometry alone and its uncertainty grows with distance
travelled and angle turned (a worst-case bound, not a standard deviation: slip and wheel
radius errors are systematic). When the bound exceeds the allowed deviation the vehicle must
stop and report an error: it no longer knows well enough where it is.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.amr.odometry import Pose


@dataclass(frozen=True)
class FloorCodeReading:
    """One decoded floor code: its id and its pose in the vehicle frame at ``clock``."""

    code: str
    dx: float
    dy: float
    dtheta: float
    clock: int  # MCU clock (or any monotonic stamp shared with the odometry updates)


@dataclass(frozen=True)
class UncertaintyModel:
    """How fast the pose bound grows, and how good a floor code fix is.

    Defaults: 1 % of distance plus 2 cm per radian turned for position, 0.5 deg per metre
    and 1 % of the turned angle for heading; a floor code fixes position to 3 mm and heading
    to 0.3 deg (camera resolution and code placement).
    """

    xy_per_m: float = 0.01
    xy_per_rad: float = 0.02
    theta_per_m: float = math.radians(0.5)
    theta_per_rad: float = 0.01
    code_xy: float = 0.003
    code_theta: float = math.radians(0.3)


@dataclass(frozen=True)
class LocalisationError:
    """The bound grew beyond what is allowed (or a code is unknown): the node raises it."""

    kind: str  # "uncertainty" | "unknown_code"
    message: str


@dataclass
class LocalisationState:
    pose: Pose
    xy_bound: float
    theta_bound: float
    since_code_m: float = 0.0
    last_code: str | None = None
    errors: list[LocalisationError] = field(default_factory=list)


class Localiser:
    """Keeps the pose estimate: odometry poses in, floor code readings in, pose out.

    ``on_odometry(clock, odom_pose)`` is called with every odometry pose (as integrated by
    ``Odometry``, in its own frame); ``on_code(reading)`` with every decoded floor code.
    The estimate is ``correction.compose(odom_pose)``: a code reading replaces the
    correction. ``check(allowed_xy, allowed_theta)`` says whether the bound is within the
    deviation allowed at the next node, and returns the error to raise when it is not.
    """

    HISTORY = 256  # odometry poses kept to place a late code reading (about 5 s at 50 Hz)

    def __init__(
        self,
        codes: Mapping[str, Pose],
        start: Pose,
        model: UncertaintyModel | None = None,
        start_xy_bound: float = 0.0,
        start_theta_bound: float = 0.0,
    ) -> None:
        self.codes = dict(codes)
        self.model = model or UncertaintyModel()
        self._correction = start  # map pose of the odometry frame's origin
        self._odom: Pose = Pose(0.0, 0.0, 0.0)
        self._history: deque[tuple[int, Pose]] = deque(maxlen=self.HISTORY)
        self.state = LocalisationState(start, start_xy_bound, start_theta_bound)
        self._errored = False

    @property
    def pose(self) -> Pose:
        return self.state.pose

    def init_position(self, pose: Pose, xy_bound: float = 0.0, theta_bound: float = 0.0) -> None:
        """The operator (VDA 5050 initPosition) says where the vehicle is."""
        self._correction = pose.compose(self._odom.inverse())
        self.state.pose = pose
        self.state.xy_bound, self.state.theta_bound = xy_bound, theta_bound
        self.state.since_code_m = 0.0
        self._errored = False

    def on_odometry(self, clock: int, odom: Pose) -> Pose:
        prev = self._odom
        self._odom = odom
        self._history.append((clock, odom))
        step = odom.relative_to(prev)
        d, dth = math.hypot(step.x, step.y), abs(step.theta)
        m, s = self.model, self.state
        # heading uncertainty turns into lateral position error along the way
        s.xy_bound += m.xy_per_m * d + m.xy_per_rad * dth + d * math.sin(min(s.theta_bound, 1.0))
        s.theta_bound += m.theta_per_m * d + m.theta_per_rad * dth
        s.since_code_m += d
        s.pose = self._correction.compose(odom)
        return s.pose

    def _odom_at(self, clock: int) -> Pose:
        """The odometry pose at ``clock`` (nearest sample; the latest if none is older)."""
        best = self._odom
        for c, p in reversed(self._history):
            best = p
            if c <= clock:
                break
        return best

    def on_code(self, reading: FloorCodeReading) -> LocalisationError | None:
        """Correct the pose with a floor code; an unknown code is reported, not used."""
        code_pose = self.codes.get(reading.code)
        if code_pose is None:
            err = LocalisationError(
                "unknown_code",
                f"floor code {reading.code!r} is not on the map: reading ignored",
            )
            self.state.errors.append(err)
            return err
        seen = Pose(reading.dx, reading.dy, reading.dtheta)  # code in the vehicle frame
        vehicle_then = code_pose.compose(seen.inverse())
        odom_then = self._odom_at(reading.clock)
        self._correction = vehicle_then.compose(odom_then.inverse())
        s = self.state
        s.pose = self._correction.compose(self._odom)
        travelled = self._odom.relative_to(odom_then)
        d = math.hypot(travelled.x, travelled.y)
        m = self.model
        s.theta_bound = m.code_theta + m.theta_per_m * d + m.theta_per_rad * abs(travelled.theta)
        s.xy_bound = m.code_xy + m.xy_per_m * d + d * math.sin(m.code_theta)
        s.since_code_m = d
        s.last_code = reading.code
        self._errored = False
        return None

    def check(self, allowed_xy: float, allowed_theta: float) -> LocalisationError | None:
        """The error to raise when the bound exceeds the allowed deviation (once per
        excursion; None while within, or already reported)."""
        s = self.state
        if s.xy_bound <= allowed_xy and s.theta_bound <= allowed_theta:
            self._errored = False
            return None
        if self._errored:
            return None
        self._errored = True
        err = LocalisationError(
            "uncertainty",
            f"position uncertain: +-{s.xy_bound * 1000:.0f} mm / "
            f"+-{math.degrees(s.theta_bound):.1f} deg after {s.since_code_m:.2f} m without "
            f"a floor code (allowed {allowed_xy * 1000:.0f} mm / "
            f"{math.degrees(allowed_theta):.1f} deg)",
        )
        s.errors.append(err)
        return err

    def within(self, allowed_xy: float, allowed_theta: float) -> bool:
        s = self.state
        return s.xy_bound <= allowed_xy and s.theta_bound <= allowed_theta
