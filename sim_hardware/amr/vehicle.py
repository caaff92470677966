"""One simulated vehicle's physics: the ground truth the node never sees directly (pure).

``VehicleBody`` moves by the wheel rim travel its drive MCU reports (the motors do what the
MCU commands, ramps included) turned into ground travel through what odometry does not know:
each wheel's true radius differs from the nominal one (``scale``), and the tyres slip a
little, more when the wheel accelerates. So the encoder counts the node integrates drift from
the truth, as on a real vehicle, and only floor codes bring the node's pose back.

Also here: the battery (drain by speed, charge on a charger's contacts), the safety lidar's
protective field (a rectangle ahead that grows with speed; anything in it drops the OSSD),
and the downward floor-code camera (a reading when a code is under the camera).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


def wrap(a: float) -> float:
    a = math.fmod(a + math.pi, 2 * math.pi)
    if a <= 0:
        a += 2 * math.pi
    return a - math.pi


def arc(x: float, y: float, th: float, dl: float, dr: float, track: float
        ) -> tuple[float, float, float]:  # fmt: skip
    """The pose after the wheels travelled ``dl``, ``dr`` on one arc (exact)."""
    ds, dth = (dl + dr) / 2, (dr - dl) / track
    if abs(dth) < 1e-9:
        h = th + dth / 2
        return x + ds * math.cos(h), y + ds * math.sin(h), wrap(th + dth)
    r = ds / dth
    return (
        x + r * (math.sin(th + dth) - math.sin(th)),
        y - r * (math.cos(th + dth) - math.cos(th)),
        wrap(th + dth),
    )


@dataclass(frozen=True)
class BodySpec:
    """Geometry and imperfections of a simulated vehicle (SI units)."""

    track: float = 0.5
    length: float = 0.7
    width: float = 0.55
    radius: float = 0.42  # footprint circle for collisions
    left_scale: float = 1.0  # true wheel radius / nominal
    right_scale: float = 1.0
    slip_sigma: float = 0.002  # random slip per step, fraction of the step's travel
    slip_per_accel: float = 0.004  # extra mean slip fraction per m/s2 of wheel acceleration
    battery_wh: float = 1000.0
    idle_w: float = 60.0
    drive_w_per_m_s: float = 180.0
    charge_w: float = 1500.0
    field_base: float = 0.3  # protective field length ahead of the front at standstill
    field_per_m_s: float = 0.6  # plus this many metres per m/s of speed
    field_margin: float = 0.05  # each side of the vehicle's width
    camera_range: float = 0.04  # a floor code within this of the camera is read
    camera_noise_m: float = 0.001
    camera_noise_rad: float = math.radians(0.1)


@dataclass(frozen=True)
class FloorCodeSeen:
    """What the camera decodes: the code and its pose in the vehicle frame."""

    code: str
    dx: float
    dy: float
    dtheta: float


class VehicleBody:
    """Ground truth of one vehicle: pose, speed, battery."""

    def __init__(self, spec: BodySpec, x: float, y: float, theta: float,
                 rng: random.Random, soc: float = 0.9) -> None:  # fmt: skip
        self.spec = spec
        self.x, self.y, self.theta = x, y, theta
        self.rng = rng
        self.v = 0.0  # ground speed of the centre
        self.omega = 0.0
        self.soc = soc
        self.charging = False
        self.distance = 0.0
        self._wheel_v = (0.0, 0.0)

    def step(self, dl: float, dr: float, dt: float) -> None:
        """The wheels' rims travelled ``dl``, ``dr`` (what the encoders count) in ``dt``."""
        s = self.spec
        vl, vr = (dl / dt, dr / dt) if dt > 0 else (0.0, 0.0)
        al = abs(vl - self._wheel_v[0]) / dt if dt > 0 else 0.0
        ar = abs(vr - self._wheel_v[1]) / dt if dt > 0 else 0.0
        self._wheel_v = (vl, vr)
        gl = dl * s.left_scale * (1 - self._slip(al))
        gr = dr * s.right_scale * (1 - self._slip(ar))
        self.x, self.y, th = arc(self.x, self.y, self.theta, gl, gr, s.track)
        self.omega = wrap(th - self.theta) / dt if dt > 0 else 0.0
        self.theta = th
        self.v = (gl + gr) / 2 / dt if dt > 0 else 0.0
        self.distance += abs(gl + gr) / 2
        self._battery(dt)

    def _slip(self, accel: float) -> float:
        s = self.spec
        return min(0.2, max(-0.05, self.rng.gauss(0.0, s.slip_sigma) + s.slip_per_accel * accel))

    def _battery(self, dt: float) -> None:
        s = self.spec
        power = s.idle_w + s.drive_w_per_m_s * abs(self.v)
        if self.charging:
            power -= s.charge_w
        self.soc = min(1.0, max(0.0, self.soc - power * dt / 3600 / s.battery_wh))

    @property
    def voltage(self) -> float:
        return 44.0 + 8.0 * self.soc  # a 48 V pack between empty and full

    @property
    def current(self) -> float:
        """Amps, positive when charging."""
        s = self.spec
        power = s.idle_w + s.drive_w_per_m_s * abs(self.v) - (s.charge_w if self.charging else 0)
        return -power / self.voltage

    # ---- the protective field -------------------------------------------------------------
    def field_rect(self) -> tuple[float, float, float]:
        """(front, far, half width) of the field in the vehicle frame (x ahead)."""
        s = self.spec
        front = s.length / 2
        return (
            front,
            front + s.field_base + s.field_per_m_s * max(0.0, self.v),
            (s.width / 2 + s.field_margin),
        )

    def in_field(self, ox: float, oy: float, radius: float) -> bool:
        """Whether a circle (ox, oy, radius) in the map touches the protective field."""
        c, s_ = math.cos(self.theta), math.sin(self.theta)
        dx, dy = ox - self.x, oy - self.y
        fx, fy = c * dx + s_ * dy, -s_ * dx + c * dy
        x0, x1, hw = self.field_rect()
        nx, ny = min(max(fx, x0), x1), min(max(fy, -hw), hw)
        return math.hypot(fx - nx, fy - ny) <= radius

    def rect_in_field(self, rect: tuple[float, float, float, float]) -> bool:
        """Whether a map rectangle (a rack) reaches into the field (sampled at 5 cm)."""
        x0, x1, hw = self.field_rect()
        c, s_ = math.cos(self.theta), math.sin(self.theta)
        n = max(2, int((x1 - x0) / 0.05) + 1)
        for i in range(n):
            fx = x0 + (x1 - x0) * i / (n - 1)
            for fy in (-hw, 0.0, hw):
                px, py = self.x + c * fx - s_ * fy, self.y + s_ * fx + c * fy
                if rect[0] <= px <= rect[2] and rect[1] <= py <= rect[3]:
                    return True
        return False

    # ---- the floor-code camera -------------------------------------------------------------
    def read_code(self, code: str, cx: float, cy: float, cth: float) -> FloorCodeSeen | None:
        """The camera's reading of a code at map pose (cx, cy, cth), if under the camera."""
        s = self.spec
        dx, dy = cx - self.x, cy - self.y
        if math.hypot(dx, dy) > s.camera_range:
            return None
        c, s_ = math.cos(self.theta), math.sin(self.theta)
        return FloorCodeSeen(
            code,
            c * dx + s_ * dy + self.rng.gauss(0.0, s.camera_noise_m),
            -s_ * dx + c * dy + self.rng.gauss(0.0, s.camera_noise_m),
            wrap(cth - self.theta + self.rng.gauss(0.0, s.camera_noise_rad)),
        )
