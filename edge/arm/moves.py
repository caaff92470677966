"""The arm's moves, composed from jerk-limited laws and checked before they leave the core.

A pick is two moves, because the vacuum must confirm the grip before the lift:

* **pick** (sent when the arm is free): from rest, blend onto the moving parcel (the
  conveyor-tracking blend below), descend onto its top while riding with it, ride on its top
  for ``suction.grip_window_ms`` (the seal), then lift off and come to rest downstream. If the
  seal never comes this is a complete, safe move: the cup lifts off empty.
* **carry** (sent when the grip is confirmed): replaces the pick move from an instant inside
  the ride, with the same ride up to it: lift with the parcel, blend off the belt to above the
  destination, descend, release.

The blend onto a moving point, in joint space: with S the start (joints at rest), H(t) the
joints that hold the cup over the point riding the belt (inverse kinematics) and s a
jerk-limited time law from 0 to 1 over T (``unit_s``), the arm follows

    q(t) = S + s(t) (H(t) - S)

so q(0) = S at rest, and at T, where s = 1 and s' = s'' = 0, q = H(T) with H's velocity: the
cup meets the parcel moving with it. The blend off the belt is the mirror image,
q(t) = D + (1 - s(t)) (H(t) - D). In joint space a blend never cuts through the unreachable
ring around the column, as a straight line of the cup would. The cup keeps its yaw in
the arm frame (j4 turns against j1 + j2): it does not twist the parcel it holds, and the
parcel's footprint stays as the camera saw it.

Each move is sampled every ``tracking.setpoint_ms`` through the inverse kinematics (one elbow)
and refused, with the reason, when a setpoint breaks a joint's range, velocity,
acceleration or jerk limit, the cup's speed limit (reduced speed), or enters a forbidden
zone (swept, for the cup and, when carrying, the parcel under it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.arm.config import ArmConfig, Destination
from edge.arm.grasp import Footprint, Hold
from edge.arm.kinematics import Joints, Limits, Scara, Unreachable
from edge.arm.tracking import BeltTracker, LeftWindow, Target, intercept
from edge.arm.trajectory import (
    DoubleS,
    Law,
    Trajectory,
    blend_shape,
    limit_violation,
    sample,
    sync_move,
    unit_s,
)
from edge.arm.zones import first_hit

Vec = tuple[float, float, float]
Ride = Callable[[float, float], Joints]
Load = tuple[float, float, float]  # a carried parcel: height, half extents in x and y (mm)
MAX_APPROACH_S = 1.5  # a longer approach waits at rest first
MIN_APPROACH_S = 0.05
CONTACT_STEP_MM = 50.0  # contact points tried along the belt, then refined
MIN_STEP_S = 0.03
MAX_CONTACT_TRIES = 40
MAX_BLEND_S = 3.0
GROW = 1.08
FINE_GROW = 1.03  # a shaped blend starts near its shortest: grown in finer steps
LIFT_SHARE = 0.5  # the lifted parcel's bottom clears the belt by this share of lift_mm ...
NEIGHBOUR_CLEAR_MM = 20.0  # ... and its neighbours' tops by this, before it moves sideways
DESCENT_OVERLAP = 0.4  # the descent onto a top starts this share of it before the approach ends
SHAPE_MARGIN = 0.98  # blend laws are shaped on the limits x this (the samples' phase)
HOLD_TRIES = 8  # carries planned slower until the cup holds the parcel
OVER_TRIES = 3  # approaches planned again over a parcel they would pass low over
G_MM = 9806.65  # g, mm/s^2


@dataclass(frozen=True)
class PickPlan:
    trajectory: Trajectory  # the pick move: approach, descend, ride, lift off, rest
    t_contact: float  # the cup is on the parcel's top from here ...
    t_lift: float  # ... to here (then lifts off, empty unless a carry replaced it)
    contact_xy: tuple[float, float]
    contact_u: float
    z_contact: float
    z_carry: float
    belt: BeltTracker  # the belt's prediction the pick was planned with (a snapshot)
    t_descend: float = 0.0  # the descent onto the top starts (the valve opens then)
    z_hover: float = 0.0  # the approach's height: over the parcel and its neighbours
    z_clear: float | None = None  # the cup's height from which the carry may go sideways


class Mover:
    """Builds and checks the arm's moves for one config (and speed mode)."""

    def __init__(self, cfg: ArmConfig, reduced: bool = False) -> None:
        self.cfg = cfg
        self.kin = Scara(cfg)
        self.reduced = reduced
        self.cup_speed_limit = cfg.safety.reduced_speed_mm_s if reduced else None
        self.limits: Limits = self.kin.limits
        self.dt = cfg.tracking.setpoint_ms / 1000
        self.zones = list(cfg.forbidden_zones)
        s = cfg.suction
        self.cup_radius = cfg.zone_clearance_mm + s.cup_diameter_mm / 2

    # ---- the pick ---------------------------------------------------------------------------
    def pick(
        self,
        q0: Joints,
        t0: float,
        target: Target,
        belt: BeltTracker,
        clear_z: float | None = None,
        others: Sequence[Footprint] = (),
    ) -> PickPlan | str | LeftWindow:
        """The earliest pick of ``target`` starting at rest at ``q0`` no earlier than ``t0``,
        or why none (a parcel that would leave the window is skipped, never chased).
        ``clear_z``: the highest top of the parcels beside it: the approach comes in
        ``hover_mm`` over the higher of that and its own top, so the cup passes over its
        neighbours (and the open valve never meets one), then descends onto it. ``others``:
        the other parcels on the belt; an approach that would pass lower than
        ``NEIGHBOUR_CLEAR_MM`` over one of them (riding the belt) is planned again over
        its top."""
        for _ in range(OVER_TRIES):
            res = self._pick(q0, t0, target, belt, clear_z)
            if not isinstance(res, PickPlan) or not others:
                return res
            top = self.passes_over(res, others)
            if top is None:
                return res
            clear_z = top
        return "the approach would pass low over the parcels beside it"

    def passes_over(self, plan: PickPlan, others: Sequence[Footprint]) -> float | None:
        """The top of the highest parcel of ``others`` (riding the belt as ``plan`` predicts)
        that the approach passes over lower than NEIGHBOUR_CLEAR_MM, the cup's radius
        included, before its descent; None: it clears them all."""
        tr = plan.trajectory
        n = tr.index_at(plan.t_descend)
        if n < 1 or not others:
            return None
        r = self.cfg.suction.cup_diameter_mm / 2
        return self._highest_under(tr, 0, n - 1, plan.belt, others, 0.0, r, r)

    def _pick(
        self,
        q0: Joints,
        t0: float,
        target: Target,
        belt: BeltTracker,
        clear_z: float | None,
    ) -> PickPlan | str | LeftWindow:
        cfg = self.cfg
        speed = belt.speed_mm_s
        if speed < max(1.0, cfg.belt.min_speed_mm_s * 0.5):
            return f"belt at {speed:.0f} mm/s: not tracking a stopped belt"
        if speed > cfg.belt.max_speed_mm_s * 1.05:
            return f"belt at {speed:.0f} mm/s, over max_speed_mm_s {cfg.belt.max_speed_mm_s:.0f}"
        if self.cup_speed_limit is not None and speed > self.cup_speed_limit:
            return (
                f"reduced speed: the belt's {speed:.0f} mm/s is over the cup's "
                f"{self.cup_speed_limit:.0f} mm/s limit"
            )
        belt = belt.snapshot()
        tr = self.cfg.tracking
        z_hover = self._z_hover(target, clear_z)
        td = self._z_law(z_hover - target.z + self.cfg.suction.press_mm).duration
        ta_min = 0.7 * self._approach_guess(q0, t0, target, belt)
        t_first = max(
            self._t_at_u(target, belt, tr.upstream_mm), t0 + ta_min + td * (1 - DESCENT_OVERLAP)
        )
        step = max(MIN_STEP_S, CONTACT_STEP_MM / speed)
        return intercept(
            lambda t_c: self._try_pick(q0, t0, target, belt, t_c, z_hover, clear_z),
            t_first,
            step,
            MAX_CONTACT_TRIES,
        )

    def _z_hover(self, target: Target, clear_z: float | None) -> float:
        top = target.z if clear_z is None else max(target.z, clear_z)
        return min(self.limits.hi[2], top + self.cfg.tracking.hover_mm)

    def _approach_guess(self, q0: Joints, t0: float, target: Target, belt: BeltTracker) -> float:
        """The rest-to-rest time to the hover point where the parcel is in 0.4 s."""
        x, y = self._xy(target, belt, t0 + 0.4)
        try:
            z = target.z + self.cfg.tracking.hover_mm
            q1 = self.kin.ik((x, y, z, self.kin.fk(q0)[3]), None, q0)
        except Unreachable:
            return 0.2
        return max(0.1, sync_move(q0, q1, self.limits)[0])

    def _t_at_u(self, target: Target, belt: BeltTracker, u: float) -> float:
        """When the target reaches belt coordinate ``u`` (at the current belt speed)."""
        t_last, c_last = belt.last
        count = target.count_ref + (u - target.u_ref) * belt.cpm
        return t_last + (count - c_last) / (belt.speed_mm_s * belt.cpm)

    def _xy(self, target: Target, belt: BeltTracker, t: float) -> tuple[float, float]:
        u = target.u_at_count(belt.count_at(t), belt.cpm)
        return (u * self.cfg.belt.sign, target.y)

    def _u(self, target: Target, belt: BeltTracker, t: float) -> float:
        return target.u_at_count(belt.count_at(t), belt.cpm)

    def _rider(self, target: Target, belt: BeltTracker, near: Joints) -> Ride:
        """Joints that keep the cup at height z over the target at t, its yaw held as at
        ``near`` (the cup does not turn on the parcel it holds; raises Unreachable)."""
        yaw = self.kin.fk(near)[3]

        def ride(t: float, z: float) -> Joints:
            x, y = self._xy(target, belt, t)
            return self.kin.ik((x, y, z, yaw), None, near)

        return ride

    def _try_pick(
        self,
        q0: Joints,
        t0: float,
        target: Target,
        belt: BeltTracker,
        t_contact: float,
        z_hover: float,
        clear_z: float | None = None,
    ) -> PickPlan | str:
        tr, s = self.cfg.tracking, self.cfg.suction
        lo3, hi3 = self.limits.lo[2], self.limits.hi[2]
        z_contact = target.z - s.press_mm
        z_clear, z_carry = self._lift_heights(target, clear_z)
        if clear_z is not None and z_clear - (target.z - self.cfg.belt.surface_z_mm) < (
            clear_z + NEIGHBOUR_CLEAR_MM - 1e-6
        ):
            return (
                f"lifted to the quill's top the parcel would not clear its neighbour's top "
                f"(z {clear_z:.0f}) by {NEIGHBOUR_CLEAR_MM:.0f} mm"
            )
        if z_contact < lo3:
            return f"the parcel's top z {target.z:.0f} is below the quill's reach {lo3}"
        if z_hover <= z_contact:
            return f"no room to hover over a {target.z:.0f} mm top under the quill's top {hi3}"
        descend = self._z_law(z_hover - z_contact)
        lift = self._z_law(z_carry - z_contact)
        td, tl = descend.duration, lift.duration
        # the approach: as long as there is time for, up to MAX_APPROACH_S (then the arm
        # waits at rest), starting on the setpoint grid; the descent starts before it ends
        # (DESCENT_OVERLAP of the descent's time: the first part of a double S covers little)
        t_a = t_contact - td
        t_m = t_a + td * DESCENT_OVERLAP  # the approach blend ends on the descending ride
        start = max(t0, t_m - MAX_APPROACH_S)
        start = t0 + math.ceil((start - t0) / self.dt - 1e-9) * self.dt
        ta = t_m - start
        if ta < MIN_APPROACH_S:
            return f"no time to approach ({ta * 1000:.0f} ms)"
        t_c = t_contact
        t_l = t_c + s.grip_window_ms / 1000
        t_h = t_l + tl
        if self._u(target, belt, t_l) > tr.downstream_mm:
            raise LeftWindow(
                f"it would leave the tracking window (u {self._u(target, belt, t_l):.0f} > "
                f"{tr.downstream_mm:.0f} mm) before the arm could pick it"
            )
        if self._u(target, belt, t_c) < tr.upstream_mm - 1.0:
            return "contact upstream of the window"
        ride = self._rider(target, belt, q0)

        def z_down(t: float) -> float:
            return z_hover - descend.eval(t - t_a)[0]  # hover before t_a

        try:  # the ride at t_m, extended back in time at its velocity then (in reach); its
            # height is the descent's (never the tangent's: that would rise past the quill)
            xy = _tangent(lambda t: ride(t, z_hover), t_m, self.dt)

            def meet(t: float) -> Joints:
                m = xy(t)
                return (m[0], m[1], z_down(t), m[3])

            law = Law(blend_shape(_sub(meet(t_m), q0), self.limits.scaled(SHAPE_MARGIN)), ta)
        except Unreachable as exc:
            return f"unreachable: {exc}"

        # from below the hover height (a low place pose) the quill rises on its own law
        # first, done before the descent starts: the cup does not cross the belt low
        rise = self._z_law(z_hover - q0[2]) if q0[2] < z_hover else None
        if rise is not None and rise.duration > t_a - start:
            rise = None  # no time for it: the blend's own rise

        def path(t: float) -> Joints:
            if t <= start:
                return q0
            if t < t_m:
                q = _lerp(q0, meet(t), law.s(t - start))
                if rise is not None:
                    z = q0[2] + rise.eval(t - start)[0] if t < t_a else z_down(t)
                    return (q[0], q[1], z, q[3])
                return q
            if t < t_c:
                return ride(t, z_down(t))
            if t < t_l:
                return ride(t, z_contact)
            return ride(t, z_contact + lift.eval(t - t_l)[0])

        # cheap first: the approach and descent alone (most meetings fail there)
        n = math.ceil((t_c - start) / self.dt)
        try:
            qs = [path(start + i * self.dt) for i in range(n + 1)]
        except Unreachable as exc:
            return f"unreachable: {exc}"
        why = limit_violation(qs, self.dt, self.limits, rest_at_end=False)
        if why is not None:
            return why
        # the escape: off the belt's motion to rest, after the lift
        esc = self._blend_off(path, t_h, None)
        if isinstance(esc, str):
            return esc
        te, q_end, shape = esc
        t_e = t_h + te
        off = _blended(path, t_h, te, q_end, self.dt, None, shape)

        traj = self._sampled(off, start, t_e - start, None)
        if isinstance(traj, str):
            return traj
        traj = Trajectory(
            traj.t0,
            traj.dt,
            traj.q,
            {"start": start, "descend": t_a, "contact": t_c, "lift": t_l, "end": t_e},
        )
        cx, cy = self._xy(target, belt, t_c)
        return PickPlan(
            trajectory=traj,
            t_contact=t_c,
            t_lift=t_l,
            contact_xy=(cx, cy),
            contact_u=self._u(target, belt, t_c),
            z_contact=z_contact,
            z_carry=z_carry,
            belt=belt,
            t_descend=t_a,
            z_hover=z_hover,
            z_clear=z_clear,
        )

    def _lift_heights(self, target: Target, clear_z: float | None) -> tuple[float, float]:
        """The cup's heights (z_clear, z_carry) for lifting the parcel whose top is at
        ``target.z``: it moves sideways once its bottom clears the belt by LIFT_SHARE of
        ``lift_mm`` and the neighbours' tops (``clear_z``) by NEIGHBOUR_CLEAR_MM (a carried
        parcel must not sweep a taller one beside it off the belt); the lift ends higher
        still, at ``lift_mm`` over its top at least (both within the quill's stroke)."""
        hi3 = self.limits.hi[2]
        b = self.cfg.belt.surface_z_mm
        height = target.z - b
        bottom = b + self.cfg.tracking.lift_mm * LIFT_SHARE
        if clear_z is not None:
            bottom = max(bottom, clear_z + NEIGHBOUR_CLEAR_MM)
        z_clear = min(hi3, bottom + height)
        z_carry = min(hi3, max(target.z + self.cfg.tracking.lift_mm, z_clear + NEIGHBOUR_CLEAR_MM))
        return z_clear, z_carry

    # ---- the carry --------------------------------------------------------------------------
    def carry(
        self,
        plan: PickPlan,
        t_b: float,
        target: Target,
        belt: BeltTracker,
        dest: Destination,
        load: Load,
        hold: Hold | None = None,
        others: Sequence[Footprint] = (),
    ) -> Trajectory | str:
        """The carry that replaces ``plan``'s pick move from ``t_b`` (an instant of its ride
        on the parcel's top): lift, off the belt to above ``dest``, down, release dwell.
        ``load``: the parcel's height and footprint half extents in x and y (zones). The
        ride goes on with the pick's own belt prediction, so the carry joins it exactly
        (``belt`` is not used: kept for callers that plan without a pick).

        ``hold``: what the cup holds of this parcel (``Hold``: the largest "need" of the
        cup's acceleration, ``hold_need``); None: no limit but the joints'. A carry whose
        need passes it is planned again slower (lift, blend and descent stretched by k:
        accelerations / k^2) until it fits: a held parcel never needs more than the cup
        holds. ``others``: the other parcels on the belt; a carry whose parcel would pass
        lower than NEIGHBOUR_CLEAR_MM over one of them is lifted higher first."""
        for _ in range(OVER_TRIES):
            traj = self._held_carry(plan, t_b, target, dest, load, hold)
            if isinstance(traj, str) or not others:
                return traj
            top = self.load_passes_over(traj, plan, load, others)
            if top is None:
                return traj
            height = load[0]
            hi3 = self.limits.hi[2]
            if top + NEIGHBOUR_CLEAR_MM + height > hi3 + 1e-6:
                return (
                    f"to {dest.id}: lifted to the quill's top the parcel would not clear "
                    f"a parcel beside it (top z {top:.0f})"
                )
            z_clear = top + NEIGHBOUR_CLEAR_MM + height
            plan = replace(
                plan,
                z_clear=z_clear,
                z_carry=min(hi3, max(plan.z_carry, z_clear + NEIGHBOUR_CLEAR_MM)),
            )
        return f"to {dest.id}: the parcel would pass low over the parcels beside it"

    def load_passes_over(
        self, traj: Trajectory, plan: PickPlan, load: Load, others: Sequence[Footprint]
    ) -> float | None:
        """The top of the highest parcel of ``others`` (riding the belt as ``plan`` predicts)
        that the carried parcel's bottom passes lower than NEIGHBOUR_CLEAR_MM over once it
        moves sideways, until it is over its destination; None: it clears them all."""
        i0 = traj.index_at(traj.marks.get("off", traj.t0))
        i1 = traj.index_at(traj.marks.get("over", traj.t_end))
        if i1 <= i0:
            return None
        return self._highest_under(traj, i0, i1, plan.belt, others, load[0], load[1], load[2])

    def _highest_under(
        self, traj: Trajectory, i0: int, i1: int, belt: BeltTracker,
        others: Sequence[Footprint], drop: float, half_x: float, half_y: float,
    ) -> float | None:  # fmt: skip
        """The top of the highest parcel of ``others`` (riding ``belt``) that samples
        ``i0..i1`` of ``traj`` pass over lower than NEIGHBOUR_CLEAR_MM: what moves is the tool
        point lowered by ``drop``, ``half_x`` by ``half_y`` around it; None: it clears them."""
        q = np.asarray(traj.q[i0 : i1 + 1], dtype=np.float64)
        a1, a12 = np.radians(q[:, 0]), np.radians(q[:, 0] + q[:, 1])
        x = self.kin.l1 * np.cos(a1) + self.kin.l2 * np.cos(a12)
        y = self.kin.l1 * np.sin(a1) + self.kin.l2 * np.sin(a12)
        bottom = q[:, 2] - drop
        ts = traj.t0 + (i0 + np.arange(len(q))) * traj.dt
        t_last, c_last = belt.last
        counts = c_last + belt.speed_mm_s * belt.cpm * (ts - t_last)
        sign = self.cfg.belt.sign
        worst: float | None = None
        for o in others:
            xo = sign * (o.target.u_ref + (counts - o.target.count_ref) / belt.cpm)
            over = (np.abs(x - xo) < o.hx + half_x) & (np.abs(y - o.target.y) < o.hy + half_y)
            low = bottom < o.target.z + NEIGHBOUR_CLEAR_MM
            if bool((over & low).any()) and (worst is None or o.target.z > worst):
                worst = o.target.z
        return worst

    def _held_carry(
        self,
        plan: PickPlan,
        t_b: float,
        target: Target,
        dest: Destination,
        load: Load,
        hold: Hold | None,
    ) -> Trajectory | str:
        """The carry, slowed until the cup holds the parcel (``carry``)."""
        k = 1.0
        why = ""
        for _ in range(HOLD_TRIES):
            traj = self._carry(plan, t_b, target, dest, load, k)
            if isinstance(traj, str) or hold is None:
                return traj
            i_b = plan.trajectory.index_at(traj.t0)
            pre = plan.trajectory.q[max(0, i_b - 2) : i_b]
            upto = traj.index_at(traj.marks["release"])
            need = self.hold_need(traj.q, upto, pre, hold.shear)
            if need <= hold.limit:
                return Trajectory(traj.t0, traj.dt, traj.q, {**traj.marks, "slow": k})
            why = f"needs {need / 1000:.1f} m/s^2 of the cup's {hold.limit / 1000:.1f}"
            # accelerations scale with 1 / k^2; the weight (g) does not
            ratio = max(need - G_MM, 1.0) / max(hold.limit - G_MM, 1.0)
            k *= max(1.08, math.sqrt(ratio) * 1.03)
        return f"to {dest.id}: no carry within the cup's hold ({why})"

    def hold_need(
        self, q: Sequence[Joints], upto: int, before: Sequence[Joints] = (), shear: float = 2.0
    ) -> float:
        """The largest "need" of the sampled move up to setpoint ``upto`` (the release), in
        mm/s^2: max(0, g + a_z) + |a_xy| * shear, where a is the cup's acceleration
        (second differences of its position at the setpoints, as the MCU runs straight
        segments between them). The cup holds a parcel of mass m while m * need stays
        under its holding force (docs/arm.md, "Weight-aware carries"). ``before``: the
        setpoints that precede the move (default: at rest at its first)."""
        seq = list(before[-2:]) + list(q[: upto + 1])
        if len(seq) < 3:
            return G_MM
        a = np.asarray(seq, dtype=np.float64)
        a1 = np.radians(a[:, 0])
        a12 = np.radians(a[:, 0] + a[:, 1])
        l1, l2 = self.kin.l1, self.kin.l2
        x = l1 * np.cos(a1) + l2 * np.cos(a12)
        y = l1 * np.sin(a1) + l2 * np.sin(a12)
        acc = np.diff(np.stack((x, y, a[:, 2]), axis=1), 2, axis=0) / self.dt**2
        need = np.maximum(0.0, G_MM + acc[:, 2]) + np.hypot(acc[:, 0], acc[:, 1]) * shear
        return float(need.max())

    def _carry(
        self,
        plan: PickPlan,
        t_b: float,
        target: Target,
        dest: Destination,
        load: Load,
        k: float,
    ) -> Trajectory | str:
        """The carry with its lift, blend and descent stretched by ``k`` >= 1."""
        belt = plan.belt
        pick = plan.trajectory
        i_b = pick.index_at(t_b)
        t_b = pick.t0 + i_b * pick.dt
        if not plan.t_contact - 1e-9 <= t_b <= plan.t_lift + 1e-9:
            return "the grip came after the lift-off"
        limits = self.limits.scaled(1 / k) if k > 1 else self.limits
        lift = self._z_law(plan.z_carry - plan.z_contact, k)
        # the blend off the belt starts part way up: the parcel clears the belt and its
        # neighbours by then
        z_clear = plan.z_clear if plan.z_clear is not None else plan.z_contact
        t_off = t_b + math.ceil(_time_to(lift, z_clear - plan.z_contact) / self.dt) * self.dt
        q_from = pick.q[i_b]
        ride = self._rider(target, belt, q_from)
        yaw = self.kin.fk(q_from)[3]

        def path(t: float) -> Joints:
            return ride(t, plan.z_contact + lift.eval(t - t_b)[0])

        p = dest.place
        z_over = max(p.z_mm, plan.z_carry)
        before = list(pick.q[max(0, i_b - 3) : i_b])
        try:
            q_over = self.kin.ik((p.x_mm, p.y_mm, z_over, yaw), None, q_from)
        except Unreachable as exc:
            return f"to {dest.id}: unreachable: {exc}"

        def z_lift(t: float) -> float:
            return plan.z_contact + lift.eval(t - t_b)[0]

        esc = self._blend_off(path, t_off, q_over, z_lift, limits)
        if isinstance(esc, str):
            # straight off the belt out of reach (a destination upstream, the parcel far
            # downstream): come to rest first, then go there from rest
            return self._carry_via_rest(path, t_b, t_off, before, dest, load, esc, z_lift, limits)
        tp, _, shape = esc
        t_p = t_off + tp
        down = self._z_law(z_over - p.z_mm, k)
        t_r = t_p + down.duration
        t_end = t_r + self.cfg.suction.release_ms / 1000
        off = _blended(path, t_off, tp, q_over, self.dt, z_lift, shape)

        def full(t: float) -> Joints:
            if t < t_p:
                return off(t)
            z = z_over - down.eval(t - t_p)[0]
            return self.kin.ik((p.x_mm, p.y_mm, z, yaw), None, q_over)

        traj = self._sampled(full, t_b, t_end - t_b, before, load, t_off)
        if isinstance(traj, str):
            return f"to {dest.id}: {traj}"
        return Trajectory(
            traj.t0,
            traj.dt,
            traj.q,
            {"lift": t_b, "off": t_off, "over": t_p, "release": t_r, "end": t_end},
        )

    def _carry_via_rest(
        self,
        path: Callable[[float], Joints],
        t_b: float,
        t_off: float,
        before: list[Joints],
        dest: Destination,
        load: Load,
        why_not_direct: str,
        z_lift: Callable[[float], float],
        limits: Limits,
    ) -> Trajectory | str:
        esc = self._blend_off(path, t_off, None, z_lift, limits)
        if isinstance(esc, str):
            return f"to {dest.id}: {why_not_direct}; nor to rest: {esc}"
        te, q_rest, shape = esc
        off = _blended(path, t_off, te, q_rest, self.dt, z_lift, shape)

        first = self._sampled(off, t_b, t_off + te - t_b, before, load, t_off)
        if isinstance(first, str):
            return f"to {dest.id}: {why_not_direct}; nor to rest: {first}"
        p = dest.place
        second = self.to_pose(
            first.q[-1], first.t_end, (p.x_mm, p.y_mm, p.z_mm), load, limits=limits
        )
        if isinstance(second, str):
            return f"to {dest.id}: {why_not_direct}; nor from rest: {second}"
        t_r = second.t_end
        n = math.ceil(self.cfg.suction.release_ms / 1000 / self.dt)
        q = first.q + second.q[1:] + (second.q[-1],) * n
        end = first.t0 + (len(q) - 1) * self.dt
        marks = {"lift": t_b, "off": t_off, "over": second.t0, "release": t_r, "end": end}
        return Trajectory(first.t0, self.dt, q, marks)

    # ---- rest to rest -----------------------------------------------------------------------
    def to_pose(
        self,
        q0: Joints,
        t0: float,
        xyz: Vec,
        load: Load | None = None,
        hold: Hold | None = None,
        limits: Limits | None = None,
    ) -> Trajectory | str:
        """A rest-to-rest move to ``xyz`` (straight up to the highest of both heights first,
        then across, then down: the safe shape for a move whose start is not on a plan).
        ``hold``: the cup's hold of a carried parcel (``carry``): the move is stretched until
        its need stays under it."""
        lim = limits or self.limits
        try:
            p0 = self.kin.fk(q0)
            z_top, yaw = max(p0[2], xyz[2]), p0[3]
            q_up = self.kin.ik((p0[0], p0[1], z_top, yaw), None, q0)
            q_over = self.kin.ik((xyz[0], xyz[1], z_top, yaw), None, q_up)
            q_end = self.kin.ik((xyz[0], xyz[1], xyz[2], yaw), None, q_over)
        except Unreachable as exc:
            return f"unreachable: {exc}"
        pieces = [sync_move(a, b, lim) for a, b in ((q0, q_up), (q_up, q_over), (q_over, q_end))]
        stretch = 1.0
        for _ in range(40):
            durations = [d * stretch for d, _ in pieces]
            total = sum(durations)

            def fn(t: float, durations: list[float] = durations, k: float = stretch) -> Joints:
                u = t - t0
                for (_, f), d in zip(pieces, durations, strict=True):
                    if u <= d:
                        return f(u / k)
                    u -= d
                return q_end

            q = sample(fn, t0, total, self.dt)
            why = self._check(q, None, load)
            if why is None and hold is not None:
                need = self.hold_need(q, len(q) - 1, (), hold.shear)
                if need > hold.limit:
                    why = f"needs {need / 1000:.1f} m/s^2 of the cup's {hold.limit / 1000:.1f}"
            if why is None:
                return Trajectory(t0, self.dt, tuple(q), {"start": t0, "end": t0 + total})
            if "zone" in why:
                return why
            stretch *= GROW
        return f"no move within the limits: {why}"

    # ---- helpers ----------------------------------------------------------------------------
    def _z_law(self, dz: float, k: float = 1.0) -> DoubleS:
        """The quill's law over ``dz`` at 90 % of its limits, stretched by ``k``."""
        i = 2
        return DoubleS(
            dz,
            self.limits.vel[i] * 0.9 / k,
            self.limits.acc[i] * 0.9 / k**2,
            self.limits.jerk[i] * 0.9 / k**3,
        )

    def _blend_off(
        self,
        path: Callable[[float], Joints],
        t_h: float,
        to: Joints | None,
        z_law: Callable[[float], float] | None = None,
        limits: Limits | None = None,
    ) -> tuple[float, Joints, DoubleS | None] | str:
        """The shortest blend (in joint space) from riding ``path`` at ``t_h`` to rest at
        ``to`` (None: where the ride is at ``t_h``, less part of the overshoot, so that the
        cup comes back a little and stays in reach). The ride is continued past ``t_h`` at its
        velocity then (the parcel's path runs out of reach downstream), its height by
        ``z_law`` (a lift still under way; default: held). A blend to ``to`` runs on the
        fastest common law of its joints (``blend_shape``), one to rest on the fixed
        ``unit_s``. Checked for the arm's limits with the ride before it, and inside itself
        for ``limits`` (default: the arm's; a slower carry passes them scaled down: the ride
        it leaves keeps its own pace); the caller checks the whole move against the arm's:
        ``_blended(path, ...)`` rebuilds it. Returns the duration, the end and the
        law's shape (None: ``unit_s``)."""
        lim = limits or self.limits
        why = "no blend tried"
        try:
            q_h = path(t_h)
            pre = [path(t_h - k * self.dt) for k in (3, 2, 1)]
            ahead = _tangent(path, t_h, self.dt)  # the ride on, at its velocity at t_h
        except Unreachable as exc:
            return f"unreachable: {exc}"
        z_of = z_law if z_law is not None else (lambda t: q_h[2])
        # a first guess: the joints' speed at t_h shed at their acceleration limits
        vel = [(q_h[k] - pre[2][k]) / self.dt for k in range(4)]
        te = max([0.08] + [2 * abs(vel[k]) / lim.acc[k] for k in range(4)])
        shape: DoubleS | None = None
        if to is not None:
            shape = blend_shape(_sub(to, q_h), lim.scaled(SHAPE_MARGIN))
            te = max(te, shape.duration)
        while te <= MAX_BLEND_S:
            end = to if to is not None else _lerp(q_h, pre[2], 0.25 * te / self.dt)
            law = Law(shape, te) if shape is not None else None

            def fn(t: float, te: float = te, end: Joints = end, law: Law | None = law) -> Joints:
                if t >= t_h + te:
                    return end
                a = ahead(t)
                s = law.s(t - t_h) if law is not None else unit_s((t - t_h) / te)
                return _lerp((a[0], a[1], z_of(t), a[3]), end, s)

            try:
                qs = [fn(t_h + i * self.dt) for i in range(math.ceil(te / self.dt) + 1)]
                if to is None:
                    self.kin.fk(end)
                    self._reachable(end)
            except Unreachable as exc:
                why = f"unreachable: {exc}"
                te *= GROW
                continue
            why = (
                limit_violation(qs, self.dt, self.limits, before=pre)
                or (None if lim is self.limits else _inner_violation(qs, self.dt, lim))
                or self._speed_violation(pre[-1:] + qs)
            )
            if why is None:
                return te, end, shape
            te *= GROW if shape is None else FINE_GROW
        return f"no blend within {MAX_BLEND_S} s: {why}"

    def _reachable(self, q: Joints) -> None:
        if not self.kin.within_limits(q):
            raise Unreachable("a joint outside its range at the end of the blend")

    def _sampled(
        self,
        fn: Callable[[float], Joints],
        t0: float,
        duration: float,
        before: list[Joints] | None,
        load: Load | None = None,
        load_from: float | None = None,
    ) -> Trajectory | str:
        """``fn`` (joints) sampled and checked; the load hangs under the cup from
        ``load_from`` on (before, it still sits on the belt where it was)."""
        n = max(1, math.ceil(duration / self.dt - 1e-9))
        try:
            q = [fn(t0 + i * self.dt) for i in range(n + 1)]
        except Unreachable as exc:
            return f"unreachable: {exc}"
        start = 0 if load_from is None else max(0, math.ceil((load_from - t0) / self.dt))
        why = self._check(q, before, load, start)
        if why is not None:
            return why
        return Trajectory(t0, self.dt, tuple(q))

    def _check(
        self,
        q: list[Joints],
        before: list[Joints] | None,
        load: Load | None,
        load_start: int = 0,
    ) -> str | None:
        why = limit_violation(q, self.dt, self.limits, before=before or ())
        if why is not None:
            return why
        why = self._speed_violation(q)
        if why is not None:
            return why
        return self.zone_violation(q, load, load_start)

    def _speed_violation(self, q: list[Joints]) -> str | None:
        if self.cup_speed_limit is None:
            return None
        prev = self.kin.fk(q[0])
        for i in range(1, len(q)):
            p = self.kin.fk(q[i])
            v = math.dist(p[:3], prev[:3]) / self.dt
            if v > self.cup_speed_limit * 1.001:
                return f"cup speed {v:.0f} mm/s over the reduced-speed limit (setpoint {i})"
            prev = p
        return None

    def zone_violation(self, q: list[Joints], load: Load | None, load_start: int = 0) -> str | None:
        """Why the sampled move enters a forbidden zone (None: clear)."""
        if not self.zones:
            return None
        cup = [self.kin.fk(p)[:3] for p in q]
        cup3 = [(c[0], c[1], c[2]) for c in cup]
        elbows = [self.kin.elbow_xy(p) for p in q]
        hit = first_hit(cup3, self.zones, self.cup_radius, elbows, self.cfg.link_z_mm)
        if hit is None and load is not None:
            height, hx, hy = load
            bottom = [(c[0], c[1], c[2] - height) for c in cup3[load_start:]]
            clr = self.cfg.zone_clearance_mm
            r = (clr + hx, clr + hy, clr)
            hit = first_hit(bottom, self.zones, r)
            if hit is not None:
                i = hit.index + load_start
                return f"the parcel's bottom enters zone {hit.zone!r} at setpoint {i}"
        return None if hit is None else str(hit)


def _lerp(a: Joints, b: Joints, k: float) -> Joints:
    """a + k (b - a), per joint."""
    return (
        a[0] + k * (b[0] - a[0]),
        a[1] + k * (b[1] - a[1]),
        a[2] + k * (b[2] - a[2]),
        a[3] + k * (b[3] - a[3]),
    )


def _inner_violation(q: list[Joints], dt: float, lim: Limits) -> str | None:
    """Why the samples ``q`` alone (no padding before or after) move faster or accelerate
    more than ``lim`` allows (None: they do not)."""
    if len(q) < 3:
        return None
    a = np.asarray(q, dtype=np.float64)
    for what, d, top in (
        ("velocity", np.diff(a, 1, axis=0) / dt, lim.vel),
        ("acceleration", np.diff(a, 2, axis=0) / dt**2, lim.acc),
    ):
        over = np.abs(d) > np.asarray(top) * (1 + 1e-6)
        if over.any():
            i, k = (int(v) for v in np.argwhere(over)[0])
            return f"j{k + 1} {what} {abs(d[i, k]):.0f} over the slowed {top[k]:.0f} (setpoint {i})"
    return None


def _time_to(law: DoubleS, d: float) -> float:
    """When the rising ``law`` has covered ``d`` (at most its duration): the lift's instant
    at a height."""
    if d <= 0:
        return 0.0
    lo, hi = 0.0, law.duration
    for _ in range(30):
        mid = (lo + hi) / 2
        if law.eval(mid)[0] >= d:
            hi = mid
        else:
            lo = mid
    return hi


def _sub(a: Joints, b: Joints) -> Joints:
    """a - b, per joint."""
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def _tangent(fn: Callable[[float], Joints], t_ref: float, dt: float) -> Callable[[float], Joints]:
    """``fn`` continued from ``t_ref`` at its velocity there (a straight line in joint
    space): equal to ``fn`` at ``t_ref`` in position and velocity, in reach wherever the
    belt's path is not (a parcel still upstream, or gone downstream)."""
    q = fn(t_ref)
    p = fn(t_ref - dt)
    v = tuple((q[k] - p[k]) / dt for k in range(4))

    def at(t: float) -> Joints:
        d = t - t_ref
        return (q[0] + v[0] * d, q[1] + v[1] * d, q[2] + v[2] * d, q[3] + v[3] * d)

    return at


def _blended(
    path: Callable[[float], Joints],
    t_h: float,
    te: float,
    end: Joints,
    dt: float,
    z_law: Callable[[float], float] | None,
    shape: DoubleS | None = None,
) -> Callable[[float], Joints]:
    """``path`` up to ``t_h``, then the blend off it to rest at ``end`` over ``te`` (as
    ``Mover._blend_off`` checked it), then ``end``."""
    ahead = _tangent(path, t_h, dt)
    z0 = path(t_h)[2]
    law = Law(shape, te) if shape is not None else None

    def at(t: float) -> Joints:
        if t < t_h:
            return path(t)
        if t >= t_h + te:
            return end
        a = ahead(t)
        z = z_law(t) if z_law is not None else z0
        s = law.s(t - t_h) if law is not None else unit_s((t - t_h) / te)
        return _lerp((a[0], a[1], z, a[3]), end, s)

    return at
