"""Forward and inverse kinematics of a 4-axis SCARA, with its joint limits and workspace.

Joints q = (j1 deg, j2 deg, j3 mm, j4 deg); the cup pose is (x mm, y mm, z mm, yaw deg) in the
arm frame (edge/arm/config.py). Closed form, both elbow solutions: the arm works in one
(``geometry.elbow``) and never flips while it carries a parcel, because the flip passes through
the stretched-out singularity (j2 = 0) where the Jacobian loses rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from edge.arm.config import ScaraGeometry, ScaraJoints, Workspace


class ArmParts(Protocol):
    """What the kinematics reads of a config (an ``ArmConfig``, or its parts while the
    config itself is being validated)."""

    @property
    def geometry(self) -> ScaraGeometry: ...
    @property
    def joints(self) -> ScaraJoints: ...
    @property
    def workspace(self) -> Workspace: ...


Elbow = Literal["right", "left"]
Joints = tuple[float, float, float, float]
CupPose = tuple[float, float, float, float]  # x, y, z mm, yaw deg

# j2 closer to 0 than this is treated as the singularity (no elbow side, IK ill-conditioned)
SINGULAR_DEG = 2.0


class Unreachable(ValueError):
    """The pose has no joint solution in the limits; the message says why."""


@dataclass(frozen=True)
class Limits:
    """Position and motion limits per joint, in joint units (deg, deg, mm, deg)."""

    lo: Joints
    hi: Joints
    vel: Joints
    acc: Joints
    jerk: Joints

    def scaled(self, speed: float) -> Limits:
        """Velocity scaled by ``speed`` (0..1], acceleration by its square and jerk by its
        cube: a time-stretched trajectory of the full-speed limits stays within these."""
        s = min(1.0, max(1e-3, speed))
        return Limits(
            self.lo,
            self.hi,
            _mul(self.vel, s),
            _mul(self.acc, s * s),
            _mul(self.jerk, s**3),
        )


def _mul(v: Joints, k: float) -> Joints:
    return (v[0] * k, v[1] * k, v[2] * k, v[3] * k)


class Scara:
    """The kinematic model of the configured arm."""

    def __init__(self, cfg: ArmParts) -> None:
        g = cfg.geometry
        self.l1 = g.link1_mm
        self.l2 = g.link2_mm
        self.elbow: Elbow = g.elbow
        js = cfg.joints.all()
        self.limits = Limits(
            lo=(js[0].min, js[1].min, js[2].min, js[3].min),
            hi=(js[0].max, js[1].max, js[2].max, js[3].max),
            vel=(js[0].vel, js[1].vel, js[2].vel, js[3].vel),
            acc=(js[0].acc, js[1].acc, js[2].acc, js[3].acc),
            jerk=(js[0].jerk, js[1].jerk, js[2].jerk, js[3].jerk),
        )
        ws = cfg.workspace
        self.min_radius = ws.min_radius_mm
        self.box = (ws.x_min_mm, ws.x_max_mm, ws.y_min_mm, ws.y_max_mm)

    # ---- forward -----------------------------------------------------------------------------
    def fk(self, q: Joints) -> CupPose:
        a1 = math.radians(q[0])
        a12 = math.radians(q[0] + q[1])
        x = self.l1 * math.cos(a1) + self.l2 * math.cos(a12)
        y = self.l1 * math.sin(a1) + self.l2 * math.sin(a12)
        return (x, y, q[2], q[0] + q[1] + q[3])

    def elbow_xy(self, q: Joints) -> tuple[float, float]:
        a1 = math.radians(q[0])
        return (self.l1 * math.cos(a1), self.l1 * math.sin(a1))

    # ---- inverse -----------------------------------------------------------------------------
    def ik(
        self,
        pose: CupPose,
        elbow: Elbow | None = None,
        near: Joints | None = None,
    ) -> Joints:
        """The joint solution of ``pose`` with ``elbow`` (default: the configured one) in the
        limits; j1 and j4 take the turn (+-360) nearest ``near`` when several fit. Raises
        ``Unreachable`` with the reason."""
        x, y, z, yaw = pose
        side = elbow or self.elbow
        self._check_workspace(x, y)
        r2 = x * x + y * y
        c2 = (r2 - self.l1**2 - self.l2**2) / (2 * self.l1 * self.l2)
        r = math.sqrt(r2)
        if c2 > 1.0:
            raise Unreachable(f"{r:.0f} mm from the J1 axis, beyond the reach {self.l1 + self.l2}")
        if c2 < -1.0:
            raise Unreachable(
                f"{r:.0f} mm from the J1 axis, inside the inner limit {abs(self.l1 - self.l2)}"
            )
        j2r = math.acos(c2) * (1.0 if side == "right" else -1.0)
        j1r = math.atan2(y, x) - math.atan2(self.l2 * math.sin(j2r), self.l1 + self.l2 * c2)
        j2 = math.degrees(j2r)
        lo, hi = self.limits.lo, self.limits.hi
        if abs(j2) < SINGULAR_DEG:
            raise Unreachable(f"arm stretched out (j2 {j2:.1f} deg): singular, no elbow side")
        if not lo[1] <= j2 <= hi[1]:
            raise Unreachable(f"j2 {j2:.1f} deg outside [{lo[1]}, {hi[1]}] ({side} elbow)")
        j1 = _turn_into(math.degrees(j1r), lo[0], hi[0], near[0] if near else 0.0)
        if j1 is None:
            raise Unreachable(
                f"j1 {math.degrees(j1r):.1f} deg outside [{lo[0]}, {hi[0]}] ({side} elbow)"
            )
        if not lo[2] <= z <= hi[2]:
            raise Unreachable(f"z {z:.1f} mm outside the quill's range j3 [{lo[2]}, {hi[2]}]")
        j4_raw = yaw - j1 - j2
        j4 = _turn_into(j4_raw, lo[3], hi[3], near[3] if near else 0.0)
        if j4 is None:
            raise Unreachable(f"j4 {j4_raw:.1f} deg outside [{lo[3]}, {hi[3]}]")
        return (j1, j2, z, j4)

    def ik_xyz(self, x: float, y: float, z: float, j4: float, near: Joints | None = None) -> Joints:
        """The joint solution that puts the cup at (x, y, z) with the wrist held at ``j4``:
        the cup is round, so the arm does not turn it while it works (yaw = j1 + j2 + j4)."""
        q = self.ik((x, y, z, 0.0), None, near)
        lo, hi = self.limits.lo[3], self.limits.hi[3]
        if not lo <= j4 <= hi:
            raise Unreachable(f"j4 {j4:.1f} deg outside [{lo}, {hi}]")
        return (q[0], q[1], q[2], j4)

    def ik_both(self, pose: CupPose) -> dict[Elbow, Joints]:
        """Every elbow solution of ``pose`` that fits the limits."""
        out: dict[Elbow, Joints] = {}
        for side in ("right", "left"):
            try:
                out[side] = self.ik(pose, side)
            except Unreachable:
                pass
        return out

    def unreachable(
        self, x: float, y: float, z: float, yaw: float, elbow: Elbow | None = None
    ) -> str | None:
        """Why the pose cannot be reached with ``elbow`` (None: reachable)."""
        try:
            self.ik((x, y, z, yaw), elbow)
        except Unreachable as exc:
            return str(exc)
        return None

    def within_limits(self, q: Joints, eps: float = 1e-6) -> bool:
        lo, hi = self.limits.lo, self.limits.hi
        return all(lo[i] - eps <= q[i] <= hi[i] + eps for i in range(4))

    def _check_workspace(self, x: float, y: float) -> None:
        r = math.hypot(x, y)
        if r < self.min_radius:
            raise Unreachable(f"{r:.0f} mm from the J1 axis, inside the keep-out {self.min_radius}")
        x0, x1, y0, y1 = self.box
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            raise Unreachable(f"({x:.0f}, {y:.0f}) outside the workspace box")


def _turn_into(angle: float, lo: float, hi: float, near: float) -> float | None:
    """``angle`` +- whole turns inside [lo, hi], the one nearest ``near``; None if none."""
    best: float | None = None
    base = angle - 360.0 * round((angle - near) / 360.0)
    for k in (-2, -1, 0, 1, 2):
        a = base + 360.0 * k
        if lo - 1e-9 <= a <= hi + 1e-9 and (best is None or abs(a - near) < abs(best - near)):
            best = min(hi, max(lo, a))
    return best
