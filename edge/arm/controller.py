"""The sorting arm's control core: facts in, actions out, no I/O, no clock.

``ArmCore.handle(fact)`` takes one fact (edge/arm/events.py) and returns the actions for the
adapters; ``ArmCore.on_safety(actions, t)`` takes the shared safety state machine's decision
(edge/safety/: the runtime owns it) and returns what the arm must do about it. Every time
comes in with a fact, so the core is deterministic and tested without hardware or a clock.

The pick cycle (docs/arm.md): a parcel seen by the camera (with the encoder count of its
frame) gets a grasp or a refusal; a label goes to the brain (answer by the deadline, else the
routing table decides); a decided, pickable parcel waits for the arm; the planner picks the
one that leaves the window first; the **pick** move meets it riding the belt and holds the cup
on its top for the seal; the vacuum must hold for ``grip_confirm_ms`` before the **carry**
move (lift, to the destination, release) replaces the rest of the pick move; otherwise the
pick move lifts off empty, the valve closes, and the parcel is tried again while it is still
in the window. A grip lost while carrying is a drop, reported with where the cup was. The
destination's sensor confirms the place. Each parcel ends in exactly one ``PickRecord``.

Safety: the e-stop and the light curtain stop the arm first (``StopMotion`` before anything
else in the same answer), then feed the shared safety machine (``SafetyInput``); the arm
moves again only after the safety machine is running again (an operator's reset and start:
never by itself). The valve keeps a held parcel through a stop; it is carried on after the
restart. In reduced-speed mode the cup's speed is limited; a belt faster than the limit
cannot be tracked, so nothing is picked until the mode ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.arm.config import ArmConfig
from edge.arm.events import (
    Alarm,
    AlarmKind,
    ArmAction,
    ArmFact,
    AskBrain,
    BrainAnswer,
    BrainUnavailable,
    CameraFrame,
    Curtain,
    Estop,
    Grip,
    JointState,
    MotionEnded,
    MotionHalted,
    Move,
    Outcome,
    ParcelSeen,
    PickRecord,
    PlaceSensor,
    PublishPick,
    ReducedSpeed,
    SafetyInput,
    StopMotion,
    Suction,
    Tick,
)
from edge.arm.grasp import (
    G_MM,
    Footprint,
    Grasp,
    clear_grasp,
    footprint,
    grasp,
    neighbours,
)
from edge.arm.kinematics import Joints
from edge.arm.moves import Mover, PickPlan
from edge.arm.planner import NOT_TRIED, Candidate, choose
from edge.arm.routing import ArmRouting
from edge.arm.tracking import BeltTracker
from edge.arm.trajectory import Trajectory
from edge.cell.record import TEXT_MAX, StoryEntry, cap_story, clip_text
from edge.safety.machine import (
    CancelAllStrokes,
    SafetyAction,
    SafetyMachine,
    State,
    StopBelt,
    Transition,
)

PLACE_EARLY_S = 0.2  # a place sensor may fire this long before the planned release
# the cup this far (x, y) from a destination's place pose is not over it: no release there
RELEASE_TOLERANCE_MM = 50.0
VALVE_LEAD_S = 0.15  # the valve opens this long before the descent onto the top starts
# (the approach is then hover_mm over the parcel and its neighbours; the lead covers the
# host's latency: the valve is switched when the command arrives, not on the MCU's clock)
SEAL_FROM_S = 0.03  # a seal counts from this long before the descent (earlier: not on it)
SEAL_EARLY_S = 0.05  # a carry starts no earlier than a seal this long before contact allows
PRECARRY_S = 0.01  # a carry planned at the seal starts this much after the earliest the
# confirmation allows (the confirming fact comes on a tick, 10 ms apart; later: planned then)
RETRY_S = 0.05  # a parcel with no pick now (or whose carry would fail) is tried again then
CARRY_CHECKS = 3  # picks planned in turn when the first ones' carries would be refused
GONE_MM = 1000.0  # a parcel this far past the window no longer matters to its neighbours


@dataclass
class Parcel:
    pid: int
    track_id: int
    seen: ParcelSeen
    grasp: Grasp | str
    state: str = "deciding"  # deciding, waiting, picking, carrying, held, placing, done
    destination: str | None = None
    decision_source: str | None = None
    reason: str = ""
    brain_deadline: float | None = None
    attempts: int = 0
    contact: tuple[float, float] | None = None
    first_move_t: float | None = None
    release_t: float | None = None
    milestones: dict[str, float] = field(default_factory=dict)
    story: list[StoryEntry] = field(default_factory=list)
    wait_reason: str = ""
    vacuum_peak: float = 0.0
    retry_at: float = 0.0  # not planned again before this (a carry that would fail)


@dataclass
class PickInFlight:
    pid: int
    move_id: int
    plan: PickPlan
    sealed_since: float | None = None
    carry_sent: bool = False
    suction_on: bool = False  # opened when the move starts (the last release is done then)
    # the carry planned at the seal (``_precarry``): its start, the trajectory (or why
    # none), and the grasp and neighbours it was planned with
    precarry: tuple[float, Trajectory | str, object, tuple[Footprint, ...]] | None = None


@dataclass
class CarryInFlight:
    pid: int
    move_id: int
    traj: Trajectory
    release_t: float
    released: bool = False


class ArmCore:
    def __init__(self, cfg: ArmConfig) -> None:
        self.cfg = cfg
        self.mover = Mover(cfg)
        self.belt = BeltTracker(cfg.belt)
        self.routing = ArmRouting(cfg)
        self.parcels: dict[int, Parcel] = {}
        self.on_belt: dict[int, Footprint] = {}  # every parcel still on the belt near the arm
        self.by_track: dict[int, int] = {}
        self.records: list[PickRecord] = []
        self._next_pid = 1
        self._next_move = 1
        self._out: list[ArmAction] = []
        self.now = 0.0
        # the arm
        self.q: Joints | None = None  # at rest here when nothing is queued
        self.free_at: tuple[float, Joints] | None = None  # when and where queued motion ends
        self.last_move: int | None = None
        self.pick: PickInFlight | None = None
        self.carry: CarryInFlight | None = None
        self.stopping = False  # a stop was commanded; waiting for MotionHalted
        self.moving = False
        # safety
        self.running = False
        self.safety_state = State.BOOT
        self.estop = False
        self.curtain = False
        self.curtain_t: float | None = None
        self.reduced = False
        # camera
        self.last_frame: float | None = None
        self.camera_silent = False
        self.unplanned: dict[int, str] = {}

    # ---- entry points ------------------------------------------------------------------------
    def handle(self, fact: ArmFact) -> list[ArmAction]:
        self._out = []
        self.now = max(self.now, fact.t)
        getattr(self, "_on_" + type(fact).__name__)(fact)
        self._timers(fact.t)
        # a fact that sends a carry returns at once: the next pick is planned on the next
        # fact (an encoder tick, 10 ms on; it starts when the carry ends, ~0.6 s on, either
        # way). Planned here it held the carry back: the confirming fact took up to 75 ms
        # of thread time (the next pick's plan up to 63 of it), 27.5 ms without (ARM-A's
        # measurement, docs/sim-arm.md "Why the core is late"), and a carry later than
        # `lead_ms` allows stops the arm with the parcel on the belt (drops, no-seals).
        if not any(isinstance(a, Move) and a.kind == "carry" for a in self._out):
            self._plan(fact.t)
        return self._out

    def on_safety(self, actions: Sequence[SafetyAction], t: float) -> list[ArmAction]:
        """The shared safety machine decided: stop first, then what follows."""
        self._out = []
        self.now = max(self.now, t)
        for a in actions:
            if isinstance(a, StopBelt):
                self._stop(a.cause, a.emergency, t)
            elif isinstance(a, CancelAllStrokes):
                self._abandon(a.cause, t)
            elif isinstance(a, Transition):
                self.safety_state = a.to_state
                self.running = a.to_state is State.RUNNING
                if a.to_state in (State.READY, State.RUNNING) and self.curtain:
                    self._out.append(SafetyInput("fault", True, "light curtain still broken", t))
        self._plan(t)
        return self._out

    def destination_for_input(self, pin: int) -> str | None:
        """The destination whose entry sensor is MCU input ``pin`` (for the adapter)."""
        return next((d.id for d in self.cfg.destinations if d.sensor_input == pin), None)

    # ---- facts -------------------------------------------------------------------------------
    def _on_Tick(self, f: Tick) -> None:
        self.belt.update(f.count, f.t)

    def _on_CameraFrame(self, f: CameraFrame) -> None:
        self._camera_alive(f.t)

    def _on_ParcelSeen(self, f: ParcelSeen) -> None:
        """A parcel's place on the belt from its first sighting on (a neighbour of every
        pick and carry); what it is and where it goes from its final one (``f.final``: its
        label, or its class alone at the end of its track)."""
        self._camera_alive(f.t)
        pid = self.by_track.get(f.track_id)
        if pid is not None and pid in self.parcels:
            p = self.parcels[pid]
            if p.state not in ("deciding", "waiting"):
                return
            p.seen = f
            self.on_belt[pid] = footprint(self.cfg, f)
            if p.state == "deciding" and p.brain_deadline is None:  # seen early, undecided
                if f.final:
                    p.grasp = grasp(self.cfg, f)
                    self._story(p, f.t, "seen", _describe(f))
                    self._settle(p, f.t)
                return
            p.grasp = grasp(self.cfg, f) if not isinstance(p.grasp, str) else p.grasp
            return
        pid = self._next_pid
        self._next_pid += 1
        p = Parcel(pid=pid, track_id=f.track_id, seen=f, grasp=grasp(self.cfg, f))
        self.parcels[pid] = p
        self.on_belt[pid] = footprint(self.cfg, f)
        self.by_track[f.track_id] = pid
        p.milestones["seen"] = f.t
        self._story(p, f.t, "seen", _describe(f))
        if f.final:
            self._settle(p, f.t)

    def _settle(self, p: Parcel, t: float) -> None:
        """The final sighting: not pickable (passed with why), or its label decides."""
        if isinstance(p.grasp, str):
            self._finish(p, "passed", self.cfg.pass_id, f"not pickable: {p.grasp}", t)
            return
        self._decide_label(p, t)

    def _on_BrainAnswer(self, f: BrainAnswer) -> None:
        p = self.parcels.get(f.parcel_id)
        if p is None or p.state != "deciding" or p.brain_deadline is None:
            return  # late or unknown: the routing table has decided already
        if f.destination is None:
            self._route(p, "the brain does not know it", f.t)
            return
        if f.destination != self.cfg.pass_id and self.cfg.destination(f.destination) is None:
            self._route(p, f"the brain named unknown destination {f.destination!r}", f.t)
            return
        self._decided(p, f.destination, "brain", f"brain: {f.destination}", f.t)

    def _on_BrainUnavailable(self, f: BrainUnavailable) -> None:
        p = self.parcels.get(f.parcel_id)
        if p is not None and p.state == "deciding":
            self._route(p, f"brain unavailable: {f.why}", f.t)

    def _on_JointState(self, f: JointState) -> None:
        """At rest at ``f.q`` with nothing queued (start, a replugged MCU, after a stop whose
        end was never reported). Ignored while a move of ours is under way and no stop was
        commanded: a stale reading must not cut a plan short."""
        if self.stopping or (self.pick is None and self.carry is None and not self.moving):
            self._abandon("the MCU reports the arm at rest", f.t)
            self._at_rest(f.q, f.t)

    def _on_MotionEnded(self, f: MotionEnded) -> None:
        if f.move_id != self.last_move:
            return  # an earlier move; more is queued after it
        self._at_rest(f.q, f.t)
        if self.pick is not None and self.pick.move_id == f.move_id:
            self._pick_failed(self.pick, "the pick move ended without a confirmed grip", f.t)
        if self.carry is not None and self.carry.move_id == f.move_id:
            self._released(self.carry, f.t, f.q)

    def _on_MotionHalted(self, f: MotionHalted) -> None:
        if self.curtain_t is not None and self.curtain:
            took = (f.t - self.curtain_t) * 1000
            if took > self.cfg.safety.curtain_stop_ms:
                self._alarm(
                    "stop_time",
                    f"the arm stopped {took:.0f} ms after the light curtain broke, over "
                    f"curtain_stop_ms {self.cfg.safety.curtain_stop_ms}",
                    f.t,
                )
            self.curtain_t = None
        self._abandon(f"motion halted: {f.reason}", f.t)
        self._at_rest(f.q, f.t)

    def _on_Grip(self, f: Grip) -> None:
        pk, cr = self.pick, self.carry
        if cr is not None and not cr.released:
            # the cup holds the carried parcel until its release, whatever pick is planned
            # next (a drop read as the next pick's "no seal" was never reported)
            if not f.gripped and f.t < cr.release_t - 1e-3:
                self._dropped(cr, f)
            return
        if pk is not None and not pk.carry_sent:
            p = self.parcels[pk.pid]
            p.vacuum_peak = max(p.vacuum_peak, f.kpa)
            if f.gripped and pk.sealed_since is None and f.t >= pk.plan.t_descend - SEAL_FROM_S:
                pk.sealed_since = f.t
                self._story(p, f.t, "sealed", f"vacuum {f.kpa:.0f} kPa")
                self._precarry(pk, f.t)
            elif not f.gripped and pk.sealed_since is not None:
                pk.sealed_since = None
                self._story(p, f.t, "seal lost", f"vacuum {f.kpa:.0f} kPa before the lift")

    def _on_PlaceSensor(self, f: PlaceSensor) -> None:
        placing = [p for p in self.parcels.values() if p.state in ("placing", "carrying")]
        same = [p for p in placing if p.destination == f.destination and _near(p, f.t)]
        if same:
            p = min(same, key=lambda x: x.release_t or 0.0)
            self._story(p, f.t, "confirmed", f"{f.destination} sensor")
            self._finish(p, "placed", f.destination, p.reason, f.t, actual=f.destination)
            return
        other = [p for p in placing if _near(p, f.t)]
        if other:
            p = min(other, key=lambda x: x.release_t or 0.0)
            self._alarm("misplaced", f"parcel {p.pid} meant for {p.destination} seen in "
                        f"{f.destination}", f.t)  # fmt: skip
            self._finish(p, "misplaced", p.destination or "", p.reason, f.t, actual=f.destination)
            return
        self._alarm("unexpected_place", f"{f.destination} sensor with no parcel due", f.t)

    def _on_Curtain(self, f: Curtain) -> None:
        was, self.curtain = self.curtain, f.broken
        if f.broken and not was:
            self.curtain_t = f.t if (self.moving or self.pick or self.carry) else None
            self._stop("light curtain broken", False, f.t)
            self._out.append(SafetyInput("fault", True, "light curtain broken", f.t))
            self._alarm("curtain", "light curtain broken: the arm stops; reset to resume", f.t)

    def _on_Estop(self, f: Estop) -> None:
        if f.pressed and not self.estop:
            self._stop("e-stop", True, f.t)
        self.estop = f.pressed
        self._out.append(SafetyInput("estop", f.pressed, "e-stop", f.t))

    def _on_ReducedSpeed(self, f: ReducedSpeed) -> None:
        if f.on == self.reduced:
            return
        self.reduced = f.on
        self.mover = Mover(self.cfg, reduced=f.on)
        if f.on and (self.pick is not None or self.carry is not None or self.moving):
            self._stop("reduced speed: re-planning within the speed limit", False, f.t)

    # ---- decisions ---------------------------------------------------------------------------
    def _decide_label(self, p: Parcel, t: float) -> None:
        label = p.seen.label
        if label is None:
            self._decided(p, self.cfg.pass_id, "unreadable", "label unreadable", t)
            return
        p.brain_deadline = t + self.cfg.brain_deadline_ms / 1000
        size = p.grasp.size_mm if isinstance(p.grasp, Grasp) else None
        self._out.append(AskBrain(p.pid, label, p.seen.class_name, size, p.brain_deadline))
        self._story(p, t, "asked", f"label {label}")

    def _route(self, p: Parcel, why: str, t: float) -> None:
        r = self.routing.route(p.seen.label, p.seen.class_name, _size(p))
        self._decided(p, r.chute, "routing_table", f"{why}; {r.reason}", t)

    def _decided(self, p: Parcel, dest: str, source: str, reason: str, t: float) -> None:
        p.destination, p.decision_source, p.reason = dest, source, reason
        p.milestones["decided"] = t
        self._story(p, t, "decided", f"{dest} ({reason})")
        if dest == self.cfg.pass_id:
            self._finish(p, "passed", dest, reason, t)
            return
        p.state = "waiting"

    # ---- planning ----------------------------------------------------------------------------
    def _can_plan(self) -> str | None:
        if not self.running:
            return f"safety state {self.safety_state.value}"
        if self.curtain or self.estop:
            return "a safety input is active"
        if self.stopping:
            return "stopping"
        if self.pick is not None:
            return "busy picking"
        if self.q is None and self.free_at is None:
            return "arm position unknown"
        if not self.belt.known:
            return "belt encoder unknown"
        return None

    def _plan(self, t: float) -> None:
        held = [p for p in self.parcels.values() if p.state == "held"]
        if held and self._can_plan() is None and self.carry is None and self.free_at is None:
            self._carry_held(held[0], t)
            return
        why_not = self._can_plan()
        self._sweep(t, why_not)
        if why_not is not None:
            return
        waiting = [p for p in self.parcels.values() if p.state == "waiting"]
        if not waiting:
            return
        lead = self.cfg.tracking.lead_ms / 1000
        if self.free_at is not None:
            t0, q0 = max(self.free_at[0], t + lead), self.free_at[1]
        else:
            assert self.q is not None
            t0, q0 = t + lead, self.q
        excluded: set[int] = set()
        for _ in range(CARRY_CHECKS):
            waiting = [
                p
                for p in self.parcels.values()
                if p.state == "waiting" and p.pid not in excluded and p.retry_at <= t
            ]
            cands = self._candidates(waiting, t)
            choice = choose(self.mover, q0, t0, cands, self.belt)
            for pid, why in choice.skipped:
                p = self.parcels[pid]
                last = f" (before: {p.wait_reason})" if p.wait_reason else ""
                self._finish(p, "passed", self.cfg.pass_id, f"skipped: {why}{last}", t)
            for pid, why in choice.waiting:
                w = self.parcels[pid]
                w.wait_reason = why
                if why != NOT_TRIED:  # no pick now: not planned again on every tick
                    w.retry_at = t + RETRY_S
            if choice.pick is None:
                self._go_home(t)
                return
            pid, plan = choice.pick
            why_not_carry = self._carry_check(pid, plan)
            if why_not_carry is None:
                break
            q = self.parcels[pid]
            q.wait_reason = f"its carry would fail: {why_not_carry}"
            q.retry_at = t + RETRY_S  # the belt moves it on meanwhile; not every tick
            excluded.add(pid)
        else:
            return
        p = self.parcels[pid]
        p.attempts += 1
        p.state = "picking"
        p.contact = plan.contact_xy
        if p.first_move_t is None:
            p.first_move_t = plan.trajectory.t0
        p.milestones.setdefault("planned", t)
        move_id = self._send(Move(self._move_id(), "pick", pid, plan.trajectory))
        self.pick = PickInFlight(pid, move_id, plan)
        x, y = plan.contact_xy
        self._story(
            p, t, "pick", f"attempt {p.attempts}: contact at ({x:.0f}, {y:.0f}) mm, "
            f"t+{(plan.t_contact - t) * 1000:.0f} ms",
        )  # fmt: skip

    def _carry_check(self, pid: int, plan: PickPlan) -> str | None:
        """Why the carry after this pick would be refused, with a seal at contact (None: it
        would not): the lifted parcel cannot clear a parcel on its way under the quill's
        top, say. Checked before the pick, so the cup does not grip what it cannot carry."""
        p = self.parcels[pid]
        dest = self.cfg.destination(p.destination or "")
        if dest is None or not isinstance(p.grasp, Grasp):
            return None
        g = p.grasp
        s, tr = self.cfg.suction, self.cfg.tracking
        t_b = plan.t_contact - SEAL_EARLY_S + (s.grip_confirm_ms + tr.lead_ms) / 1000
        t_b = min(max(t_b, plan.t_contact), plan.t_lift)
        others = [(o, fp) for o, fp in self.on_belt.items() if o != pid]
        me = self.on_belt.get(pid)
        beside = neighbours(self.cfg, me, others, self.belt.cpm).others if me else ()
        traj = self.mover.carry(plan, t_b, g.target, self.belt, dest, g.load, g.hold, beside)
        return traj if isinstance(traj, str) else None

    def _candidates(self, waiting: list[Parcel], t: float) -> list[Candidate]:
        """The waiting parcels the cup may take now, each with the height its approach and
        lift must clear. A neighbour under the cup's lip at the grasp point: wait while the
        neighbour may still be picked itself, else skip (it would seal on it, or press it)."""
        out: list[Candidate] = []
        for p in waiting:
            if not isinstance(p.grasp, Grasp):
                continue
            me = self.on_belt.get(p.pid)
            if me is None:
                out.append(Candidate(p.pid, p.grasp.target))
                continue
            others = [(o, fp) for o, fp in self.on_belt.items() if o != p.pid]
            nb = neighbours(self.cfg, me, others, self.belt.cpm)
            g = p.grasp.centred
            if nb.conflict is not None:
                # the cup moves off the face's centre, away from the neighbour, if the face
                # and the hold allow it (grasp.clear_grasp); else wait or skip as before
                moved = clear_grasp(self.cfg, g, me, others, self.belt.cpm)
                if isinstance(moved, str):
                    other, why = nb.conflict
                    why = f"{why}; {moved}"
                    q = self.parcels.get(other)
                    if q is not None and q.state in ("deciding", "waiting", "picking"):
                        p.wait_reason = f"a neighbour too close: {why}"
                    else:
                        self._finish(p, "passed", self.cfg.pass_id, f"skipped: {why}", t)
                    continue
                g = moved
            if g.offset_mm != p.grasp.offset_mm:
                du, dy = g.offset_mm
                self._story(
                    p, t, "grasp", f"cup {math.hypot(du, dy):.0f} mm off the face's centre "
                    f"(du {du:.0f}, dy {dy:.0f} mm), clear of its neighbours; it holds "
                    f"{g.hold.limit / G_MM:.2f} g",
                )  # fmt: skip
            p.grasp = g
            out.append(Candidate(p.pid, g.target, nb.clear_z, nb.others))
        return out

    def _go_home(self, t: float) -> None:
        """Idle away from home (after a place far from the belt): wait at home, from where
        the whole window is in time."""
        if self.free_at is not None or self.q is None or self.moving:
            return
        h = self.cfg.home
        x, y, z, _ = self.mover.kin.fk(self.q)
        if math.dist((x, y, z), (h.x_mm, h.y_mm, h.z_mm)) < 1.0:
            return
        lead = self.cfg.tracking.lead_ms / 1000
        traj = self.mover.to_pose(self.q, t + lead, (h.x_mm, h.y_mm, h.z_mm))
        if isinstance(traj, str):
            self._alarm("unplanned", f"no move home: {traj}", t)
            return
        self._send(Move(self._move_id(), "home", None, traj))

    def _sweep(self, t: float, why_not: str | None) -> None:
        """Parcels still waiting or deciding that rode past the window end as 'passed' (with
        why the arm did not take them), so none is lost without a record."""
        if not self.belt.known:
            return
        down = self.cfg.tracking.downstream_mm
        count = self.belt.count_at(t)
        for pid, fp in list(self.on_belt.items()):
            if fp.target.u_at_count(count, self.belt.cpm) > down + GONE_MM:
                del self.on_belt[pid]
        for p in list(self.parcels.values()):
            if p.state not in ("waiting", "deciding"):
                continue
            if isinstance(p.grasp, Grasp):
                u = p.grasp.target.u_at_count(count, self.belt.cpm)
            elif p.pid in self.on_belt:  # seen early, its final sighting never came
                u = self.on_belt[p.pid].target.u_at_count(count, self.belt.cpm)
            else:
                continue
            if u > down:
                because = why_not or p.wait_reason or "no feasible pick"
                if p.state == "deciding":
                    because = (
                        "no decision in time"
                        if p.brain_deadline is not None
                        else "its track had not ended (no label, no class) before the window"
                    )
                self._finish(
                    p, "passed", self.cfg.pass_id, f"left the window unpicked: {because}", t
                )

    def _send(self, move: Move) -> int:
        tr = move.trajectory
        self._out.append(move)
        self.last_move = move.move_id
        self.free_at = (tr.t_end, tr.q[-1])
        if not self.moving:
            self.moving = True
            self._out.append(SafetyInput("motion", True, f"{move.kind} move", tr.t0))
        return move.move_id

    def _move_id(self) -> int:
        m = self._next_move
        self._next_move += 1
        return m

    def _check_belt(self, pk: PickInFlight, t: float) -> None:
        """The belt's speed changed since the pick was planned (a ramp, a slip): where the
        parcel will be at contact, by the encoder now, against the plan. Off by more than the
        pick tolerance: stop the approach and plan it again from rest (a miss would cost a
        retry, or a seal off the parcel's centre)."""
        if not self.belt.known:
            return
        t_c = pk.plan.t_contact
        off = abs(self.belt.count_at(t_c) - pk.plan.belt.count_at(t_c)) / self.belt.cpm
        if off <= self.cfg.tracking.pick_tolerance_mm:
            return
        p = self.parcels[pk.pid]
        p.attempts -= 1  # not a miss: planned again
        why = (
            f"belt speed now {self.belt.speed_mm_s:.0f} mm/s, planned at "
            f"{pk.plan.belt.speed_mm_s:.0f}: contact would be {off:.0f} mm off"
        )
        self._story(p, t, "re-plan", why)
        self._stop(f"re-plan parcel {p.pid}: {why}", False, t)

    def _carry_start(self, pk: PickInFlight, t: float) -> float:
        """The earliest start of the carry for a grip confirmed at ``t``: ``lead_ms`` on (the
        stream has sent the pick's segments up to there); a seal made early in the descent is
        confirmed as if made SEAL_EARLY_S before the contact."""
        lead = self.cfg.tracking.lead_ms / 1000
        confirm = self.cfg.suction.grip_confirm_ms / 1000
        return max(t + lead, pk.plan.t_contact - SEAL_EARLY_S + confirm + lead)

    def _beside(self, pid: int) -> tuple[Footprint, ...]:
        others = [(o, fp) for o, fp in self.on_belt.items() if o != pid]
        me = self.on_belt.get(pid)
        return neighbours(self.cfg, me, others, self.belt.cpm).others if me else ()

    def _precarry(self, pk: PickInFlight, t: float) -> None:
        """Plan the carry at the seal, for a confirmation ``grip_confirm_ms`` later (plus
        PRECARRY_S): the fact that confirms then only sends it. Why: planning a carry (the
        cup's hold, the parcels beside) takes up to ~45 ms of CPU on this machine, and a
        carry that reaches the stream later than ``lead_ms`` allows stops the arm with the
        parcel on the belt (drops and no-seals behind it, docs/sim-arm.md)."""
        p = self.parcels[pk.pid]
        dest = self.cfg.destination(p.destination or "")
        if dest is None or not isinstance(p.grasp, Grasp):
            return
        confirm = self.cfg.suction.grip_confirm_ms / 1000
        t_b = self._carry_start(pk, t + confirm) + PRECARRY_S
        if t_b + self.mover.dt > pk.plan.t_lift:
            return  # no ride left for the margin: planned at the confirmation
        g, beside = p.grasp, self._beside(pk.pid)
        traj = self.mover.carry(pk.plan, t_b, g.target, self.belt, dest, g.load, g.hold, beside)
        pk.precarry = (t_b, traj, g, beside)

    def _confirm_grip(self, pk: PickInFlight, t: float) -> None:
        p = self.parcels[pk.pid]
        dest = self.cfg.destination(p.destination or "")
        assert dest is not None and isinstance(p.grasp, Grasp)
        g = p.grasp
        t_b = self._carry_start(pk, t)
        beside = self._beside(pk.pid)
        pre = pk.precarry
        if (
            pre is not None
            and isinstance(pre[1], Trajectory)  # a refusal is planned again: t_b is earlier
            and t_b <= pre[0] + 1e-9
            and pre[2] is g
            and len(pre[3]) == len(beside)
            and all(a is b for a, b in zip(pre[3], beside, strict=True))
        ):
            traj = pre[1]  # planned at the seal for this grasp and these neighbours
        else:
            traj = self.mover.carry(pk.plan, t_b, g.target, self.belt, dest, g.load, g.hold, beside)
        p.milestones["gripped"] = t
        if isinstance(traj, str):
            self._story(p, t, "no carry", traj)
            self._pick_failed(pk, f"gripped but no carry: {traj}", t)
            return
        pk.carry_sent = True
        self.on_belt.pop(pk.pid, None)  # lifted off the belt
        move = Move(self._move_id(), "carry", pk.pid, traj, replace_from=traj.t0)
        self._send(move)
        self.pick = None
        self.carry = CarryInFlight(pk.pid, move.move_id, traj, traj.marks["release"])
        p.state = "carrying"
        p.release_t = traj.marks["release"]
        self._story(p, t, "carry", f"grip confirmed; to {dest.id}, release at "
                    f"t+{(p.release_t - t) * 1000:.0f} ms")  # fmt: skip

    def _carry_held(self, p: Parcel, t: float) -> None:
        """A parcel held at rest (the grip came late, or a stop came while carrying)."""
        assert self.q is not None
        dest = self.cfg.destination(p.destination or "")
        if dest is None:
            return
        lead = self.cfg.tracking.lead_ms / 1000
        g = p.grasp if isinstance(p.grasp, Grasp) else None
        load, hold = (g.load, g.hold) if g is not None else (None, None)
        pl = dest.place
        traj = self.mover.to_pose(self.q, t + lead, (pl.x_mm, pl.y_mm, pl.z_mm), load, hold)
        if isinstance(traj, str):
            self._alarm("unplanned", f"parcel {p.pid} held: no move to {dest.id}: {traj}", t)
            p.state = "stuck"
            return
        n = math.ceil(self.cfg.suction.release_ms / 1000 / traj.dt)
        release = traj.t_end
        traj = Trajectory(
            traj.t0, traj.dt, traj.q + (traj.q[-1],) * n, {**traj.marks, "release": release}
        )
        move = Move(self._move_id(), "place", p.pid, traj)
        self._send(move)
        self.carry = CarryInFlight(p.pid, move.move_id, traj, release)
        p.state, p.release_t = "carrying", release
        self._story(p, t, "carry", f"held parcel to {dest.id}")

    # ---- outcomes ----------------------------------------------------------------------------
    def _pick_failed(self, pk: PickInFlight, why: str, t: float) -> None:
        p = self.parcels[pk.pid]
        self.pick = None
        self._out.append(Suction(False, f"parcel {p.pid}: no grip", t))
        self._alarm("no_grip", f"parcel {p.pid}: {why} (vacuum peak {p.vacuum_peak:.0f} kPa)", t)
        self._story(p, t, "missed", why)
        if p.attempts <= self.cfg.tracking.max_retries:
            p.state = "waiting"
            return
        self._finish(
            p,
            "passed",
            self.cfg.pass_id,
            f"no grip after {p.attempts} attempt(s): {why} (vacuum peak {p.vacuum_peak:.0f} kPa)",
            t,
        )

    def _dropped(self, cr: CarryInFlight, f: Grip) -> None:
        cr.released = True
        p = self.parcels.get(cr.pid)
        if p is None:  # already ended (a sensor saw it fall): close the valve, nothing more
            self._out.append(Suction(False, f"parcel {cr.pid} gone from the cup", f.t))
            return
        x, y, z, _ = self.mover.kin.fk(cr.traj.at(f.t))
        b = self.cfg.belt
        u = x * b.sign
        on_belt = abs(y - b.centre_y_mm) <= b.width_mm / 2
        where = (
            f"onto the belt at u {u:.0f} mm, y {y:.0f} mm"
            if on_belt
            else f"off the belt at x {x:.0f}, y {y:.0f} mm (cup z {z:.0f})"
        )
        self._out.append(Suction(False, f"parcel {p.pid} dropped", f.t))
        self._alarm("drop", f"parcel {p.pid} lost in transfer {where} (vacuum {f.kpa:.0f} kPa)",
                    f.t)  # fmt: skip
        self._story(p, f.t, "dropped", where)
        self._finish(p, "dropped", p.destination or "", f"dropped in transfer {where}", f.t,
                     dropped_at=(x, y, z))  # fmt: skip

    def _released(self, cr: CarryInFlight, t: float, q: Joints | None = None) -> None:
        """The carry's release instant: the valve closes, only with the cup over the parcel's
        destination: where the carry's plan has it at ``t``, or, when its move ended (``q``),
        where the MCU reports the arm at rest. A move that ended elsewhere (its carry never
        ran, or ran in part: a box held on the belt was let go there in a run of session 9)
        keeps the parcel held: an alarm says where, and the held parcel is carried to its
        destination from there (``_plan``, held parcels first). The parcel may have ended
        already (its destination's sensor saw it fall early, inside ``PLACE_EARLY_S``, or a
        sensor of another destination did): the valve still closes, the record stands."""
        if cr.released:
            return
        p = self.parcels.get(cr.pid)
        dest = None if p is None else self.cfg.destination(p.destination or "")
        if p is not None and p.state == "carrying" and dest is not None:
            x, y, _, _ = self.mover.kin.fk(cr.traj.at(t) if q is None else q)
            off = math.hypot(x - dest.place.x_mm, y - dest.place.y_mm)
            if off > RELEASE_TOLERANCE_MM:
                if self.carry is cr:
                    self.carry = None
                p.state = "held"
                why = (f"the cup at ({x:.0f}, {y:.0f}) mm, {off:.0f} mm from {dest.id}'s "
                       "place: not released, held")  # fmt: skip
                self._story(p, t, "release refused", why)
                self._alarm("release_refused", f"parcel {p.pid}: {why}", t)
                return
        cr.released = True
        self._out.append(Suction(False, f"release parcel {cr.pid}", t))
        p = self.parcels.get(cr.pid)
        if p is None:
            return
        p.milestones["released"] = t
        if p.state == "carrying":
            p.state = "placing"
            self._story(p, t, "released", f"over {p.destination}")
        dest = self.cfg.destination(p.destination or "")
        if dest is not None and dest.sensor_input is None:
            self._finish(p, "unconfirmed", dest.id, f"{p.reason}; no sensor to confirm", t)

    def _finish(
        self,
        p: Parcel,
        outcome: Outcome,
        dest: str,
        reason: str,
        t: float,
        actual: str | None = None,
        dropped_at: tuple[float, float, float] | None = None,
    ) -> None:
        if p.state == "done":
            return
        p.state = "done"
        p.milestones["end"] = t
        cycle = None
        if p.first_move_t is not None and "released" in p.milestones:
            cycle = round((p.milestones["released"] - p.first_move_t) * 1000, 1)
        src = p.decision_source if p.decision_source in (
            "brain", "routing_table", "unreadable"
        ) else None  # fmt: skip
        g = p.grasp
        rec = PickRecord(
            parcel_id=p.pid,
            outcome=outcome,
            destination=dest,
            actual=actual,
            reason=clip_text(reason, TEXT_MAX),
            decision_source=src,  # type: ignore[arg-type]
            label=None if p.seen.label is None else clip_text(p.seen.label, TEXT_MAX),
            class_name=None if p.seen.class_name is None else clip_text(p.seen.class_name, 64),
            size_mm=g.size_mm if isinstance(g, Grasp) else None,
            attempts=p.attempts,
            contact=p.contact,
            dropped_at=dropped_at,
            cycle_ms=cycle,
            latency_ms=_latencies(p.milestones),
            story=cap_story(p.story),  # bounded, as the diverter's records (one MQTT message)
        )
        self.records.append(rec)
        self._out.append(PublishPick(rec))
        self.parcels.pop(p.pid, None)
        self.by_track.pop(p.track_id, None)

    # ---- stops -------------------------------------------------------------------------------
    def _stop(self, cause: str, emergency: bool, t: float) -> None:
        self._out.append(StopMotion(cause, emergency, t))
        self.stopping = self.moving or self.pick is not None or self.carry is not None
        self._abandon(cause, t)

    def _abandon(self, cause: str, t: float) -> None:
        """Every queued move is gone (a stop): picks are retried later, a carried parcel is
        held (the valve keeps it) and carried on after the restart."""
        if self.pick is not None:
            pk, self.pick = self.pick, None
            p = self.parcels.get(pk.pid)
            if p is not None:
                if pk.suction_on:
                    self._out.append(Suction(False, f"stop: {cause}", t))
                self._story(p, t, "stopped", cause)
                p.state = "waiting"
        if self.carry is not None:
            cr, self.carry = self.carry, None
            p = self.parcels.get(cr.pid)
            if p is not None and p.state == "carrying" and not cr.released:
                p.state = "held"
                self._story(p, t, "stopped", f"{cause}; held by the cup")
        self.free_at = None

    def _at_rest(self, q: Joints, t: float) -> None:
        self.q = q
        self.free_at = None
        self.stopping = False
        if self.moving:
            self.moving = False
            self._out.append(SafetyInput("motion", False, "arm at rest", t))

    # ---- time --------------------------------------------------------------------------------
    def _camera_alive(self, t: float) -> None:
        # a parcel handed over at its track's end carries its latest whole view's time,
        # which on a slow belt is over silent_ms old: it must not move the last frame back
        self.last_frame = t if self.last_frame is None else max(self.last_frame, t)
        if self.camera_silent:
            self.camera_silent = False
            self._alarm("camera_back", "camera frames again", t)

    def _timers(self, t: float) -> None:
        for p in list(self.parcels.values()):
            if p.state == "deciding" and p.brain_deadline is not None and t >= p.brain_deadline:
                self._route(p, f"no brain answer in {self.cfg.brain_deadline_ms} ms", t)
        pk = self.pick
        valve_at = (
            None if pk is None else max(pk.plan.trajectory.t0, pk.plan.t_descend - VALVE_LEAD_S)
        )
        if pk is not None and valve_at is not None and not pk.suction_on and t >= valve_at:
            pk.suction_on = True
            self._out.append(Suction(True, f"pick parcel {pk.pid}", t))
        if pk is not None and not pk.carry_sent and t < pk.plan.t_contact:
            self._check_belt(pk, t)
            pk = self.pick
        if pk is not None and not pk.carry_sent:
            confirm = self.cfg.suction.grip_confirm_ms / 1000
            lead = self.cfg.tracking.lead_ms / 1000
            if pk.sealed_since is not None and t - pk.sealed_since >= confirm - 1e-9:
                if t + lead <= pk.plan.t_lift:
                    self._confirm_grip(pk, t)
                else:
                    self._pick_failed(pk, "grip confirmed too late for the lift", t)
            elif t + lead > pk.plan.t_lift and pk.sealed_since is None:
                self._pick_failed(
                    pk, f"no seal within grip_window_ms {self.cfg.suction.grip_window_ms:.0f}", t
                )
            elif t + lead > pk.plan.t_lift:
                self._pick_failed(pk, "the seal came too late to confirm before the lift", t)
        cr = self.carry
        if cr is not None and not cr.released and t >= cr.release_t:
            self._released(cr, t)
        if cr is not None and cr.released and self.free_at is not None and t >= self.free_at[0]:
            pass  # MotionEnded closes it
        for p in list(self.parcels.values()):
            if p.state == "placing" and p.release_t is not None:
                dest = self.cfg.destination(p.destination or "")
                limit = dest.confirm_ms / 1000 if dest else 1.0
                if t > p.release_t + limit:
                    self._alarm("unconfirmed_place", f"parcel {p.pid}: {p.destination} sensor "
                                f"saw nothing in {limit * 1000:.0f} ms", t)  # fmt: skip
                    self._finish(p, "unconfirmed", p.destination or "", p.reason, t)
        silent = self.cfg.camera.silent_ms / 1000
        if self.last_frame is not None and not self.camera_silent and t - self.last_frame > silent:
            self.camera_silent = True
            self._alarm(
                "camera_silent",
                f"no camera frame for {self.cfg.camera.silent_ms} ms: parcels not seen pass "
                "unpicked (nothing is picked blind)",
                t,
            )
        if self.carry is not None and self.carry.released and self.free_at is None:
            self.carry = None

    # ---- small helpers -----------------------------------------------------------------------
    def _story(self, p: Parcel, t: float, stage: str, detail: str) -> None:
        count = round(self.belt.count_at(t)) if self.belt.known else p.seen.count
        p.story.append(StoryEntry(round(t, 4), count, stage, detail))

    def _alarm(self, kind: AlarmKind, detail: str, t: float) -> None:
        self._out.append(Alarm(kind, detail, t))

    def status(self) -> dict[str, Any]:
        """What the node shows in status and health: counts and the arm's activity."""
        by_state: dict[str, int] = {}
        for p in self.parcels.values():
            by_state[p.state] = by_state.get(p.state, 0) + 1
        outcomes: dict[str, int] = {}
        for r in self.records:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        return {
            "parcels": by_state,
            "outcomes": outcomes,
            "picking": self.pick.pid if self.pick else None,
            "carrying": self.carry.pid if self.carry else None,
            "reduced_speed": self.reduced,
            "camera_silent": self.camera_silent,
            "curtain_broken": self.curtain,
            "belt_mm_s": round(self.belt.speed_mm_s, 1),
        }


def _near(p: Parcel, t: float) -> bool:
    if p.release_t is None:
        return False
    return p.release_t - PLACE_EARLY_S <= t


def _size(p: Parcel) -> tuple[float, float, float] | None:
    return p.grasp.size_mm if isinstance(p.grasp, Grasp) else None


def _describe(f: ParcelSeen) -> str:
    h = f"x{f.height_mm:.0f}" if f.height_mm is not None else ""
    return (
        f"track {f.track_id} {f.class_name or '?'} {f.length_mm:.0f}x{f.width_mm:.0f}{h} mm "
        f"at along {f.along_mm:.0f} count {f.count} label {f.label or '-'}"
        + ("" if f.final else " (early: its place on the belt)")
    )


_STAGES = (
    ("seen_to_decided", "seen", "decided"),
    ("decided_to_planned", "decided", "planned"),
    ("planned_to_gripped", "planned", "gripped"),
    ("gripped_to_released", "gripped", "released"),
    ("released_to_end", "released", "end"),
)


def _latencies(m: dict[str, float]) -> dict[str, float]:
    return {name: round((m[b] - m[a]) * 1000, 3) for name, a, b in _STAGES if a in m and b in m}


def feed_safety(safety: SafetyMachine, inp: SafetyInput) -> list[SafetyAction]:
    """Hand one of the core's ``SafetyInput`` to the shared safety machine; its answer goes
    to the devices (``host.apply_safety``) and back to ``ArmCore.on_safety``."""
    if inp.kind == "estop":
        return safety.estop(inp.value, inp.t)
    if inp.kind == "fault":
        return safety.fault(inp.cause, inp.t)
    return safety.belt(inp.value, inp.t)
