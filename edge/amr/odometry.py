"""Differential-drive odometry: wheel encoder counts in, pose out (pure, no clock).

Each pair of count deltas is one motion at constant wheel speeds during the interval, which
for a differential drive is exactly a circular arc (or a line): ``ds = (dl + dr) / 2``,
``dtheta = (dr - dl) / track``. Integrating the arc exactly (not a midpoint Euler step) means
the pose does not depend on how often the counts are sampled while the wheel speeds are
constant; the errors left are the real ones (slip, wheel radius, quantisation), which
localisation corrects with floor codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.amr.path import wrap_angle


@dataclass(frozen=True, slots=True)
class Pose:
    """A planar pose in the map frame: metres and radians (theta in (-pi, pi])."""

    x: float
    y: float
    theta: float

    def compose(self, other: Pose) -> Pose:
        """``self`` followed by ``other`` expressed in ``self``'s frame."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        return Pose(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            wrap_angle(self.theta + other.theta),
        )

    def inverse(self) -> Pose:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return Pose(-c * self.x - s * self.y, s * self.x - c * self.y, wrap_angle(-self.theta))

    def relative_to(self, base: Pose) -> Pose:
        """This pose seen from ``base`` (base.compose(result) == self)."""
        return base.inverse().compose(self)

    def distance(self, other: Pose) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


def arc_step(pose: Pose, dl: float, dr: float, track: float) -> Pose:
    """The pose after the left and right wheels travelled ``dl``, ``dr`` metres on one arc."""
    ds = (dl + dr) / 2
    dth = (dr - dl) / track
    if abs(dth) < 1e-9:
        # a line (the arc formula's limit; second order term kept for tiny turns)
        h = pose.theta + dth / 2
        return Pose(
            pose.x + ds * math.cos(h), pose.y + ds * math.sin(h), wrap_angle(pose.theta + dth)
        )
    r = ds / dth
    th1 = pose.theta + dth
    return Pose(
        pose.x + r * (math.sin(th1) - math.sin(pose.theta)),
        pose.y - r * (math.cos(th1) - math.cos(pose.theta)),
        wrap_angle(th1),
    )


@dataclass(frozen=True)
class WheelGeometry:
    """What turns counts into metres: track width and each wheel's metres per count."""

    track_m: float
    left_m_per_count: float
    right_m_per_count: float

    @classmethod
    def from_wheels(
        cls, track_m: float, wheel_radius_m: float, counts_per_rev: int
    ) -> WheelGeometry:
        per = 2 * math.pi * wheel_radius_m / counts_per_rev
        return cls(track_m, per, per)

    @property
    def counts_per_m(self) -> float:
        return 1.0 / ((self.left_m_per_count + self.right_m_per_count) / 2)


class Odometry:
    """Integrates encoder counts (as the MCU reports them, with their clock) into a pose.

    ``update`` takes absolute counts; the first call only sets the reference. A count jump
    larger than ``max_step_m`` (an MCU reset restarted its counters, a glitch) is refused
    with a ValueError naming it, and the counts become the new reference: odometry never
    integrates a jump that cannot be a real motion.
    """

    def __init__(self, geometry: WheelGeometry, pose: Pose | None = None,
                 max_step_m: float = 0.5) -> None:  # fmt: skip
        self.geometry = geometry
        self.pose = pose or Pose(0.0, 0.0, 0.0)
        self.max_step_m = max_step_m
        self.distance_m = 0.0  # travelled by the vehicle centre, both directions counted
        self.turned_rad = 0.0
        self._last: tuple[int, int] | None = None

    def reset(self, pose: Pose) -> None:
        """Set the pose (initPosition, a floor code); counts keep their reference."""
        self.pose = pose

    def update(self, left_count: int, right_count: int) -> Pose:
        if self._last is None:
            self._last = (left_count, right_count)
            return self.pose
        g = self.geometry
        dl = (left_count - self._last[0]) * g.left_m_per_count
        dr = (right_count - self._last[1]) * g.right_m_per_count
        self._last = (left_count, right_count)
        if abs(dl) > self.max_step_m or abs(dr) > self.max_step_m:
            raise ValueError(
                f"odometry: wheel counts jumped {dl:+.3f} m / {dr:+.3f} m in one report "
                f"(more than {self.max_step_m} m): ignored, counts re-referenced"
            )
        self.pose = arc_step(self.pose, dl, dr, g.track_m)
        self.distance_m += abs(dl + dr) / 2
        self.turned_rad += abs(dr - dl) / g.track_m
        return self.pose
