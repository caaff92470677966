"""The sorting arm on the node runtime: the arm core (edge/arm/controller.py) between its
drivers (docs/runtime.md, docs/sim-arm.md).

* the MCU (``McuLink`` + ``ArmMotion``): the belt's encoder reports (the core's ``Tick``),
  the e-stop, light-curtain and destination-sensor inputs, the vacuum's grip changes, and
  the core's moves streamed as timed joint segments (``adapter_mcu.MotionStream``);
* the belt camera (``adapter_camera.ArmCamera``): the vision pipeline's parcels, placed on
  the belt at their frame's encoder count (``ParcelSeen``), and a ``CameraFrame`` per frame
  so that a silent camera is noticed (nothing is picked blind);
* the brain over the fleet link, as the diverter asks it: a ``route_request`` event, the
  brain's ``route`` command back; past ``brain_deadline_ms`` the core's routing table
  decides;
* every parcel's end as a ``pick`` event with its story (the core's ``PickRecord``), alarms
  as ``alarm`` events.

Safety first (the runtime's contract): a safety decision reaches the arm through
``act_on_safety``, which stops the motion on the wire (``stop_motion`` ahead of every queued
command) before it returns; records, alarms and the core's further safety inputs are handed
to the loop to run after it. The core's own stops (e-stop input, light curtain) are acted
on the same way: ``StopMotion`` first, then the safety machine is told.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from edge.arm.adapter_camera import ArmCamera, BeltParcel
from edge.arm.adapter_mcu import MotionStream, from_protocol
from edge.arm.config import ArmConfig
from edge.arm.controller import SEAL_EARLY_S, ArmCore
from edge.arm.events import (
    Alarm,
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
    Move,
    ParcelSeen,
    PlaceSensor,
    PublishPick,
    SafetyInput,
    StopMotion,
    Suction,
    Tick,
)
from edge.arm.tracking import camera_to_belt
from edge.runtime.machine import Machine, MachineContext, MachineError
from edge.safety.config import SafetyConfig
from edge.safety.machine import (
    AllowDiverting,
    CancelAllStrokes,
    SafetyAction,
    StartBelt,
    State,
    StopBelt,
    Transition,
)
from firmware_bridge.mcu import McuError, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.link import StateChange as McuStateChange
from firmware_bridge.mcu.motion import ArmMotion

log = logging.getLogger("wolfpack.arm")

ENCODER_REPORT_MS = 10
RECORD_EVENT = "pick"
BRAIN_PREFIX = "chute-"  # the brain names destinations by number: answer 2 -> 'chute-2'
# the stream's fixed horizon for what a carry may replace, lead_ms less this, is only its
# fallback: the node gives it the seal-gated bound (carry_after_s, adapter_mcu.py), which
# counts from the seal's MCU stamp instead of trusting the core to answer within 50 ms
HORIZON_MARGIN_S = 0.05
GRIP_WINDOW_OPENS_S = 0.045  # the core takes a seal from 50 ms before the planned contact
# the loop thread (the motion stream, the MCU link) runs this many real-time priority steps
# above the node's other threads, where the node runs real-time (a board's systemd unit:
# CPUSchedulingPolicy=fifo; `wolfpack sim` gives the node FIFO 3): among equal FIFO
# priorities nothing preempts, so the loop waited for the node's own planner, the broker
# and the brain (pump gaps of 43-146 ms in the lock runs of 17:30-18:07)
MOTION_RT_BOOST = 2


def boost_this_thread(steps: int = MOTION_RT_BOOST) -> int | None:
    """Raise the calling thread's real-time priority by ``steps`` where it runs real-time
    (FIFO or RR) and the OS allows it; the priority it had (None: not real-time, or
    refused: it runs as it is)."""
    try:
        policy = os.sched_getscheduler(0)
        if policy not in (os.SCHED_FIFO, os.SCHED_RR):
            return None
        base = os.sched_getparam(0).sched_priority
        top = min(base + steps, os.sched_get_priority_max(policy))
        os.sched_setscheduler(0, policy, os.sched_param(top))  # 0: this thread (Linux)
        return base
    except (OSError, AttributeError) as exc:
        log.info("the motion thread keeps its priority: %s", exc)
        return None


def at_priority(base: int | None) -> None:
    """A thread started from the boosted loop (it inherits the boost) back to ``base``."""
    if base is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.sched_getscheduler(0), os.sched_param(base))


# the objects alive once the node is up (modules, the vision pipeline, configs) are moved
# out of the collector's sight this long after open (the camera's pipeline loads meanwhile)
GC_FREEZE_AFTER_S = 5.0


class GcWatch:
    """Keeps the garbage collector's pauses off the motion stream, and measures them.

    A full collection holds the GIL for its whole length, stopping the loop that streams the
    MCU's segments (a pick's part a carry may replace goes out only as far as the seal
    allows: ~130 ms after it at most, docs/sim-arm.md "The node's timing"). Measured
    2026-12-02 on this 2-core machine: a full collection of the node's ~57,000 objects after
    its imports took 55-83 ms (nice 19, load ~8); after ``gc.freeze()`` ~0 ms. So the objects
    alive at start (modules, the vision pipeline, the config) are frozen once the node is
    up: collections then scan only what the node made since (parcels, plans, records)."""

    def __init__(self) -> None:
        self.ms_max = 0.0
        self.slow = 0  # collections over 10 ms
        self.frozen = 0
        self._t0 = 0.0
        self._ours = False  # our own collection before a freeze: not a pause to count

    def install(self) -> None:
        gc.callbacks.append(self._callback)
        self.freeze()

    def freeze(self) -> None:
        self._ours = True
        try:
            gc.collect()  # what is garbage now is not kept for ever
        finally:
            self._ours = False
        gc.freeze()
        self.frozen = gc.get_freeze_count()

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        if self._ours:
            return
        ms = (time.perf_counter() - self._t0) * 1000
        self.ms_max = max(self.ms_max, ms)
        if ms > 10:
            self.slow += 1

    def figures(self) -> dict[str, float | int]:
        return {"gc_ms_max": round(self.ms_max, 1), "gc_slow_10ms": self.slow,
                "gc_frozen": self.frozen}  # fmt: skip


class ArmMachine(Machine):
    kind = "arm"
    label = "arm"

    def __init__(self, board: Any, ctx: MachineContext) -> None:
        cfg: ArmConfig | None = getattr(board, "arm", None)
        if cfg is None:
            raise MachineError("this board config has no arm section; an arm node needs one")
        mcu = next((x for x in board.mcus if x.name == cfg.mcu.name), None)
        if mcu is None:
            names = ", ".join(x.name for x in board.mcus) or "none"
            raise MachineError(f"arm.mcu.name: no MCU named {cfg.mcu.name!r} in mcus ({names})")
        self.board = board
        self.cfg = cfg
        self.ctx = ctx
        self.mcu_cfg = mcu
        self.core = ArmCore(cfg)
        self.counters: Counter[str] = Counter()
        self.link: McuLink | None = None
        self.arm: ArmMotion | None = None
        self.stream: MotionStream | None = None
        self.camera: ArmCamera | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._u0: dict[int, float] = {}  # parcel -> belt coordinate at count 0 (its record)
        self._dest_by_pin = {
            d.sensor_input: d.id for d in cfg.destinations if d.sensor_input is not None
        }
        self._inputs: dict[int, int] = {}
        self.core_ms_max = 0.0  # the longest the core took on one fact
        self.tick_age_ms_max = 0.0  # the oldest encoder tick the core took (its MCU stamp)
        self._rt_base: int | None = None  # the node's real-time priority, when boosted
        # the planner's thread starts from the boosted loop: it goes back to the node's
        self._core_thread = concurrent.futures.ThreadPoolExecutor(
            1, "arm-core", initializer=lambda: at_priority(self._rt_base)
        )
        self._seq = 0  # facts handed to the core
        self._barrier = 0  # moves decided on facts before this one come after a stop: dropped
        self._cuts: dict[int, float] = {}  # pick move -> where a carry may replace it from
        self._tick_waiting: Tick | None = None  # the newest encoder tick not yet in the core
        self._contacts: dict[int, float] = {}  # pick move -> its planned contact time
        self._gated_pick: int | None = None  # (core thread) the pick a carry may replace
        self._grip: tuple[bool, float] = (False, 0.0)  # the vacuum's last grip change
        self._setup_done = False  # the arm's setup went out once (the link re-sends it)
        self.gc = GcWatch()

    # ---- what the safety machine watches -------------------------------------------------------
    @property
    def safety_config(self) -> SafetyConfig:
        return self.cfg.safety

    @property
    def devices(self) -> frozenset[str]:
        devices = {"mcu"}
        if self.board.vision is not None and self.board.vision.source is not None:
            devices.add("camera")
        return frozenset(devices)

    # ---- life ----------------------------------------------------------------------------------
    async def open(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._rt_base = boost_this_thread()
        if self._rt_base is not None:
            log.info("motion thread at real-time priority %d (the node's: %d)",
                     self._rt_base + MOTION_RT_BOOST, self._rt_base)  # fmt: skip
            # the loop's helper threads (asyncio.to_thread: telemetry samples, file writes)
            # start from this thread and would inherit the boost: they run at the node's
            self.loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="arm-io", initializer=at_priority, initargs=(self._rt_base,)
                )
            )
        self.gc.install()
        self.loop.call_later(GC_FREEZE_AFTER_S, self.gc.freeze)
        c = self.mcu_cfg
        self.link = McuLink(
            c.port, baud=c.baud, watchdog_ms=c.watchdog_ms, heartbeat_ms=c.heartbeat_ms, name=c.name
        )
        safety = self.cfg.safety
        stop_ms = max(20, int(min(safety.curtain_stop_ms, safety.estop_stop_ms) * 0.6))
        self.arm = ArmMotion(
            self.link,
            4,
            stop_ms=stop_ms,
            safety_pin=self.cfg.mcu.curtain_input,
            safety_level=1,
            grip_pa=int(self.cfg.suction.grip_kpa * 1000),
        )
        horizon = max(0.005, self.cfg.tracking.lead_ms / 1000 - HORIZON_MARGIN_S)
        vel = tuple(j.vel for j in self.cfg.joints.all())
        # a carry starts grip_confirm_ms + lead_ms after the seal at the earliest: the
        # stream sends a pick's replaceable part up to there (the seal-gated bound)
        carry_after = (self.cfg.suction.grip_confirm_ms + self.cfg.tracking.lead_ms) / 1000
        self.stream = MotionStream(
            self.link,
            self.arm,
            horizon,
            self.feed,
            vel,  # type: ignore[arg-type]
            carry_after_s=carry_after,
        )
        self.link.on_event(self._on_mcu_event)
        self.link.on_state(self._on_mcu_state)
        self.host.supervisor.start("mcu", self._mcu_task)
        self.host.supervisor.start("motion", self.stream.run)
        if "camera" in self.devices:
            vision = self.board.vision
            self.camera = ArmCamera(
                vision, self._on_parcel, self._camera_state, frame=self._on_frame
            )
            self.host.supervisor.start("camera", self.camera.run)

    async def _mcu_task(self) -> None:
        assert self.link is not None and self.arm is not None
        await self.link.connect()
        await self.arm.setup()  # refuses firmware without the arm's commands, by name
        await self.link.set_encoder_report(self.cfg.belt.encoder, ENCODER_REPORT_MS)
        state = await self.arm.state()
        inputs = await self.link.read_inputs()
        now = time.monotonic()
        self.feed(JointState(from_protocol(state.positions), now))
        for pin in (self.cfg.mcu.estop_input, self.cfg.mcu.curtain_input):
            self._input(pin, inputs >> pin & 1, now)
        if self.stream is not None:
            self.stream.rest_q = from_protocol(state.positions)
            if state.state == m.MOTION_HALTED:
                self.stream.halted = True
        self._setup_done = True
        if "mcu" not in self.host.safety.up:
            self.host.apply_safety(self.host.safety.device_up("mcu", now))
        await asyncio.Event().wait()  # the link reconnects by itself; state changes tell

    async def _mcu_back(self) -> None:
        """After a replug or an MCU reset: where the arm is, the inputs, then the MCU up."""
        assert self.link is not None and self.arm is not None
        try:
            state = await self.arm.state()
            inputs = await self.link.read_inputs()
        except McuError as exc:
            log.warning("the MCU came back but did not answer: %s", exc)
            return
        now = time.monotonic()
        if self.stream is not None:
            self.stream.points.clear()
            self.stream.last = None
            self.stream.halted = state.state == m.MOTION_HALTED
            self.stream.rest_q = from_protocol(state.positions)
        self.feed(JointState(from_protocol(state.positions), now))
        for pin in (self.cfg.mcu.estop_input, self.cfg.mcu.curtain_input):
            self._input(pin, inputs >> pin & 1, now)
        if "mcu" not in self.host.safety.up:
            self.host.apply_safety(self.host.safety.device_up("mcu", now))

    async def make_safe(self) -> None:
        if self.link is None or not self.link.state.up:
            return
        try:
            await asyncio.wait_for(self.link.request("stop_motion"), 1.0)
        except (McuError, TimeoutError) as exc:
            log.warning(
                "shutdown: stop_motion not confirmed (%s); the MCU watchdog stops the arm", exc
            )

    async def close(self) -> None:
        self.gc.remove()
        self._core_thread.shutdown(wait=False, cancel_futures=True)
        if self.link is not None:
            await self.link.close()

    # ---- facts into the core --------------------------------------------------------------------
    def feed(self, fact: ArmFact) -> None:
        """One fact into the core (in its own thread: planning a pick can take longer than
        the motion stream may wait); its actions come back to the loop in order. Encoder
        ticks waiting for the core are merged: only the latest is news."""
        if isinstance(fact, Tick):
            waiting = self._tick_waiting is not None
            self._tick_waiting = fact
            if waiting:
                self.counters["ticks_merged"] += 1
                return

            def latest() -> list[ArmAction]:
                tick, self._tick_waiting = self._tick_waiting, None
                if tick is None:
                    return []
                # how old the belt's news is when the core takes it (the MCU stamped it):
                # a carry starts lead_ms after its confirming tick's stamp
                age = (time.monotonic() - tick.t) * 1000
                self.tick_age_ms_max = max(self.tick_age_ms_max, age)
                if age > 50:
                    self.counters["tick_age_over_50ms"] += 1
                return self.core.handle(tick)

            self._submit(latest, None)
            return
        self._submit(lambda: self.core.handle(fact), fact)

    def _submit(self, call: Any, fact: ArmFact | None, deferred: bool = False) -> None:
        self._seq += 1
        seq = self._seq
        loop = self.loop
        try:
            fut = self._core_thread.submit(self._in_core, call, fact)
        except RuntimeError:  # shutting down: the core takes nothing more
            return

        def back(f: concurrent.futures.Future[Any]) -> None:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._deliver, seq, f, deferred)

        fut.add_done_callback(back)

    def _in_core(
        self, call: Any, fact: ArmFact | None
    ) -> tuple[list[ArmAction], dict[int, float], list[int]]:
        """In the core's thread: the core's answer, where a carry may replace each pick, and
        the picks no carry will replace any more (the core gave them up)."""
        t0 = time.perf_counter()
        if isinstance(fact, ParcelSeen) and fact.track_id not in self.core.by_track:
            self._remember(fact, self.core._next_pid)  # the id the core gives a new track
        actions = list(call())
        took = (time.perf_counter() - t0) * 1000
        self.core_ms_max = max(self.core_ms_max, took)
        if took > 50:
            self.counters["core_slow_50ms"] += 1
        cuts = {
            a.move_id: c
            for a in actions
            if isinstance(a, Move) and (c := self._replaceable_from(a)) is not None
        }
        pk = self.core.pick
        for a in actions:  # when each pick's contact window opens (the grip is read then)
            if isinstance(a, Move) and pk is not None and pk.move_id == a.move_id:
                self._contacts[a.move_id] = pk.plan.t_contact
        released = []
        if self._gated_pick is not None and (pk is None or pk.move_id != self._gated_pick):
            released.append(self._gated_pick)  # carried, failed or stopped: nothing to wait for
            self._gated_pick = None
        if cuts and pk is not None and pk.move_id in cuts:
            self._gated_pick = pk.move_id
        return actions, cuts, released

    def _deliver(self, seq: int, fut: concurrent.futures.Future[Any], deferred: bool) -> None:
        if fut.cancelled():
            return  # shutting down: the core's queue was dropped (close)
        try:
            actions, cuts, released = fut.result()
        except Exception:  # a core bug must not kill the loop: counted, logged, arm stopped
            self.counters["core_errors"] += 1
            log.exception("the arm core failed")
            if self.stream is not None:
                self.stream.stop_now("arm core error")
            return
        if seq < self._barrier:  # decided before a safety stop: no motion from it
            actions = [
                a
                for a in actions
                if not isinstance(a, Move) and not (isinstance(a, Suction) and a.on)
            ]
        self._cuts.update(cuts)
        self._act(actions, deferred=deferred)
        if self.stream is not None:
            for move_id in released:
                self.stream.release(move_id)

    def _remember(self, f: ParcelSeen, pid: int) -> None:
        """The parcel's belt coordinate at encoder count 0, for its record (``belt_mm0``:
        what joins it to the simulator's truth, and a technician's trace on a real belt)."""
        b = self.cfg.belt
        u, _ = camera_to_belt(self.cfg.camera, b.centre_y_mm, b.sign, f.along_mm, f.across_mm)
        self._u0[pid] = u - (f.count + self.cfg.camera.count_offset) / b.counts_per_mm

    def _act(self, actions: Sequence[ArmAction], *, deferred: bool) -> None:
        """Device actions now; with ``deferred`` (inside ``act_on_safety``) the reports and
        safety inputs later on the loop, after the runtime's own acting pass."""
        later: list[ArmAction] = []
        for a in actions:
            if isinstance(a, StopMotion):
                assert self.stream is not None
                self.stream.stop_now(a.cause)
            elif isinstance(a, Move):
                assert self.stream is not None
                contact = self._contacts.pop(a.move_id, None)
                if contact is not None and self.loop is not None:
                    self.loop.call_at(contact - GRIP_WINDOW_OPENS_S, self._grip_level, a.move_id)
                seal_from = -math.inf if contact is None else contact - SEAL_EARLY_S
                if not self.stream.add(a, self._cuts.pop(a.move_id, None), seal_from):
                    self.counters["carry_too_late"] += 1
                    self.stream.stop_now(
                        f"{a.kind} move planned too late to replace the move under way"
                    )
            elif isinstance(a, Suction):
                self._suction(a.on, a.cause)
            elif deferred:
                later.append(a)
            else:
                self._report(a)
        if later and self.loop is not None:
            self.loop.call_soon(lambda: [self._report(a) for a in later])

    def _grip_level(self, move_id: int) -> None:
        """The vacuum's grip level as the pick's contact window opens. The MCU reports grip
        *changes*; a cup that sealed on a face a little higher than planned (the last
        millimetres of the descent) sealed before the core looks for it, and would
        otherwise never be reported again while it holds."""
        gripped, kpa = self._grip
        if gripped:
            self.counters["grip_level_refed"] += 1
            self.feed(Grip(True, kpa, time.monotonic()))

    def _replaceable_from(self, move: Move) -> float | None:
        """The earliest instant a carry may replace a pick move from: a grip accepted from
        50 ms before contact, confirmed after grip_confirm_ms, the carry lead_ms later."""
        pk = self.core.pick
        if move.kind != "pick" or pk is None or pk.move_id != move.move_id:
            return None
        cfg = self.cfg
        return (
            pk.plan.t_contact
            - 0.05
            + cfg.suction.grip_confirm_ms / 1000
            + cfg.tracking.lead_ms / 1000
            - 0.02
        )

    def _report(self, a: ArmAction) -> None:
        now = time.monotonic()
        if isinstance(a, SafetyInput):
            s = self.host.safety
            if a.kind == "estop":
                self.host.apply_safety(s.estop(a.value, a.t))
            elif a.kind == "fault":
                self.host.apply_safety(s.fault(a.cause, a.t))
            else:
                self.host.apply_safety(s.belt(a.value, a.t))
        elif isinstance(a, AskBrain):
            fleet = self.host.fleet
            if fleet is None:
                self.feed(BrainUnavailable(a.parcel_id, "no fleet link", now))
            else:
                self.counters["brain_asks"] += 1
                fleet.ask(a, now)  # type: ignore[arg-type]  # the same fields as the cell's
        elif isinstance(a, PublishPick):
            data = a.record.to_json()
            u0 = self._u0.pop(a.record.parcel_id, None)
            if u0 is not None:
                data["belt_mm0"] = round(u0, 1)
            self.counters[f"pick_{a.record.outcome}"] += 1
            self.host.event(RECORD_EVENT, data)
        elif isinstance(a, Alarm):
            self.counters[f"alarm_{a.kind}"] += 1
            self.host.event("alarm", {"kind": a.kind, "detail": a.detail})

    def _suction(self, on: bool, cause: str) -> None:
        if self.link is None:
            return
        try:
            fut = self.link.request_nowait("set_suction", on=int(on))
        except McuError as exc:
            log.warning("suction %s (%s) not sent: %s", "on" if on else "off", cause, exc)
            return
        fut.add_done_callback(
            lambda f: (
                None
                if f.cancelled() or f.exception() is None
                else log.warning("suction %s: %s", cause, f.exception())
            )
        )

    # ---- the safety path -----------------------------------------------------------------------
    def act_on_safety(self, actions: Sequence[SafetyAction]) -> None:
        """The arm stops on the wire before this returns (the core may be busy planning);
        the core hears of it next, and nothing it decided before the stop moves the arm."""
        now = time.monotonic()
        stopping = any(isinstance(a, StopBelt | CancelAllStrokes) for a in actions)
        if stopping:
            self._barrier = self._seq + 1
            if self.stream is not None:
                self.stream.stop_now("safety stop")
        running = any(
            isinstance(a, StartBelt | AllowDiverting)
            or (isinstance(a, Transition) and a.to_state is State.RUNNING)
            for a in actions
        )
        if running and self.stream is not None:
            self.stream.resume()
        acts = list(actions)
        self._submit(lambda: self.core.on_safety(acts, now), None, deferred=True)

    def tick(self, now: float) -> None:
        # an underrun or a watchdog stop while running is the node's own lateness, not a
        # safety event: leave the halted state so the core's next move can go
        st = self.stream
        if st is not None and st.halted and self.host.safety.state is State.RUNNING:
            if not self.core.curtain and not self.core.estop:
                st.resume()

    # ---- the MCU -----------------------------------------------------------------------------
    def _on_mcu_event(self, msg: m.Message) -> None:
        name = msg.name
        if name == "encoder_report":
            t = self._host_t(msg["clock"])
            if self.stream is not None:
                self.stream.heard(t)
            self.feed(Tick(msg["count"], t))
        elif name == "input_edge":
            self._input(msg["pin"], msg["value"], self._host_t(msg["clock"]))
        elif name == "grip_changed":
            self._grip = (bool(msg["gripped"]), msg["pressure_pa"] / 1000)
            log.debug(
                "grip_changed %s %.0f Pa at %.3f (now %.3f)",
                msg["gripped"],
                msg["pressure_pa"],
                self._host_t(msg["clock"]),
                time.monotonic(),
            )
            t = self._host_t(msg["clock"])
            if self.stream is not None:
                self.stream.grip(bool(msg["gripped"]), t)
            self.feed(Grip(bool(msg["gripped"]), msg["pressure_pa"] / 1000, t))
        elif name == "motion_stopped" and self.stream is not None:
            self.stream.on_event(msg)

    def _input(self, pin: int, value: int, t: float) -> None:
        before = self._inputs.get(pin)
        self._inputs[pin] = value
        mcu = self.cfg.mcu
        if pin == mcu.estop_input:
            if before != value:
                self.feed(Estop(bool(value), t))
        elif pin == mcu.curtain_input:
            if before != value:
                self.feed(Curtain(bool(value), t))
        elif pin in self._dest_by_pin and value and before != value:
            self.feed(PlaceSensor(self._dest_by_pin[pin], t))

    def _on_mcu_state(self, change: McuStateChange) -> None:
        if self.host.closing:
            return
        now = time.monotonic()
        if change.state.up:
            if self._setup_done and "mcu" not in self.host.safety.up:
                self.host.spawn(self._mcu_back())  # a replug: the link sent the setup again
            return
        if self.stream is not None:
            self.stream.points.clear()
            self.stream.last = None
        if "mcu" in self.host.safety.up:
            self.host.apply_safety(self.host.safety.device_lost("mcu", change.reason, now))

    def _host_t(self, clock: int) -> float:
        assert self.link is not None
        return self.link.clock.host_time_at(clock) if self.link.clock.ready else time.monotonic()

    # ---- the camera ----------------------------------------------------------------------------
    def _on_parcel(self, p: BeltParcel) -> None:
        self.counters["camera_parcels"] += 1
        self.feed(
            ParcelSeen(
                p.track_id,
                p.encoder_count + self.cfg.camera.count_offset,
                p.captured_at,
                p.x_mm,
                p.y_mm,
                p.length_mm,
                p.width_mm,
                p.yaw_deg,
                None,
                p.class_name,
                p.label,
                p.final,
            )
        )

    def _on_frame(self, count: int, t: float) -> None:
        self.counters["camera_frames"] += 1
        self.feed(CameraFrame(count + self.cfg.camera.count_offset, t))

    def _camera_state(self, up: bool, why: str) -> None:
        if self.host.closing:
            return
        now = time.monotonic()
        s = self.host.safety
        if up and "camera" not in s.up:
            self.host.apply_safety(s.device_up("camera", now))
        elif not up and "camera" in s.up:
            self.host.apply_safety(s.device_lost("camera", why, now))

    # ---- the brain -----------------------------------------------------------------------------
    def attach_fleet(self, fleet: Any) -> None:
        from edge.cell.wiring import BrainBinding

        fleet.attach_brain(
            BrainBinding(chute_prefix=BRAIN_PREFIX), self._on_route, self._ask_failed
        )

    def _on_route(self, parcel_id: int, destination: str | None, received: float) -> None:
        self.counters["brain_answers"] += 1
        self.feed(BrainAnswer(parcel_id, destination, received))

    def _ask_failed(self, parcel_id: int, why: str) -> None:
        self.feed(BrainUnavailable(parcel_id, why, time.monotonic()))

    # ---- health --------------------------------------------------------------------------------
    def _core_status(self) -> dict[str, Any]:
        try:  # read from the loop while the core's thread may be changing it: best effort
            return self.core.status()
        except RuntimeError:
            return {}

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arm": self._core_status(),
            "counters": dict(self.counters),
            "core_ms_max": round(self.core_ms_max, 1),
            "tick_age_ms_max": round(self.tick_age_ms_max, 1),
        }
        out.update(self.gc.figures())
        if self.stream is not None:
            out["motion"] = {
                **self.stream.stats,
                **self.stream.timing_figures(),
                "halted": self.stream.halted,
            }
        if self.camera is not None:
            out["camera"] = self._camera_figures()
        return out

    def _camera_figures(self) -> dict[str, Any]:
        """The camera worker's figures and its handover's (labels, unlabelled, never_whole)."""
        assert self.camera is not None
        return {
            **{k: round(v, 1) for k, v in self.camera.stats.items()},
            **self.camera.handover.stats,
        }

    def health(self) -> dict[str, Any]:
        return {"arm": self._core_status()}

    def final_counters(self) -> dict[str, Any]:
        out = dict(self.host.counters)
        out.update(self.counters)
        out["core_ms_max"] = round(self.core_ms_max, 1)
        out["tick_age_ms_max"] = round(self.tick_age_ms_max, 1)
        out.update(self.gc.figures())
        if self.stream is not None:
            out.update({f"motion_{k}": v for k, v in self.stream.stats.items()})
            out.update({f"motion_{k}": v for k, v in self.stream.timing_figures().items()})
        if self.camera is not None:
            out.update({f"cam_{k}": v for k, v in self._camera_figures().items()})
        return out


def create_machine(board: Any, ctx: MachineContext) -> ArmMachine:
    """The registry's factory for ``machine: arm`` (edge/runtime/registry.py)."""
    return ArmMachine(board, ctx)
