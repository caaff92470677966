"""The arm core's moves on the MCU's clock: timed joint segments streamed just in time.

The core plans a move as joint setpoints every ``tracking.setpoint_ms`` in host time
(``Move.trajectory``); the MCU executes timed linear segments on its own clock
(docs/mcu-protocol.md section 12). ``MotionStream`` converts one into the other:

* each setpoint becomes the end of one segment, its start the previous end, both on the
  MCU's clock (the link's clock sync), so the MCU moves the arm when the host planned it
  whatever the link's latency (the host never "sleeps then moves");
* segments are sent ``BULK_HORIZON_S`` ahead of their start (within the MCU's queue of 64
  segments), so a busy host does not starve the queue; the part of a pick move that a carry
  may replace (from the earliest grip confirmation on) goes out only as far as no carry can
  start yet, so a carry finds nothing after its start on the MCU. With ``carry_after_s``
  (the node's: ``grip_confirm_ms`` + ``lead_ms``) that bound comes from the seal itself: a
  carry starts no earlier than ``carry_after_s`` after the seal's MCU stamp, and a seal not
  yet heard of happened after the last message heard (the MCU sends in order), so the
  stream sends up to that instant whatever the core's latency (the seal-gated bound,
  ``_jit_bound``); without it, ``horizon_s`` ahead of now (the core answering within
  ``lead_ms`` - ``horizon_s``);
* a move's last setpoint carries ``END`` unless more is already waiting, so a queue that
  runs dry after a planned end is the normal end of a move (``MotionEnded``) and one that
  runs dry anywhere else is an underrun: the MCU stops by itself (``MotionHalted``);
* ``stop_now`` puts ``stop_motion`` on the wire ahead of every queued command before it
  returns and forgets what was waiting (the safety path);
* nothing goes out while a stop runs on the MCU (it refuses segments then), and a segment
  the MCU refuses breaks the move: the rest of it is not sent (the MCU would chain it from
  where its queue rests, not from the refused segment's end: a jump), the arm is stopped
  and the core plans again from where it rests.

Joint units: the core's (deg, deg, mm, deg); the protocol's micro-units (urad, um).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.arm.events import ArmFact, JointState, MotionEnded, MotionHalted, Move
from edge.arm.kinematics import Joints
from firmware_bridge.mcu import McuError
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.link import McuLink
from firmware_bridge.mcu.motion import ArmMotion, to_micro

log = logging.getLogger("wolfpack.arm.motion")

PUMP_S = 0.004  # how often waiting setpoints are looked at
# a fresh start's first segment begins at least this far ahead: the command must reach the
# MCU before its start (3 ms was refused as "in the past" on a loaded host)
START_AHEAD_S = 0.01
SEG_MEMORY = 512  # segment id -> move id kept for the MCU's motion_stopped
BULK_HORIZON_S = 0.35  # 44 segments of 8 ms: inside the simulated MCU's 64
MAX_SPEED_RATIO = 1.5  # a segment faster than this x a joint's top speed is a jump: refused
# a stop_motion that found nothing moving brings no motion_stopped: after the MCU's ok and
# this long (more than the event's way back), the arm's state is read and told to the core
STOP_SILENT_S = 0.03
STOP_END_MARGIN_S = 0.003  # after a stop's end (MCU clock, host time) before a new segment
MAX_LATE_START_S = 0.025  # a move's first segment this much later than planned: re-planned
# the seal-gated bound stays this far inside the earliest carry start (the host-time
# mapping of the MCU's stamps moves by a few milliseconds between clock-sync samples)
JIT_MARGIN_S = 0.02


def to_protocol(q: Joints) -> tuple[int, ...]:
    """(deg, deg, mm, deg) -> the protocol's (urad, urad, um, urad)."""
    return to_micro([math.radians(q[0]), math.radians(q[1]), q[2] / 1000, math.radians(q[3])])


def from_protocol(p: tuple[int, ...]) -> Joints:
    return (
        math.degrees(p[0] / 1e6),
        math.degrees(p[1] / 1e6),
        p[2] / 1000,
        math.degrees(p[3] / 1e6),
    )


@dataclass(frozen=True)
class _Point:
    t: float
    q: Joints
    move_id: int
    last: bool  # the move's last setpoint: the arm at rest there
    jit: bool = False  # a carry may replace it: sent just in time


class MotionStream:
    """Streams the core's moves to ``ArmMotion``; turns the MCU's motion events into facts."""

    def __init__(
        self,
        link: McuLink,
        arm: ArmMotion,
        horizon_s: float,
        feed: Callable[[ArmFact], None],
        vel_limits: Joints | None = None,
        carry_after_s: float | None = None,
    ) -> None:
        self.link = link
        # a carry starts at least this long after the seal it confirms (None: the fixed
        # horizon_s rules the replaceable part instead of the seal)
        self.carry_after_s = carry_after_s
        self.heard_t = -math.inf  # host time of the newest MCU stamp heard (in order)
        self.seal_t: float | None = None  # the MCU's stamp of the cup's seal, while sealed
        # the pick whose replaceable part is gated, and the earliest seal its carry counts
        self._gated: tuple[int, float] | None = None
        # no segment faster than this x each joint's top speed goes out (a jump in the
        # setpoints: a plan from a stale position, a splice that does not meet): the
        # stream stops and the core hears where the arm rests, and plans again from there
        self.vel_limits = vel_limits
        self.rest_q: Joints | None = None  # where the MCU's setpoints last came to rest
        self.arm = arm
        self.horizon_s = horizon_s
        self.feed = feed
        self.points: deque[_Point] = deque()
        self.last: tuple[float, int, Joints] | None = None  # host t, clock, q of the last end
        self.seg_moves: OrderedDict[int, int] = OrderedDict()
        self.halted = False
        self._resuming = False
        self.rest_until = 0.0  # a controlled stop under way ends then: no segment before
        self.stats = {
            "segments": 0, "refused": 0, "stops": 0, "late_starts": 0, "quiet_stops": 0,
            "jumps_refused": 0, "chains_broken": 0, "late_refused": 0, "ran_dry": 0,
        }  # fmt: skip
        self._stop_events = 0  # motion_stopped events other than a move's end
        # the chain of segments being sent (a fresh start begins one, a stop ends it): a
        # refusal breaks the chain it belongs to, not a later one
        self._chain = 0
        self._queued_to = 0.0  # host time the last segment sent ends
        self._plan_t = 0.0  # plan time of the last setpoint consumed
        self._pending: set[asyncio.Future[Any]] = set()
        # how close the stream came to an underrun (docs/sim-arm.md, "The node's timing"):
        # the longest wait between two pumps while the MCU's queue ran a move, and the
        # least time the queue held ahead of the MCU at a pump (negative: it ran dry);
        # the least room a carry found (its start less the end of what had gone out)
        self.timing = {"pump_gap_ms_max": 0.0, "lead_ms_min": math.inf,
                       "carry_room_ms_min": math.inf}  # fmt: skip
        self._last_pump = 0.0
        self._last_end = True  # the last segment sent ends its move (END): nothing to run dry

    # ---- from the core -----------------------------------------------------------------------
    def add(
        self, move: Move, replaceable_from: float | None = None, seal_from: float = -math.inf
    ) -> bool:
        """Queue a move's setpoints; those after ``replaceable_from`` (a pick's earliest
        carry) are sent just in time; ``seal_from``: the earliest seal the core confirms a
        carry from (a seal heard before it counts as made then). False: a replacing move
        came after the MCU already has segments past its start (it cannot replace them: the
        caller stops the arm)."""
        cut_jit = math.inf if replaceable_from is None else replaceable_from
        if replaceable_from is not None:
            self._gated = (move.move_id, seal_from)
        sp = move.trajectory.setpoints()
        pts = [
            _Point(t, q, move.move_id, i == len(sp) - 1, t > cut_jit) for i, (t, q) in enumerate(sp)
        ]
        if move.replace_from is not None:
            cut = move.replace_from + 1e-9
            if self.last is not None:
                room = (cut - self.last[0]) * 1000
                self.timing["carry_room_ms_min"] = min(self.timing["carry_room_ms_min"], room)
            if self.last is not None and self.last[0] > cut:
                return False
            kept = [p for p in self.points if p.t <= cut]
            self.points = deque(kept + [p for p in pts if p.t > cut])
            self._gated = None  # replaced: what is kept of the pick goes out as any move
        else:
            self.points.extend(pts)
        return True

    def heard(self, t: float) -> None:
        """An MCU message stamped ``t`` (host time) was read: every grip change stamped
        before it has been read too."""
        self.heard_t = max(self.heard_t, t)

    def grip(self, gripped: bool, t: float) -> None:
        """The cup's seal made (its MCU stamp) or lost."""
        self.heard(t)
        self.seal_t = t if gripped else None

    def release(self, move_id: int) -> None:
        """No carry will replace this pick (the core gave it up: no seal, a seal too late,
        no carry possible): the rest of it (its ride, its lift-off) goes out as any move."""
        if self._gated is not None and self._gated[0] == move_id:
            self._gated = None

    def _jit_bound(self, p: _Point) -> float:
        """The latest setpoint of a pick's replaceable part that may go out now (with
        ``carry_after_s``): ``carry_after_s`` after the seal (or, none heard yet, after the
        newest stamp heard; never before ``seal_from``), less JIT_MARGIN_S."""
        assert self.carry_after_s is not None
        if self._gated is None or self._gated[0] != p.move_id:
            return math.inf  # released: nothing will replace it
        ref = self.seal_t if self.seal_t is not None else self.heard_t
        return max(self._gated[1], ref) + self.carry_after_s - JIT_MARGIN_S

    def stop_now(self, cause: str, *, halted_if_quiet: bool = False) -> None:
        """The safety path: stop_motion written before this returns; nothing more is sent
        until the MCU's stop has run (``rest_until``: its stop_ms from now at the latest,
        the stop's own event says when exactly). ``halted_if_quiet``: a stop the core did
        not ask for that finds the arm at rest is told to it as ``MotionHalted`` (its move
        never ran), not as a ``JointState`` it would ignore while its move is under way."""
        self.points.clear()
        self.last = None
        self._chain += 1  # its segments' refusals no longer matter
        self.stats["stops"] += 1
        self.rest_until = max(self.rest_until, time.monotonic() + self.arm.stop_ms / 1000)
        try:
            fut = self.link._request_future("stop_motion", {}, urgent=True)
            self.link._flush()
            self._watch(fut, "stop_motion")
        except McuError as exc:  # the link is down: the MCU's watchdog stops the arm
            log.error("stop_motion (%s) not sent: %s; the MCU watchdog is the backstop", cause, exc)
            return
        seen = self._stop_events
        fut.add_done_callback(
            lambda f: self._after_stop(f, seen, cause if halted_if_quiet else None)
        )

    def _after_stop(self, fut: asyncio.Future[Any], seen: int, halted: str | None = None) -> None:
        """A stop_motion that found the arm at rest (its queue empty: between moves, or a
        pick not yet streamed) ends with the MCU's ok and no motion_stopped; the core, which
        waits for the stop's end before it plans again, is then told where the arm rests
        (a core left waiting for an event that never comes picks nothing more)."""
        if fut.cancelled() or fut.exception() is not None:
            return

        async def check() -> None:
            await asyncio.sleep(STOP_SILENT_S)
            if self._stop_events != seen:
                return  # the stop's motion_stopped came: the core heard of it
            try:
                st = await self.arm.state()
            except McuError:
                return
            if st.state in (m.MOTION_IDLE, m.MOTION_HALTED) and self._stop_events == seen:
                self.stats["quiet_stops"] += 1
                now = time.monotonic()
                self.rest_until = min(self.rest_until, now)  # no stop ran: nothing to wait for
                q = from_protocol(st.positions)
                self.rest_q = q
                self.feed(JointState(q, now) if halted is None else MotionHalted(halted, q, now))

        with contextlib.suppress(RuntimeError):  # no loop: shutting down
            asyncio.get_running_loop().create_task(check())

    def resume(self) -> None:
        """Leave the MCU's halted state (after an underrun, or when the safety machine runs
        again after a light curtain)."""
        if not self.halted or self._resuming:
            return
        if time.monotonic() < self.rest_until + 0.01:
            return  # the MCU refuses it while its stop runs: the next tick tries again
        self._resuming = True

        def done(f: asyncio.Future[Any]) -> None:
            self._resuming = False
            if not f.cancelled() and f.exception() is None:
                self.halted = False

        try:
            fut = self.link.request_nowait("resume_motion")
        except McuError as exc:
            self._resuming = False
            log.warning("resume_motion not sent: %s", exc)
            return
        fut.add_done_callback(done)
        self._watch(fut, "resume_motion")

    # ---- streaming -------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(PUMP_S)
            if self.link.state.up and self.link.clock.ready:
                self.pump(time.monotonic())

    def pump(self, now: float) -> None:
        """Send every waiting setpoint whose segment starts within the horizon; nothing while
        a stop runs on the MCU (it refuses segments until the arm is at rest)."""
        prev, self._last_pump = self._last_pump, now
        last = self.last
        if last is not None and not self._last_end:  # a move runs on the MCU's queue
            t = self.timing
            t["lead_ms_min"] = min(t["lead_ms_min"], (last[0] - now) * 1000)
            if prev:
                t["pump_gap_ms_max"] = max(t["pump_gap_ms_max"], (now - prev) * 1000)
            if last[0] < now:
                self._ran_dry(now)
                return
        if now < self.rest_until + STOP_END_MARGIN_S:
            return
        while self.points and not self.halted:
            p = self.points[0]
            start_t = p.t if self.last is None else self.last[0]
            if start_t > now + BULK_HORIZON_S:
                return
            if p.jit and (
                p.t > self._jit_bound(p)
                if self.carry_after_s is not None
                else start_t > now + self.horizon_s
            ):
                return
            self.points.popleft()
            if self.last is None or self.last[0] < now:  # the MCU's queue is empty: start anew
                at = max(p.t, now + START_AHEAD_S, self.rest_until + START_AHEAD_S)
                if at > p.t:
                    self.stats["late_starts"] += 1
                if at > p.t + MAX_LATE_START_S:
                    self._too_late(p, at)
                    return
                log.debug(
                    "fresh start at %.3f (now %.3f, point %.3f), %d waiting",
                    at,
                    now,
                    p.t,
                    len(self.points),
                )
                # the MCU's queue starts from where its setpoints rest, not from the plan's
                # first point: a plan from a stale position shows as a jump below
                start_q = p.q if self.rest_q is None else self.rest_q
                self.last = (at, self.arm.clock_at(at), start_q)
                self._last_end = True  # nothing queued yet: nothing to run dry
                self._chain += 1
                self._plan_t = p.t
                continue
            if p.t <= self.last[0] + 1e-6:
                continue
            end_clock = self.arm.clock_at(p.t)
            duration = end_clock - self.last[1]
            if duration < 1:
                continue
            end = p.last and not self.points
            # the plan's own pace (a late start squeezes the first segment: timing, not a
            # jump in the plan), from where the MCU's setpoints are
            ratio = self._speed_ratio(self.last[2], p.q, p.t - self._plan_t)
            self._plan_t = p.t
            if ratio > MAX_SPEED_RATIO:
                self._jump(self.last[2], p.q, ratio)
                return
            seg = self.arm.new_seg()
            self.seg_moves[seg] = p.move_id
            while len(self.seg_moves) > SEG_MEMORY:
                self.seg_moves.popitem(last=False)
            fut = self.arm.queue_segment_nowait(
                self.last[1], duration, to_protocol(p.q), end=end, seg=seg
            )
            self._watch(fut, "queue_joint_segment", self._chain)
            self.stats["segments"] += 1
            self._last_end = end
            self.last = (p.t, end_clock, p.q)
            self._queued_to = p.t

    def _ran_dry(self, now: float) -> None:
        """The MCU's queue ran out mid-move (this host stalled longer than the queue's
        lead): the MCU is stopping by itself (an underrun) and will say where the arm rests.
        Nothing goes out until then (the MCU refuses what comes after a dry queue: a
        contiguous segment is "halted", a fresh one would start from where it stops, not
        from the stream's last known rest). Before 2026-12-02 17:50 the stream took the empty
        queue for a fresh start from its last known rest (the previous move's end, stale by
        a whole move): the core's next plan was refused as a jump from there and the core
        told the arm was there (lowprio run of 17:26: 2 jumps refused, 3 late starts, a box
        dragged on the belt)."""
        assert self.last is not None
        self.stats["ran_dry"] += 1
        log.warning(
            "the MCU's queue ran dry %.0f ms ago mid-move: its stop tells where the arm rests",
            (now - self.last[0]) * 1000,
        )
        self.points.clear()
        self.last = None
        self._last_end = True
        self._chain += 1  # its segments' refusals no longer matter
        self.rest_until = max(self.rest_until, now + self.arm.stop_ms / 1000)

    def timing_figures(self) -> dict[str, float | None]:
        """``timing`` rounded for the health file (None: never measured)."""
        return {k: None if math.isinf(v) else round(v, 1) for k, v in self.timing.items()}

    def _too_late(self, p: _Point, at: float) -> None:
        """A move whose MCU queue can only start ``at``, past its plan's time by more than
        MAX_LATE_START_S (planned while a stop ran, or a stalled host): the segments after
        ``at`` would be chained from where the arm rests, skipping the plan's points before
        ``at`` (the move squeezed into one segment: a jump). None of it goes out; the core
        hears where the arm rests (``MotionHalted``) and plans again from there, on time."""
        self.stats["late_refused"] += 1
        late_ms = (at - p.t) * 1000
        log.warning(
            "move %d would start %.0f ms late: not sent, the core plans again", p.move_id, late_ms
        )
        self.points.clear()
        self.last = None
        self._chain += 1
        q = self.rest_q if self.rest_q is not None else p.q
        self.feed(
            MotionHalted(f"move would start {late_ms:.0f} ms late: re-plan", q, time.monotonic())
        )

    def _speed_ratio(self, a: Joints, b: Joints, dt: float) -> float:
        """The fastest joint's speed from ``a`` to ``b`` in ``dt`` s over its top speed."""
        if self.vel_limits is None:
            return 0.0
        return max(
            abs(y - x) / max(dt, 1e-6) / v for x, y, v in zip(a, b, self.vel_limits, strict=True)
        )

    def _jump(self, a: Joints, b: Joints, ratio: float) -> None:
        """A segment over the joints' speed: nothing of it goes out; the arm stops where it
        is and the core plans again from there."""
        self.stats["jumps_refused"] += 1
        if self.stats["jumps_refused"] <= 20:
            log.warning(
                "segment refused: %.1f x a joint's top speed (from %s to %s); stopping the "
                "stream, the core plans again from where the arm rests",
                ratio,
                tuple(round(x, 2) for x in a),
                tuple(round(x, 2) for x in b),
            )
        was_moving = self._queued_to > time.monotonic()  # segments on the MCU still to run
        self.points.clear()
        self.last = None
        self._chain += 1  # its segments' refusals no longer matter
        if was_moving:
            self.stop_now("a segment over the joints' speed")  # its end tells the core
            return
        q = self.rest_q if self.rest_q is not None else a
        self.feed(MotionHalted("segment over the joints' speed: re-plan", q, time.monotonic()))

    def _watch(self, fut: asyncio.Future[Any], what: str, chain: int | None = None) -> None:
        self._pending.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self.stats["refused"] += 1
                if getattr(exc, "code", None) == m.ERR_HALTED and not self.halted:
                    self._halted_behind_our_back(str(exc))
                elif chain is not None and chain == self._chain and not self.halted:
                    self._chain_broken(str(exc))
                if self.stats["refused"] <= 20 or self.stats["refused"] % 100 == 0:
                    log.warning("%s: %s", what, exc)

        fut.add_done_callback(done)

    def _chain_broken(self, why: str) -> None:
        """A segment the MCU refused (a stop under way, a start in the past, ...) leaves a
        gap in the move: the MCU would chain the next segment it accepts from where its
        queue rests, not from the refused segment's end. On 2026-12-02 a held carry's first
        segments were refused while a stop ran and its later ones accepted from rest: the
        quill's setpoint jumped at 10,000-20,000 mm/s and the parcel peeled off the cup.
        The rest of the move is not sent; ``stop_motion`` stops whatever of it the MCU took
        after the refused one (commands in flight), and its end (or the arm's state, when
        nothing moved) tells the core where the arm rests; it plans again from there."""
        self.stats["chains_broken"] += 1
        log.warning("segment refused (%s): the move's rest is dropped, the arm stopped", why)
        self.stop_now(f"segment refused: {why}", halted_if_quiet=True)

    def _halted_behind_our_back(self, why: str) -> None:
        """The MCU refused a segment because it is halted (its stop event was lost, or a
        resume failed): stop streaming, and tell the core where the arm rests."""
        self.halted = True
        self.points.clear()
        self.last = None
        self._chain += 1  # its segments' refusals no longer matter

        async def tell() -> None:
            try:
                st = await self.arm.state()
            except McuError:
                return
            q = from_protocol(st.positions)
            # where the MCU's setpoints rest is where the next move leaves from: a stale rest
            # (home, from before the move the MCU halted in) made the jump check refuse the
            # core's plans from where the arm really was, and the core replan from home: a
            # box held on the belt was never carried and the core's release let it go there
            self.rest_q = q
            self.feed(MotionHalted(f"MCU halted: {why}", q, time.monotonic()))

        asyncio.get_running_loop().create_task(tell())

    # ---- from the MCU ------------------------------------------------------------------------
    def on_event(self, msg: m.Message) -> None:
        if msg.name != "motion_stopped":
            return
        q = from_protocol(tuple(msg[n] for n in m.JOINT_NAMES))
        t = (
            self.link.clock.host_time_at(msg["clock"])
            if self.link.clock.ready
            else (time.monotonic())
        )
        reason = msg["reason"]
        log.debug(
            "motion_stopped reason %d seg %d at %.3f; last %s, %d waiting",
            reason,
            msg["seg"],
            t,
            self.last and round(self.last[0], 3),
            len(self.points),
        )
        self.rest_q = q
        if reason == m.STOP_END_OF_MOVE:
            move_id = self.seg_moves.get(msg["seg"])
            self.last = None
            self._chain += 1  # its segments' refusals no longer matter
            if move_id is not None:
                self.feed(MotionEnded(move_id, q, t))
            return
        self._stop_events += 1
        self.points.clear()
        self.last = None
        self._chain += 1  # its segments' refusals no longer matter
        self.rest_until = t  # the MCU refuses segments until the arm is at rest
        if reason in (m.STOP_UNDERRUN, m.STOP_SAFETY, m.STOP_WATCHDOG):
            self.halted = True
        name = m.STOP_NAMES[reason] if reason < len(m.STOP_NAMES) else f"reason {reason}"
        self.feed(MotionHalted(name, q, t))
