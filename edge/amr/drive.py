"""The differential-drive controller: follows edges, stops at nodes, obeys limits (pure core).

Facts in (the time of the step, the estimated pose, the protective field), actions out
(a wheel velocity setpoint to apply at a given host time, which the adapter converts to the
MCU clock, and events). No I/O, no clock: ``step(now, ...)`` is the only way time advances.

How it drives, in order of precedence:

1. **Protective field** (the safety lidar's OSSD): while violated the setpoint ramps to zero
   at ``stop_decel`` (the MCU has already stopped the wheels on its own input; this keeps the
   host's plan consistent with it) and ``FieldViolation(True)`` is reported once; when the
   field clears, ``FieldViolation(False)`` and the drive resumes from standstill.
2. **Hold** (pause, cancel, a localisation or deviation error): ramp to zero at the service
   deceleration, wherever the vehicle is.
3. **Legs** (one per VDA 5050 edge with its end node): the speed is the smallest of the edge's
   ``maxSpeed``, the vehicle's limit, braking to every slower edge and to the next stop within
   ``max_decel`` (planned at 80 % of it), and the lateral-acceleration / turn-rate limits of
   the curvature ahead. Steering is pure pursuit on a look-ahead point (beyond the end of the
   last leg the path extends along its end tangent, so the vehicle settles on the final
   direction). The vehicle stops at the end of the last leg, at a node where the path turns by
   more than ``turn_in_place_rad``, and at a node whose theta it must take: there it turns in
   place to the next leg's direction or the node's theta.
4. **Limits**: linear and angular speed and acceleration are clamped in (v, omega) space
   between consecutive setpoints, so each wheel's speed stays within ``max_speed + track/2 *
   max_angular_speed`` and its acceleration within ``max_accel + track/2 *
   max_angular_accel`` (the MCU's own ramp limit is set to that, so it never alters a plan).

Arrival at a stop node: within ``allowed_xy`` of it (aiming for 2 mm along the path), and
within ``allowed_theta`` of its theta when it has one (aiming for a quarter of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from edge.amr.odometry import Pose
from edge.amr.path import PathSegment, wrap_angle

CREEP_SPEED = 0.02  # m/s: the last millimetres before a stop node
CREEP_OMEGA = 0.05  # rad/s: the last fraction of a degree of a turn in place
STOP_TOL_M = 0.002  # along-path distance at which a stop node counts as reached
FINE_TOL_M = 0.005  # standing further than this before/after a stop node: creep onto it
FINE_MAX_M = 0.10  # fine positioning corrects at most this much (more is a deviation)
SETTLE_S = 0.15  # stand this long at a stop node before it counts: a floor code read
# there (the camera sees it only within a few cm) may still correct the pose
PLAN_DECEL_FRACTION = 0.8  # braking is planned at this fraction of max_decel


@dataclass(frozen=True)
class DriveParams:
    """The vehicle's drive limits and tuning (SI units)."""

    track_m: float
    max_speed: float = 1.5
    max_accel: float = 0.5
    max_decel: float = 1.0
    max_angular_speed: float = 1.5
    max_angular_accel: float = 2.0
    stop_decel: float = 2.0  # protective field / e-stop ramp (the MCU's own stop ramp)
    max_lateral_accel: float = 0.5
    lookahead_min_m: float = 0.2
    lookahead_s: float = 0.6  # look-ahead distance per m/s of speed
    turn_in_place_rad: float = math.radians(15)
    max_path_deviation_m: float = 0.3  # further off the path: stop, PathDeviation
    setpoint_lead_s: float = 0.06  # a setpoint applies this long after the step's time
    setpoint_hold_s: float = 0.1  # the MCU keeps a setpoint this long, then stops

    def __post_init__(self) -> None:
        for name in ("track_m", "max_speed", "max_accel", "max_decel", "max_angular_speed",
                     "max_angular_accel", "stop_decel", "max_lateral_accel"):  # fmt: skip
            value = getattr(self, name)
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"drive: {name} must be a finite number > 0, not {value}")

    @property
    def max_wheel_speed(self) -> float:
        return self.max_speed + self.track_m / 2 * self.max_angular_speed

    @property
    def max_wheel_accel(self) -> float:
        """Per wheel, accelerating or braking in service (not the stop ramp)."""
        return max(self.max_accel, self.max_decel) + self.track_m / 2 * self.max_angular_accel


@dataclass(frozen=True)
class NodeTarget:
    """The node at the end of a leg, with its VDA 5050 position and deviations."""

    node_id: str
    x: float
    y: float
    theta: float | None = None
    allowed_xy: float = 0.05
    allowed_theta: float = 0.05


@dataclass(frozen=True)
class Leg:
    """One edge to drive: its geometry, speed limit and end node."""

    edge_id: str
    segment: PathSegment
    end: NodeTarget
    max_speed: float | None = None


# ---- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegStarted:
    edge_id: str


@dataclass(frozen=True)
class NodeReached:
    """The vehicle is at (stopping) or passing (not stopping) a node; errors in m / rad."""

    node_id: str
    error_xy: float
    error_theta: float | None
    stopped: bool


@dataclass(frozen=True)
class Arrived:
    """The last leg is done and the vehicle stands at its node."""

    node_id: str


@dataclass(frozen=True)
class FieldViolation:
    violated: bool


@dataclass(frozen=True)
class PathDeviation:
    """Too far off the path (or a node missed): the drive holds; the node raises an error."""

    edge_id: str
    distance_m: float
    message: str


DriveEvent = LegStarted | NodeReached | Arrived | FieldViolation | PathDeviation


@dataclass(frozen=True)
class WheelSetpoint:
    """Wheel rim speeds (m/s) to apply from host time ``at`` for at most ``hold_s``."""

    at: float
    left: float
    right: float
    hold_s: float


@dataclass(frozen=True)
class DriveOutput:
    setpoint: WheelSetpoint
    v: float
    omega: float
    events: list[DriveEvent] = field(default_factory=list)


class Phase(Enum):
    IDLE = "idle"
    ALIGN = "align"  # turning in place to the leg's start direction
    FOLLOW = "follow"
    SETTLE = "settle"  # at the stop node, turning to its theta
    HOLD = "hold"


class DriveController:
    """Path following for a differential-drive vehicle (see the module docstring)."""

    def __init__(self, params: DriveParams) -> None:
        self.p = params
        self.legs: list[Leg] = []
        self.phase = Phase.IDLE
        self.v = 0.0  # the last commanded linear speed
        self.omega = 0.0
        self.s = 0.0  # progress along legs[0]
        self.last_now: float | None = None
        self.field_violated = False
        self.held_reason: str | None = None
        self.cross_track = 0.0  # distance from the path at the last step (m)
        self._started_leg: str | None = None
        self._settle_theta: float | None = None
        self._dt = 0.02
        self._now = 0.0
        self._fine = False
        self._settle_since: float | None = None

    # ---- commands ------------------------------------------------------------------------
    def add_legs(self, legs: list[Leg]) -> None:
        """Append legs (a released order's edges, an update stitched on the last node)."""
        self.legs.extend(legs)
        if self.phase in (Phase.IDLE, Phase.SETTLE) and self.legs and self.held_reason is None:
            if self.phase is Phase.IDLE:
                self.s = 0.0
            self.phase = Phase.ALIGN if self.phase is Phase.IDLE else self.phase

    def replace_legs(self, legs: list[Leg]) -> None:
        """The complete list of legs the vehicle may drive now (each call replaces the
        last): progress on the current leg is kept when it is still the first one."""
        same = bool(self.legs and legs and self.legs[0].edge_id == legs[0].edge_id)
        self.legs = list(legs)
        if not same:
            self.s = 0.0
            self._started_leg = None
            self._settle_theta, self._fine, self._settle_since = None, False, None
            if self.legs and self.phase is not Phase.HOLD:
                self.phase = Phase.ALIGN
        if not self.legs:
            self.phase = Phase.IDLE
            self._started_leg = None

    def clear(self) -> None:
        """Forget every leg (cancelOrder): brake to a stop where the vehicle is."""
        self.legs.clear()
        self.phase = Phase.IDLE
        self._started_leg = None
        self._settle_theta, self._fine, self._settle_since = None, False, None

    def hold(self, reason: str) -> None:
        """Brake to a stop and stay (pause, an error); ``release`` continues the legs."""
        self.held_reason = reason

    def release(self) -> None:
        self.held_reason = None
        if self.legs and self.phase in (Phase.IDLE, Phase.HOLD):
            self.phase = Phase.ALIGN

    @property
    def standing(self) -> bool:
        return self.v == 0.0 and self.omega == 0.0

    @property
    def driving(self) -> bool:
        return not self.standing

    # ---- the step ------------------------------------------------------------------------
    def step(self, now: float, pose: Pose, field_violated: bool = False) -> DriveOutput:
        """One control step at host time ``now`` with the estimated ``pose``."""
        dt = 0.02 if self.last_now is None else max(1e-4, now - self.last_now)
        self.last_now = now
        self._dt = dt
        self._now = now
        events: list[DriveEvent] = []
        if field_violated != self.field_violated:
            self.field_violated = field_violated
            events.append(FieldViolation(field_violated))
        if field_violated:
            v_t, w_t = 0.0, 0.0
            self._apply(v_t, w_t, dt, self.p.stop_decel, stop=True)
        elif self.held_reason is not None or not self.legs:
            self._apply(0.0, 0.0, dt, self.p.max_decel)
        else:
            v_t, w_t = self._track(pose, events)
            self._apply(v_t, w_t, dt, self.p.max_decel)
        half = self.p.track_m / 2
        sp = WheelSetpoint(
            now + self.p.setpoint_lead_s,
            self.v - self.omega * half,
            self.v + self.omega * half,
            self.p.setpoint_hold_s,
        )
        return DriveOutput(sp, self.v, self.omega, events)

    def _apply(self, v_t: float, w_t: float, dt: float, decel: float, stop: bool = False) -> None:
        """Move the command towards (v_t, w_t) within the acceleration limits."""
        p = self.p
        v_t = min(max(v_t, -CREEP_SPEED), p.max_speed)  # backwards only to creep onto a node
        w_t = min(max(w_t, -p.max_angular_speed), p.max_angular_speed)
        dv = v_t - self.v
        lim = (p.max_accel if abs(v_t) > abs(self.v) and v_t * self.v >= 0 else decel) * dt
        self.v = v_t if abs(dv) <= lim else self.v + math.copysign(lim, dv)
        dw = w_t - self.omega
        wlim = p.max_angular_accel * dt
        if stop:
            wlim = max(wlim, p.stop_decel / max(p.track_m / 2, 1e-3) * dt)
        self.omega = w_t if abs(dw) <= wlim else self.omega + math.copysign(wlim, dw)
        if abs(self.v) < 1e-9:
            self.v = 0.0
        if abs(self.omega) < 1e-9:
            self.omega = 0.0

    def _track(self, pose: Pose, events: list[DriveEvent]) -> tuple[float, float]:
        leg = self.legs[0]
        if self._started_leg != leg.edge_id:
            self._started_leg = leg.edge_id
            events.append(LegStarted(leg.edge_id))
        if self.phase is Phase.ALIGN and leg.segment.length < 1e-3:
            self.phase = Phase.FOLLOW  # an edge from a node to itself has no direction
        if self.phase is Phase.ALIGN:
            target = leg.segment.heading_at(0.0)
            err = wrap_angle(target - pose.theta)
            if abs(err) <= min(self.p.turn_in_place_rad / 3, 0.05) and abs(self.omega) < 0.3:
                self.phase = Phase.FOLLOW
            else:
                return 0.0, self._turn_rate(err, 0.01)
        if self.phase is Phase.SETTLE:
            return self._settle(pose, events)
        # FOLLOW
        seg = leg.segment
        self.s, dist = seg.project((pose.x, pose.y), self.s, window=0.5)
        self.cross_track = dist
        if dist > self.p.max_path_deviation_m:
            msg = (
                f"{dist:.2f} m off edge {leg.edge_id} (more than "
                f"{self.p.max_path_deviation_m:.2f} m): stopped"
            )
            events.append(PathDeviation(leg.edge_id, dist, msg))
            self.hold("path deviation")
            return 0.0, 0.0
        remaining = seg.length - self.s
        stops_here = self._stops_at_end(0)
        if remaining <= STOP_TOL_M or (not stops_here and remaining <= 1e-6):
            return self._reach_end(pose, events, stops_here)
        if stops_here and remaining <= 0.05:
            # within 5 cm: the along-path distance is what counts, past it is arrival
            node = (leg.end.x, leg.end.y)
            ahead = (node[0] - pose.x) * math.cos(pose.theta) + (node[1] - pose.y) * math.sin(
                pose.theta
            )
            if ahead <= STOP_TOL_M:
                return self._reach_end(pose, events, stops_here)
        v_t = self._speed_limit(remaining)
        if stops_here and v_t < CREEP_SPEED:
            v_t = CREEP_SPEED
        # pure pursuit
        look = max(self.p.lookahead_min_m, self.p.lookahead_s * self.v)
        tx, ty = self._lookahead_point(self.s + look)
        dx, dy = tx - pose.x, ty - pose.y
        c, s_ = math.cos(pose.theta), math.sin(pose.theta)
        fx, fy = c * dx + s_ * dy, -s_ * dx + c * dy
        ld = math.hypot(fx, fy)
        kappa = 0.0 if ld < 1e-6 else 2 * fy / (ld * ld)
        if abs(kappa) > 1e-9:
            v_t = min(v_t, self.p.max_angular_speed * 0.9 / abs(kappa))
            v_t = min(v_t, math.sqrt(self.p.max_lateral_accel / abs(kappa)))
        return v_t, v_t * kappa

    def _lookahead_point(self, s: float) -> tuple[float, float]:
        i = 0
        while i < len(self.legs) - 1 and s > self.legs[i].segment.length:
            if self._stops_at_end(i):
                break
            s -= self.legs[i].segment.length
            i += 1
        return self.legs[i].segment.point_at(s)

    def _stops_at_end(self, i: int) -> bool:
        """Whether the vehicle must stand at the end of leg ``i``."""
        if i >= len(self.legs) - 1:
            return True
        leg, nxt = self.legs[i], self.legs[i + 1]
        out_heading = nxt.segment.heading_at(0.0)
        turn = abs(wrap_angle(out_heading - leg.segment.heading_at(leg.segment.length)))
        if turn > self.p.turn_in_place_rad:
            return True
        theta = leg.end.theta
        return theta is not None and abs(wrap_angle(theta - out_heading)) > leg.end.allowed_theta

    def _speed_limit(self, remaining: float) -> float:
        p = self.p
        a = PLAN_DECEL_FRACTION * p.max_decel
        leg = self.legs[0]
        v = min(p.max_speed, leg.max_speed if leg.max_speed is not None else p.max_speed)
        brake = self.v * self.v / (2 * a) + 0.3
        # curvature of this leg within braking distance
        kappa = leg.segment.max_curvature(self.s - 0.05, self.s + brake)
        dist = remaining
        i = 0
        while True:
            if self._stops_at_end(i):
                v = min(v, math.sqrt(2 * a * dist))
                break
            i += 1
            if i >= len(self.legs) or dist > brake:
                break
            nxt = self.legs[i]
            if nxt.max_speed is not None:
                # the next step is taken one step further on: brake for that point
                ahead = max(0.0, dist - 2 * self.v * self._dt)
                v = min(v, math.sqrt(nxt.max_speed**2 + 2 * a * ahead))
            kappa = max(kappa, nxt.segment.max_curvature(0.0, brake - dist))
            dist += nxt.segment.length
        if kappa > 1e-6:
            v = min(v, math.sqrt(p.max_lateral_accel / kappa), 0.8 * p.max_angular_speed / kappa)
        return v

    def _reach_end(self, pose: Pose, events: list[DriveEvent], stops: bool) -> tuple[float, float]:
        leg = self.legs[0]
        err_xy = math.hypot(pose.x - leg.end.x, pose.y - leg.end.y)
        if not stops:
            if err_xy > leg.end.allowed_xy:
                msg = (
                    f"passed node {leg.end.node_id} {err_xy * 1000:.0f} mm off (allowed "
                    f"{leg.end.allowed_xy * 1000:.0f} mm): stopped"
                )
                events.append(PathDeviation(leg.edge_id, err_xy, msg))
                self.hold("node missed")
                return 0.0, 0.0
            err_th = None if leg.end.theta is None else wrap_angle(pose.theta - leg.end.theta)
            events.append(NodeReached(leg.end.node_id, err_xy, err_th, stopped=False))
            self.legs.pop(0)
            # carry the progress past the node onto the next leg
            self.s = self.legs[0].segment.project((pose.x, pose.y), 0.0, window=0.5)[0]
            return self._track(pose, events)
        # a stop: brake to zero here, then settle the heading
        self.phase = Phase.SETTLE
        if len(self.legs) > 1:
            self._settle_theta = self.legs[1].segment.heading_at(0.0)
            if (
                leg.end.theta is not None
                and abs(wrap_angle(leg.end.theta - self._settle_theta)) > leg.end.allowed_theta
            ):
                self._settle_theta = leg.end.theta  # must stand at it; re-aligns after
        else:
            self._settle_theta = leg.end.theta
        return 0.0, 0.0

    def _turn_rate(self, err: float, tol: float) -> float:
        p = self.p
        if abs(err) <= tol:
            return 0.0
        a = PLAN_DECEL_FRACTION * p.max_angular_accel
        w = min(p.max_angular_speed, math.sqrt(2 * a * abs(err)))
        return math.copysign(max(w, CREEP_OMEGA), err)

    def _settle(self, pose: Pose, events: list[DriveEvent]) -> tuple[float, float]:
        leg = self.legs[0]
        ahead = (leg.end.x - pose.x) * math.cos(pose.theta) + (leg.end.y - pose.y) * math.sin(
            pose.theta
        )
        fine = FINE_TOL_M < abs(ahead) <= FINE_MAX_M and self.omega == 0.0
        if self.v != 0.0 and not (fine and self._fine):
            self._settle_since = None
            return 0.0, 0.0  # braking to standstill first
        if fine or (self._fine and abs(ahead) > STOP_TOL_M):
            # fine positioning: the pose was corrected (a floor code at the node) after
            # the stop; creep onto the node, forwards or backwards
            self._fine = True
            self._settle_since = None
            a = PLAN_DECEL_FRACTION * self.p.max_decel
            return math.copysign(min(CREEP_SPEED, math.sqrt(2 * a * abs(ahead))), ahead), 0.0
        if self._fine:
            self._fine = False
            return 0.0, 0.0
        theta = self._settle_theta
        tol = min(leg.end.allowed_theta / 4, 0.01)
        if theta is not None:
            err = wrap_angle(theta - pose.theta)
            if abs(err) > tol or abs(self.omega) > CREEP_OMEGA:
                return 0.0, self._turn_rate(err, tol)
        if self.omega != 0.0 or self.v != 0.0:
            self._settle_since = None
            return 0.0, 0.0
        if self._settle_since is None:
            self._settle_since = self._now
        if self._now - self._settle_since < SETTLE_S:
            return 0.0, 0.0
        self._settle_since = None
        err_xy = math.hypot(pose.x - leg.end.x, pose.y - leg.end.y)
        err_th = None if leg.end.theta is None else wrap_angle(pose.theta - leg.end.theta)
        events.append(NodeReached(leg.end.node_id, err_xy, err_th, stopped=True))
        self.legs.pop(0)
        self.s = 0.0
        self._settle_theta = None
        if self.legs:
            self.phase = Phase.ALIGN
        else:
            self.phase = Phase.IDLE
            self._started_leg = None
            events.append(Arrived(leg.end.node_id))
        return 0.0, 0.0
