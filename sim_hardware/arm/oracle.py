"""An oracle arm controller: it reads the simulator's truth and drives the same arm.

The yardstick of the bench (bench/arm.py): what the arm can do when nothing is unknown. It
knows each parcel's pose, size, mass and destination the moment the parcel enters the belt
(no camera, no label reading, no brain round trip, no serial link), and the belt's exact
speed; it plans each pick with the arm's own limits (joint velocity, acceleration and jerk
from the same config the node runs with) and hands the world timed joint setpoints and valve
switches directly. Whatever the node loses against it is the cost of seeing, deciding and
talking.

Its plan for one pick, all in the arm frame, the cup riding the belt while it touches:

1. approach: a blend from rest (the last place pose) to the hover point above the parcel's
   grasp point *as that point rides the belt*: c(t) = P0 + s(t/T) (H(t) - P0), with s a
   jerk-limited time law (0 to 1, at rest at both ends), so at t = T the cup moves with
   the belt; T is the shortest that keeps every joint within its limits, the meeting
   settled on T (a whole number of setpoint periods) so the blend ends on the riding point;
2. descend (``hover_mm``) onto the top while riding, valve open; hold for the grip's
   confirm time; each quill move a quintic within J3's own limits;
3. lift while riding until the carried parcel clears everything the belt carries
   (``oracle_clear_mm``, 260: the tallest parcel, irregular ones, is 250 mm);
4. blend from the riding point to rest at the destination's place pose; 5. release (valve
   closed) and dwell ``release_ms``.

Weight-aware, as the node's carries are (docs/arm.md, "Weight-aware carries"), but with the
truth: each parcel's real mass and height and the world's own holding force (vacuum x
effective area, no safety factor), of which it asks at most ``GRIP_SHARE``. The lift and
the blend to the destination are slowed (``_carry``) until m x need(a) stays under that at
every setpoint. Until 2026-12-02 14:20 it had no such rule and dropped 2-3 boxes of 2-3 kg a
run (slid: 167-185 N of shear against the lip's 184 N), a weaker yardstick than the node.

Which parcel next: as the arm is about to be free it looks at the ``CANDIDATES`` parcels
nearest their deadline (the window's downstream end) that it can still meet, plans each,
and for each the best second pick after it (``LOOKAHEAD`` 2); it takes the first pick of
the best pair (most picks, then one that keeps the most urgent parcel, then the earliest
finish): earliest-deadline-first, except where taking the most urgent parcel would lose
the next one too. Parcels it cannot pick
(unpickable by truth, no destination, or past the window before the arm is free) are left
to pass with the reason. ``sim_hardware`` never imports ``edge``: the kinematics and the
time law here are the oracle's own (closed-form SCARA, double-S profile).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

Q = tuple[float, float, float, float]  # j1 deg, j2 deg, j3 mm, j4 deg
DT = 0.008  # setpoint period, s (the node's default tracking.setpoint_ms)
PLAN_AHEAD_S = 0.1  # the next pick is chosen this long before the arm is free
G = 9.80665  # m/s^2
GRIP_SHARE = 0.6  # of the world's holding force a carry may ask (its dynamics beyond the
# setpoints' accelerations: servo lag, the parcel's swing, the load filter)
HOLD_TRIES = 10  # carries slowed in turn (x HOLD_SLOW) until the cup holds the parcel
HOLD_SLOW = 1.12


# ---- the arm ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleArm:
    """The SCARA of the config's ``arm:`` section (plain values)."""

    l1: float
    l2: float
    right: bool
    lo: Q
    hi: Q
    vel: Q
    acc: Q
    jerk: Q

    @classmethod
    def from_settings(cls, arm: Mapping[str, Any]) -> OracleArm:
        g, j = arm["geometry"], arm["joints"]
        names = ("j1", "j2", "j3", "j4")

        def col(key: str) -> Q:
            a, b, c, d = (float(j[n][key]) for n in names)
            return (a, b, c, d)

        return cls(
            float(g["link1_mm"]),
            float(g["link2_mm"]),
            g.get("elbow", "right") == "right",
            col("min"),
            col("max"),
            col("vel"),
            col("acc"),
            col("jerk"),
        )

    def ik(self, x: float, y: float, z: float, yaw: float = 0.0) -> Q | None:
        """Joint values of a cup pose in this arm's elbow, or None when out of reach/limits."""
        r2 = x * x + y * y
        c2 = (r2 - self.l1**2 - self.l2**2) / (2 * self.l1 * self.l2)
        if not -1.0 <= c2 <= 1.0:
            return None
        s2 = math.sqrt(max(0.0, 1 - c2 * c2)) * (1 if self.right else -1)
        q2 = math.atan2(s2, c2)
        q1 = math.atan2(y, x) - math.atan2(self.l2 * s2, self.l1 + self.l2 * c2)
        d1, d2 = math.degrees(q1), math.degrees(q2)
        d1 = (d1 + 180.0) % 360.0 - 180.0
        q = (d1, d2, z, yaw - d1 - d2)
        if any(
            not lo - 1e-6 <= v <= hi + 1e-6 for v, lo, hi in zip(q, self.lo, self.hi, strict=True)
        ):
            return None
        return q

    def fk(self, q: Q) -> tuple[float, float, float, float]:
        a1, a12 = math.radians(q[0]), math.radians(q[0] + q[1])
        x = self.l1 * math.cos(a1) + self.l2 * math.cos(a12)
        y = self.l1 * math.sin(a1) + self.l2 * math.sin(a12)
        return x, y, q[2], q[0] + q[1] + q[3]


# ---- the time law ------------------------------------------------------------------------
@dataclass(frozen=True)
class DoubleS:
    """Jerk-limited rest-to-rest profile over distance 1 with limits v, a, j (unit/s^n);
    ``s(t)`` in [0, 1] over [0, T]. Closed form (7 phases, symmetric)."""

    v: float
    a: float
    j: float
    tj: float = field(init=False)
    ta: float = field(init=False)
    tv: float = field(init=False)

    def __post_init__(self) -> None:
        v, a, j = self.v, self.a, self.j
        if v * j >= a * a:
            tj, ta = a / j, a / j + v / a
        else:
            tj = math.sqrt(v / j)
            ta = 2 * tj
        tv = 1.0 / v - ta
        if tv < 0:
            tv = 0.0
            tj = a / j
            ta = (tj + math.sqrt(tj * tj + 4 / a)) / 2
            if ta < 2 * tj:
                tj = (1 / (2 * j)) ** (1 / 3)
                ta = 2 * tj
        object.__setattr__(self, "tj", tj)
        object.__setattr__(self, "ta", ta)
        object.__setattr__(self, "tv", tv)

    @property
    def T(self) -> float:
        return 2 * self.ta + self.tv

    def s(self, t: float) -> float:
        if t <= 0:
            return 0.0
        T = self.T
        if t >= T:
            return 1.0
        if t > T / 2:
            return 1.0 - self._acc(T - t)
        return self._acc(t)

    def _acc(self, t: float) -> float:
        """Position in the first half (acceleration, then cruise)."""
        tj, ta = self.tj, self.ta
        jm = self.j
        alim = jm * tj  # the acceleration actually reached
        vlim = alim * (ta - tj)  # the speed actually reached (tj..ta-tj at alim)
        if t < tj:
            return jm * t**3 / 6
        p1 = jm * tj**3 / 6
        v1 = jm * tj**2 / 2
        if t < ta - tj:
            d = t - tj
            return p1 + v1 * d + alim * d * d / 2
        d1 = ta - 2 * tj
        p2 = p1 + v1 * d1 + alim * d1 * d1 / 2
        v2 = v1 + alim * d1
        if t < ta:
            d = t - (ta - tj)
            return p2 + v2 * d + alim * d * d / 2 - jm * d**3 / 6
        p3 = p2 + v2 * tj + alim * tj * tj / 2 - jm * tj**3 / 6
        return p3 + vlim * (t - ta)


def unit_law(arm: OracleArm, dq: Sequence[float], stretch: float = 1.0) -> DoubleS:
    """The synchronised time law of a joint move ``dq``: the limits of a unit move that keep
    every joint within its own (scaled down by ``stretch`` >= 1 in time)."""
    v = a = j = math.inf
    for d, vm, am, jm in zip(dq, arm.vel, arm.acc, arm.jerk, strict=True):
        if abs(d) > 1e-9:
            v, a, j = min(v, vm / abs(d)), min(a, am / abs(d)), min(j, jm / abs(d))
    if v == math.inf:
        v, a, j = 1e3, 1e5, 1e7  # no motion: a very short law
    k = 1.0 / stretch
    return DoubleS(v * k, a * k * k, j * k**3)


def within_limits(arm: OracleArm, qs: Sequence[Q], dt: float, margin: float = 1.0) -> bool:
    """Finite differences of the sampled setpoints within vel/acc/jerk (x ``margin``)."""
    for i in range(4):
        xs = [q[i] for q in qs]
        v = [(b - a) / dt for a, b in pairwise(xs)]
        if any(abs(x) > arm.vel[i] * margin for x in v):
            return False
        acc = [(b - a) / dt for a, b in pairwise(v)]
        if any(abs(x) > arm.acc[i] * margin for x in acc):
            return False
        jerk = [(b - a) / dt for a, b in pairwise(acc)]
        if any(abs(x) > arm.jerk[i] * margin * 1.5 for x in jerk):
            return False
    return True


# ---- the pick planner --------------------------------------------------------------------
@dataclass(frozen=True)
class TruthParcel:
    """What the oracle knows of a parcel the moment it enters the belt."""

    id: int
    t_enter: float  # when its centre was at ``u_enter``
    u_enter: float  # belt coordinate of its centre then, mm
    y: float  # arm-frame y of its centre
    top_z: float  # arm-frame z of its top face
    destination: Mapping[str, Any] | None  # the destination's place pose, None: pass
    pickable: bool
    mass_kg: float = 0.0  # the truth (0: no hold limit)
    height_mm: float = 0.0


@dataclass(frozen=True)
class Grip:
    """What the world's cup holds: force (vacuum x effective area, N), the lip's friction
    and its effective radius (mm): a load fails by sliding (pull + shear / friction) or by
    peeling (pull + moment / radius), as ``ArmWorldConfig.grip_loads`` judges it."""

    force_n: float
    friction: float
    radius_mm: float

    def need_n(
        self, mass_kg: float, height_mm: float, acc: Sequence[tuple[float, float, float]]
    ) -> float:
        """The largest load the carry asks of the cup (N): m (max(0, g + a_z) + |a_xy| k),
        k = max(1 / friction, (height / 2) / radius), over the cup's accelerations (m/s^2)."""
        k = max(1.0 / self.friction, height_mm / 2 / self.radius_mm)
        worst = 0.0
        for ax, ay, az in acc:
            worst = max(worst, max(0.0, G + az) + math.hypot(ax, ay) * k)
        return mass_kg * worst


@dataclass
class OraclePlan:
    """Timed setpoints (t, q) every ``DT``, valve switches (t, on), and the picks planned."""

    setpoints: list[tuple[float, Q]] = field(default_factory=list)
    valve: list[tuple[float, bool]] = field(default_factory=list)
    picks: dict[int, float] = field(default_factory=dict)  # parcel -> grip time
    passed: dict[int, str] = field(default_factory=dict)  # parcel -> why not picked


@dataclass
class _PickPlan:
    """One pick from a given start: setpoints from ``start``, valve times, when it is done."""

    pid: int
    start: float
    qs: list[Q]
    t_valve_on: float
    t_grip: float
    t_place: float
    free_at: float
    end_q: Q


class OraclePlanner:
    """Plans the picks of a known parcel stream: when the arm is about to be free, it looks
    at every parcel still catchable in the tracking window and picks the one that starts the
    best sequence of the next ``LOOKAHEAD`` picks (most parcels, then the earliest finish):
    an earliest-deadline order that gives a parcel up when taking it would lose two."""

    LOOKAHEAD = 2  # picks in a sequence looked at
    CANDIDATES = 4  # the parcels nearest their deadline considered at each decision

    def __init__(self, settings: Mapping[str, Any], grip: Grip | None = None) -> None:
        self.grip = grip  # None: no hold limit (the plans of the tests without a world)
        a = settings["arm"]
        self.arm = OracleArm.from_settings(a)
        self.belt = a["belt"]
        self.sign = 1.0 if self.belt["direction"] == "+x" else -1.0
        self.speed = float(self.belt["nominal_speed_mm_s"])
        self.surface = float(self.belt["surface_z_mm"])
        tr, su = a["tracking"], a["suction"]
        self.up, self.down = float(tr["upstream_mm"]), float(tr["downstream_mm"])
        self.hover = float(tr["hover_mm"])
        self.grip_s = float(su["grip_confirm_ms"]) / 1000 + 0.02  # seal, then confirm
        self.release_s = float(su["release_ms"]) / 1000
        # a carried parcel clears everything on the belt before it leaves it: the tallest
        # parcel the stream has (``clear_mm``, from the truth) plus a margin
        self.clear_mm = float(settings.get("oracle_clear_mm", 260.0))
        h = a["home"]
        self.rest_q = self._ik_or(h["x_mm"], h["y_mm"], h["z_mm"])
        self.free_at = 0.0
        self.last_q = self.rest_q
        self.plan = OraclePlan()
        self.pending: dict[int, TruthParcel] = {}
        self.evaluated = 0  # pick plans computed (the look-ahead's cost)

    def _ik_or(self, x: float, y: float, z: float) -> Q:
        q = self.arm.ik(x, y, z)
        if q is None:
            raise ValueError(f"oracle: pose ({x:.0f}, {y:.0f}, {z:.0f}) unreachable")
        return q

    def u_at(self, p: TruthParcel, t: float) -> float:
        return p.u_enter + self.speed * (t - p.t_enter)

    def riding(self, p: TruthParcel, dz: float) -> Callable[[float], tuple[float, float, float]]:
        return lambda t: (self.u_at(p, t) * self.sign, p.y, p.top_z + dz)

    def _blend(
        self,
        t0: float,
        q0: Q,
        target: Callable[[float], tuple[float, float, float]],
        to_rest: bool,
        stretch: float = 1.0,
    ) -> tuple[float, list[Q]] | None:
        """The shortest jerk-limited blend, in joint space, from rest at ``q0`` onto the
        riding point (``to_rest``: from the riding point at ``t0`` to rest at ``q0``);
        (T, samples every DT from t0) or None. The riding point's joints are linearised
        around the meeting (q_m + (t - t_m) q'): the blend ends (or starts) with the belt's
        joint velocity, and stays between two in-range joint vectors."""

        def riding_at(t: float) -> tuple[Q, Q] | None:
            a = self.arm.ik(*target(t))
            b = self.arm.ik(*target(t + 0.01))
            if a is None or b is None:
                return None
            d = (b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3])
            return a, (d[0] / 0.01, d[1] / 0.01, d[2] / 0.01, d[3] / 0.01)

        T = 0.5
        for _ in range(16):
            # the meeting moves with the blend's duration: settle it (a whole number of
            # periods, the law slowed a little to fit), so the blend ends on the riding point
            for _ in range(6):
                got = riding_at(t0 if to_rest else t0 + T)
                if got is None:
                    return None
                qm, qd = got
                law = unit_law(self.arm, [b - a for a, b in zip(q0, qm, strict=True)], stretch)
                n = max(2, math.ceil(law.T / DT - 1e-9))
                if to_rest or abs(n * DT - T) < 1e-9:
                    break
                T = n * DT
            else:
                stretch *= 1.15
                continue
            T = n * DT
            scale = law.T / T  # <= 1: the law run a little slower to end on a period
            qs: list[Q] = []
            ok = True
            for k in range(n + 1):
                t = k * DT
                sv = law.s(t * scale)
                dt = t if to_rest else t - T
                qr = [m + dt * v for m, v in zip(qm, qd, strict=True)]
                if to_rest:  # from the riding point towards rest at q0
                    q = [r + sv * (a - r) for r, a in zip(qr, q0, strict=True)]
                else:
                    q = [a + sv * (r - a) for a, r in zip(q0, qr, strict=True)]
                if any(
                    not lo <= v <= hi for v, lo, hi in zip(q, self.arm.lo, self.arm.hi, strict=True)
                ):
                    ok = False
                    break
                qs.append((q[0], q[1], q[2], q[3]))
            if ok and within_limits(self.arm, qs, DT):
                return T, qs
            stretch *= 1.15
        return None

    def _ride(
        self,
        t0: float,
        dur: float,
        target: Callable[[float], tuple[float, float, float]],
        z_from: float,
        z_to: float,
    ) -> list[Q] | None:
        """Ride the belt for ``dur`` while z moves smoothly from ``z_from`` to ``z_to``
        (offsets from the target's z)."""
        n = max(1, math.ceil(dur / DT))
        out = []
        for i in range(1, n + 1):
            t = i * DT
            tau = min(1.0, t / dur)
            s = tau * tau * tau * (10 - 15 * tau + 6 * tau * tau)
            x, y, z = target(t0 + t)
            q = self.arm.ik(x, y, z + z_from + (z_to - z_from) * s)
            if q is None:
                return None
            out.append(q)
        return out

    def _z_time(self, dz: float, stretch: float = 1.0) -> float:
        """The time of the quill's quintic rise (or descent) of ``dz`` mm within its own
        limits (quintic peaks: speed 1.875 d/T, acceleration 5.77 d/T^2, jerk 60 d/T^3),
        times ``stretch``, whole periods."""
        d = abs(dz)
        v, a, j = self.arm.vel[2], self.arm.acc[2], self.arm.jerk[2]
        T = max(1.875 * d / v, math.sqrt(5.7735 * d / a), (60 * d / j) ** (1 / 3))
        return _steps(T * 1.01 * stretch)

    def _cup_acc(self, qs: Sequence[Q]) -> list[tuple[float, float, float]]:
        """The cup's accelerations (m/s^2) from the setpoints' second differences, as the
        MCU moves straight between them."""
        pts = [self.arm.fk(q)[:3] for q in qs]
        return [
            tuple((a[k] - 2 * b[k] + c[k]) / DT / DT / 1000 for k in range(3))  # type: ignore[misc]
            for a, b, c in zip(pts, pts[1:], pts[2:], strict=False)
        ]

    def _carry(
        self, p: TruthParcel, t_lift: float, ride: Callable[[float], tuple[float, float, float]],
        lift: float, q_dest: Q, before: Sequence[Q],
    ) -> tuple[list[Q], float, list[Q]] | str:  # fmt: skip
        """The lift (riding the belt) and the blend to rest at ``q_dest``: (lift samples, the
        blend's duration, its samples), slowed until the cup holds the parcel."""
        why = "no carry within the limits"
        k = 1.0
        for _ in range(HOLD_TRIES):
            lift_s = self._z_time(lift, k)
            up = self._ride(t_lift, lift_s, ride, 0.0, lift)
            if up is None:
                return "the ride on the belt leaves the reach"
            depart = self._blend(t_lift + lift_s, q_dest, self.riding(p, lift), True, k)
            if depart is None:
                return "no carry within the limits"
            Td, qd = depart
            if self.grip is None or p.mass_kg <= 0:
                return up, Td, qd
            need = self.grip.need_n(p.mass_kg, p.height_mm, self._cup_acc([*before, *up, *qd[1:]]))
            if need <= self.grip.force_n * GRIP_SHARE:
                return up, Td, qd
            why = f"no carry within the cup's hold ({need:.0f} N of {self.grip.force_n:.0f})"
            k *= HOLD_SLOW
        return why

    # ---- one pick ------------------------------------------------------------------------
    def _pick(self, p: TruthParcel, t_free: float, q0: Q) -> _PickPlan | str:
        """The pick of ``p`` by an arm at rest at ``q0`` from ``t_free``: the plan, or why
        there is none."""
        self.evaluated += 1
        t_in = p.t_enter + (self.up - p.u_enter) / self.speed
        dz_h = self.hover
        ride = self.riding(p, 0.0)
        start = max(t_free, t_in - 0.6)
        for _ in range(5):
            approach = self._blend(start, q0, self.riding(p, dz_h), to_rest=False)
            if approach is None:
                return "no approach within the limits"
            T, qs = approach
            t_meet = start + T
            if self.u_at(p, t_meet) >= self.up - 1e-6:
                break
            start = max(t_free, start + (t_in - t_meet) + DT)
        else:
            return "no meeting inside the window"
        descend_s = self._z_time(dz_h)
        grip_s = _steps(self.grip_s)
        # the lift clears every parcel on the belt (and the carried one's own height)
        z_clear = self.surface + self.clear_mm + (p.top_z - self.surface)
        lift = max(dz_h, z_clear - p.top_z)
        lift = min(lift, self.arm.hi[2] - p.top_z - 1.0)
        if self.u_at(p, t_meet + descend_s + grip_s) > self.down:
            return "past the window before the arm was free"
        down = self._ride(t_meet, descend_s, ride, dz_h, 0.0)
        hold = self._ride(t_meet + descend_s, grip_s, ride, 0.0, 0.0)
        if down is None or hold is None:
            return "the ride on the belt leaves the reach"
        d = p.destination
        assert d is not None
        q_dest = self.arm.ik(d["x_mm"], d["y_mm"], d["z_mm"])
        if q_dest is None:
            return "destination unreachable"
        carried = self._carry(p, t_meet + descend_s + grip_s, ride, lift, q_dest, hold[-2:])
        if isinstance(carried, str):
            return carried
        up, Td, qd = carried
        t_leave = t_meet + descend_s + grip_s + len(up) * DT
        t_place = t_leave + Td
        return _PickPlan(
            p.id,
            start,
            qs + down + hold + up + qd[1:],
            t_meet + descend_s * 0.5,
            t_meet + descend_s,
            t_place,
            t_place + self.release_s,
            q_dest,
        )

    # ---- the stream ----------------------------------------------------------------------
    def add(self, p: TruthParcel) -> None:
        """A parcel entered the belt: kept for a later decision, or passed with the reason."""
        if not p.pickable:
            self.plan.passed[p.id] = "not pickable"
        elif p.destination is None:
            self.plan.passed[p.id] = "no destination"
        else:
            self.pending[p.id] = p

    def _deadline(self, p: TruthParcel) -> float:
        return p.t_enter + (self.down - p.u_enter) / self.speed

    def decide(self, now: float) -> bool:
        """Commit the next pick (the arm is free at ``free_at``): False when nothing is
        catchable now (parcels past the window are passed with the reason)."""
        t_free = max(self.free_at, now)
        cands = sorted(self.pending.values(), key=self._deadline)
        for p in cands:
            if self.u_at(p, t_free) > self.down:
                self.plan.passed[p.id] = "past the window before the arm was free"
                del self.pending[p.id]
        cands = [p for p in cands if p.id in self.pending][: self.CANDIDATES]
        urgent = cands[0].id if cands else None
        # most picks; then a pair that keeps the most urgent parcel (one that drops it
        # may finish sooner but loses it beyond the pair: 9 picks against 10 of
        # earliest-deadline-first on a long window); then the earliest finish
        best: tuple[tuple[int, int, float], _PickPlan] | None = None
        for p in cands:
            first = self._pick(p, t_free, self.last_q)
            if isinstance(first, str):
                continue
            score = (1, int(p.id == urgent), -first.free_at)
            if self.LOOKAHEAD > 1:
                for p2 in cands:
                    if p2.id == p.id:
                        continue
                    second = self._pick(p2, first.free_at, first.end_q)
                    if not isinstance(second, str):
                        keeps = int(urgent in (p.id, p2.id))
                        score = max(score, (2, keeps, -second.free_at))
            if best is None or score > best[0]:
                best = (score, first)
        if best is None:
            return False
        self._commit(best[1])
        return True

    def _commit(self, pk: _PickPlan) -> None:
        self.pending.pop(pk.pid, None)
        self._emit(pk.start, pk.qs)
        self.plan.valve.append((pk.t_valve_on, True))
        self.plan.valve.append((pk.t_place, False))
        self.plan.picks[pk.pid] = pk.t_grip
        self.free_at = pk.free_at
        self.last_q = pk.end_q

    def _emit(self, t0: float, qs: Sequence[Q]) -> None:
        """``qs[i]`` at ``t0 + i DT``; the arm holds its last setpoint until ``t0``."""
        sp = self.plan.setpoints
        if sp and sp[-1][0] < t0 - 1e-9:
            sp.append((t0, sp[-1][1]))
        for i, q in enumerate(qs):
            t = t0 + i * DT
            if not sp or t > sp[-1][0] + 1e-9:
                sp.append((t, q))


def _steps(seconds: float) -> float:
    """``seconds`` rounded up to whole setpoint periods."""
    return max(1, math.ceil(seconds / DT - 1e-9)) * DT


# ---- the run -------------------------------------------------------------------------
class PlanSetpoints:
    """The plan's setpoints as the world's servo reference (world time -> rad, rad, m, rad),
    linear between setpoints as the MCU would move them; the rest pose before the first."""

    def __init__(self, plan: OraclePlan, rest: Q) -> None:
        self.plan = plan
        self.rest = rest
        self._i = 0

    def __call__(self, t: float) -> list[float]:
        sp = self.plan.setpoints
        if not sp or t <= sp[0][0]:
            return _si(self.rest if not sp else sp[0][1])
        i = self._i
        while i + 1 < len(sp) and sp[i + 1][0] <= t:
            i += 1
        while i > 0 and sp[i][0] > t:
            i -= 1
        self._i = i
        if i + 1 >= len(sp):
            return _si(sp[-1][1])
        (ta, qa), (tb, qb) = sp[i], sp[i + 1]
        f = (t - ta) / (tb - ta) if tb > ta else 1.0
        return _si(tuple(a + (b - a) * f for a, b in zip(qa, qb, strict=True)))  # type: ignore[arg-type]


def _si(q: Q) -> list[float]:
    return [math.radians(q[0]), math.radians(q[1]), q[2] / 1000, math.radians(q[3])]


def run_oracle(
    settings: Mapping[str, Any], duration_s: float, drain_s: float = 20.0, step_s: float = 0.01
) -> dict[str, Any]:
    """The oracle on the simulated cell of ``settings`` (``edge.cli.sim_arm.cell_settings``,
    the same parcel stream for the same seed), as fast as the physics runs: the world's
    truth of every parcel (the rows of ``SimArmCell.truth``) and the oracle's own counts."""
    import time

    from sim_hardware.arm.cell import SimArmCell
    from sim_hardware.world.arrivals import ArrivalProcess

    cell = SimArmCell(dict(settings), "/nonexistent/oracle-has-no-mcu")  # the MCU never starts
    w = cell.world
    c = cell.cfg
    grip = Grip(
        c.hold_force_n(c.supply_kpa * 1000), c.cup_friction, c.cup_effective_radius_m * 1000
    )
    planner = OraclePlanner(settings, grip)
    w.setpoints = PlanSetpoints(planner.plan, planner.rest_q)
    dests = {d["id"]: d["place"] for d in settings["arm"]["destinations"]}
    cell.arrivals = ArrivalProcess(cell.arrival_cfg, settings["seed"], cell.t_start)
    known: set[int] = set()
    valve_i = 0
    t = 0.0
    cpu0 = time.process_time()
    surface = cell.cfg.belt_surface_z_mm
    while t < duration_s + drain_s:
        t += step_s
        if t >= duration_s:
            cell.closed = True
        cell._induct(cell.t_start + t)
        for pid, tr in list(w.truth.items()):
            if pid in known:
                continue
            known.add(pid)
            pose = w.parcel_pose(pid)
            if pose is None:
                continue
            ok, _ = cell.judge(tr)
            dest = cell.intended(tr.parcel.label_text) if tr.parcel.label_legible else None
            y = cell.cfg.belt_centre_y_mm + cell.cfg.belt_sign * pose[1]
            planner.add(
                TruthParcel(
                    pid,
                    tr.put_on_t,
                    tr.put_on_u_mm,
                    y,
                    surface + tr.parcel.height_mm,
                    dests.get(dest) if dest else None,
                    ok,
                    float(tr.mass_kg),
                    float(tr.parcel.height_mm),
                )
            )
        while planner.pending and t >= planner.free_at - PLAN_AHEAD_S:
            if not planner.decide(t + PLAN_AHEAD_S):
                break
        valves = planner.plan.valve
        while valve_i < len(valves) and valves[valve_i][0] <= t:
            w.set_valve(valves[valve_i][1])
            valve_i += 1
        w.step_to(t)
        if (
            t > duration_s
            and not w.active
            and not cell.waiting
            and not planner.pending
            and t > planner.free_at
        ):
            break
    rows = cell._truth(cell.t_start)
    return {
        "parcels": rows,
        "stats": {
            "planned": len(planner.plan.picks),
            "plans_evaluated": planner.evaluated,
            "passed": dict(planner.plan.passed),
            "world_s": round(w.t, 2),
            "cpu_s": round(time.process_time() - cpu0, 1),
        },
    }
