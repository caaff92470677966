"""Jerk-limited joint trajectories, sampled into timed setpoints for the MCU.

Why our own generator rather than ruckig (docs/arm.md): ruckig 0.19 has no aarch64 wheel for
Python 3.11 in the registry the boards install from, only an sdist that needs cmake and a C++
toolchain on the board; and the arm needs two shapes only: (1) rest-to-rest moves (to a
chute, home), for which the time-optimal jerk-limited profile is the classic 7-phase
"double S" (Biagiotti & Melchiorri, Trajectory Planning for Automatic Machines and Robots,
2008, sec. 3.4), closed form; (2) blends between a point at rest and a point riding the belt
(conveyor tracking), built from the same profile as a time law (``unit_s``). Property tests
check (1) against ruckig where ruckig is installed (a test-only dependency, x86_64).

Every trajectory is checked before it leaves the core: sampled at ``dt`` as the MCU will
execute it (straight lines between setpoints), its first, second and third differences must
stay within the joint velocity, acceleration and jerk limits (finite differences of a
sampled profile are averages of the true derivative, so a profile within limits passes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.arm.kinematics import Joints, Limits

# ---- 1-D double S -------------------------------------------------------------------------


class DoubleS:
    """Time-optimal jerk-limited rest-to-rest move over ``distance`` (any sign)."""

    def __init__(self, distance: float, vmax: float, amax: float, jmax: float) -> None:
        if vmax <= 0 or amax <= 0 or jmax <= 0:
            raise ValueError("DoubleS: vmax, amax and jmax must be positive")
        self.distance = distance
        self.sign = 1.0 if distance >= 0 else -1.0
        h = abs(distance)
        if h < 1e-12:
            self.tj = self.ta = self.tv = 0.0
            self.j = jmax
            self._build()
            return
        # accelerate to vmax: with or without reaching amax
        if vmax * jmax >= amax * amax:
            tj = amax / jmax
            ta = tj + vmax / amax
        else:
            tj = math.sqrt(vmax / jmax)
            ta = 2 * tj
        tv = h / vmax - ta
        if tv < 0:  # vmax not reached
            tv = 0.0
            tj = amax / jmax
            ta = (tj + math.sqrt(tj * tj + 4 * h / amax)) / 2
            if ta < 2 * tj:  # amax not reached either
                tj = (h / (2 * jmax)) ** (1 / 3)
                ta = 2 * tj
        self.tj, self.ta, self.tv, self.j = tj, ta, tv, jmax
        self._build()

    def _build(self) -> None:
        tj, ta, tv, j = self.tj, self.ta, self.tv, self.j
        tc = max(0.0, ta - 2 * tj)
        self._phases = [(tj, j), (tc, 0.0), (tj, -j), (tv, 0.0), (tj, -j), (tc, 0.0), (tj, j)]
        # state (p, v, a) at the start of each phase
        self._starts: list[tuple[float, float, float, float]] = []  # t, p, v, a
        t = p = v = a = 0.0
        for dur, jerk in self._phases:
            self._starts.append((t, p, v, a))
            p, v, a = _integrate(p, v, a, jerk, dur)
            t += dur
        self.duration = t
        # exact end (removes the rounding of the piecewise sums)
        self._scale = abs(self.distance) / p if p > 0 else 0.0

    def eval(self, t: float) -> tuple[float, float, float, float]:
        """Position, velocity, acceleration, jerk at ``t`` (clamped to [0, duration])."""
        if t < 0 or (t == 0 and self.duration > 0):
            return (0.0, 0.0, 0.0, 0.0)
        if t >= self.duration:
            return (self.distance, 0.0, 0.0, 0.0)
        for k in range(len(self._phases) - 1, -1, -1):
            t0, p0, v0, a0 = self._starts[k]
            if t >= t0:
                jerk = self._phases[k][1]
                p, v, a = _integrate(p0, v0, a0, jerk, t - t0)
                s = self.sign * self._scale
                return (p * s, v * s, a * s, jerk * s)
        raise AssertionError("unreachable")  # pragma: no cover


def _integrate(p: float, v: float, a: float, j: float, t: float) -> tuple[float, float, float]:
    return (
        p + v * t + a * t * t / 2 + j * t**3 / 6,
        v + a * t + j * t * t / 2,
        a + j * t,
    )


# A fixed time law 0 -> 1 for blends (see unit_s).
_UNIT = DoubleS(1.0, 1.4, 4.0, 32.0)
UNIT_DURATION = _UNIT.duration


def unit_s(tau: float) -> float:
    """The blend law: 0 at tau <= 0, 1 at tau >= 1, a double S between (velocity and
    acceleration zero at both ends, jerk bounded)."""
    return _UNIT.eval(tau * UNIT_DURATION)[0]


class Law:
    """A time law 0 -> 1 over ``duration`` s: ``shape`` (a double S over distance 1) run at
    the pace that makes it last ``duration`` (slower than its own: stretched, which divides
    velocity by k, acceleration by k^2, jerk by k^3). Velocity and acceleration are zero at
    both ends, so a blend built on it starts at rest and meets its moving end smoothly."""

    def __init__(self, shape: DoubleS, duration: float) -> None:
        self.shape = shape
        self.duration = duration

    def s(self, t: float) -> float:
        """The law at ``t`` s from its start (0 before, 1 after)."""
        if self.duration <= 0 or t >= self.duration:
            return 1.0
        if t <= 0:
            return 0.0
        return self.shape.eval(t / self.duration * self.shape.duration)[0]


def blend_shape(delta: Joints, limits: Limits) -> DoubleS:
    """The fastest common time law for a joint-space blend over ``delta``: each joint k moves
    delta_k s(t), so s may have velocity vel_k / |delta_k|, acceleration acc_k / |delta_k| and
    jerk jerk_k / |delta_k|; the smallest of each over the joints. Its duration is the
    synchronised rest-to-rest time of a straight joint-space move (every joint on one shape),
    within a few per cent of ``sync_move``'s; the moving end of a tracking blend adds to it,
    which the sampled check of the whole move catches (the caller stretches it then)."""
    v = a = j = math.inf
    for k in range(4):
        d = abs(delta[k])
        if d < 1e-9:
            continue
        v = min(v, limits.vel[k] / d)
        a = min(a, limits.acc[k] / d)
        j = min(j, limits.jerk[k] / d)
    if v == math.inf:
        return _UNIT
    return DoubleS(1.0, v, a, j)


# ---- multi-axis rest-to-rest ---------------------------------------------------------------


def sync_move(q0: Joints, q1: Joints, limits: Limits) -> tuple[float, Callable[[float], Joints]]:
    """The time-optimal synchronised rest-to-rest move q0 -> q1: each joint's double S,
    stretched in time to the slowest one's duration (stretching by k divides velocity by k,
    acceleration by k^2 and jerk by k^3, so each stays within its limit)."""
    profiles = [
        DoubleS(q1[i] - q0[i], limits.vel[i], limits.acc[i], limits.jerk[i]) for i in range(4)
    ]
    duration = max(p.duration for p in profiles)

    def at(t: float) -> Joints:
        out = []
        for i, p in enumerate(profiles):
            k = p.duration / duration if duration > 0 else 1.0
            out.append(q0[i] + p.eval(t * k)[0])
        return (out[0], out[1], out[2], out[3])

    return duration, at


# ---- sampled trajectories ------------------------------------------------------------------


@dataclass(frozen=True)
class Trajectory:
    """Joint setpoints ``q[i]`` at time ``t0 + i * dt`` (the core's time base; the adapter
    maps it onto the MCU's clock). The MCU moves in straight lines between setpoints and
    holds the last one. ``marks``: named instants (contact, lift, release, ...)."""

    t0: float
    dt: float
    q: tuple[Joints, ...]
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def t_end(self) -> float:
        return self.t0 + (len(self.q) - 1) * self.dt

    def at(self, t: float) -> Joints:
        """The setpoint at ``t``, linearly interpolated as the MCU does; held outside."""
        if t <= self.t0:
            return self.q[0]
        if t >= self.t_end:
            return self.q[-1]
        x = (t - self.t0) / self.dt
        i = min(int(x), len(self.q) - 2)
        f = x - i
        a, b = self.q[i], self.q[i + 1]
        return (
            a[0] + (b[0] - a[0]) * f,
            a[1] + (b[1] - a[1]) * f,
            a[2] + (b[2] - a[2]) * f,
            a[3] + (b[3] - a[3]) * f,
        )

    def setpoints(self) -> list[tuple[float, Joints]]:
        return [(self.t0 + i * self.dt, q) for i, q in enumerate(self.q)]

    def index_at(self, t: float) -> int:
        """The first setpoint at or after ``t``."""
        return max(0, min(len(self.q) - 1, math.ceil((t - self.t0) / self.dt - 1e-9)))


def sample(fn: Callable[[float], Joints], t0: float, duration: float, dt: float) -> list[Joints]:
    """``fn`` at t0, t0 + dt, ... to the first sample at or past the end (``fn`` must hold
    its end value past ``duration``: the MCU's setpoints are evenly spaced)."""
    n = max(1, math.ceil(duration / dt - 1e-9))
    return [fn(t0 + i * dt) for i in range(n + 1)]


def limit_violation(
    q: Sequence[Joints],
    dt: float,
    limits: Limits,
    before: Sequence[Joints] = (),
    rest_at_end: bool = True,
    tol: float = 1e-6,
) -> str | None:
    """Why the sampled trajectory breaks a limit (None: it does not). ``before``: the setpoints
    preceding it (default: at rest at q[0]); at the end it holds its last setpoint."""
    pre = list(before[-3:]) if before else [q[0]] * 3
    post = [q[-1]] * 3 if rest_at_end else []
    off = len(pre)
    body = np.asarray(q, dtype=np.float64)
    lo, hi = np.asarray(limits.lo), np.asarray(limits.hi)
    bad = (body < lo - tol) | (body > hi + tol)
    if bad.any():
        i, k = (int(v) for v in np.argwhere(bad)[0])
        rng = f"[{limits.lo[k]}, {limits.hi[k]}]"
        return f"{_NAMES[k]} at {body[i, k]:.2f} outside {rng} (setpoint {i})"
    seq = np.asarray(pre + list(q) + post, dtype=np.float64)
    checks = (
        ("velocity", np.diff(seq, 1, axis=0) / dt, limits.vel, 1),
        ("acceleration", np.diff(seq, 2, axis=0) / dt**2, limits.acc, 2),
        ("jerk", np.diff(seq, 3, axis=0) / dt**3, limits.jerk, 3),
    )
    for what, d, lim, order in checks:
        over = np.abs(d) > np.asarray(lim) * (1 + tol) + tol
        if over.any():
            i, k = (int(v) for v in np.argwhere(over)[0])
            return (
                f"{_NAMES[k]} {what} {abs(d[i, k]):.0f} over {lim[k]} (setpoint {i + order - off})"
            )
    return None


_NAMES = ("j1", "j2", "j3", "j4")
