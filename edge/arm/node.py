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
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from edge.arm.adapter_camera import ArmCamera, BeltParcel
from edge.arm.adapter_mcu import MotionStream, from_protocol
from edge.arm.config import ArmConfig
from edge.arm.controller import ArmCore
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
HORIZON_MARGIN_S = 0.01  # segments go out this much inside tracking.lead_ms


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
        self.stream = MotionStream(self.link, self.arm, horizon, self.feed)
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
        if state.state == m.MOTION_HALTED and self.stream is not None:
            self.stream.halted = True
        if "mcu" not in self.host.safety.up:
            self.host.apply_safety(self.host.safety.device_up("mcu", now))
        await asyncio.Event().wait()  # the link reconnects by itself; state changes tell

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
        if self.link is not None:
            await self.link.close()

    # ---- facts into the core --------------------------------------------------------------------
    def feed(self, fact: ArmFact) -> None:
        """One fact into the core; its actions out, the motion ones first."""
        try:
            actions = self.core.handle(fact)
        except Exception:  # a core bug must not kill the loop: counted, logged, stop the arm
            self.counters["core_errors"] += 1
            log.exception("arm core failed on %s", type(fact).__name__)
            if self.stream is not None:
                self.stream.stop_now("arm core error")
            return
        if isinstance(fact, ParcelSeen):
            self._remember(fact)
        self._act(actions, deferred=False)

    def _remember(self, f: ParcelSeen) -> None:
        pid = self.core.by_track.get(f.track_id)
        if pid is None or pid in self._u0:
            return
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
                self.stream.add(a)
            elif isinstance(a, Suction):
                self._suction(a.on, a.cause)
            elif deferred:
                later.append(a)
            else:
                self._report(a)
        if later and self.loop is not None:
            self.loop.call_soon(lambda: [self._report(a) for a in later])

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
        now = time.monotonic()
        out = self.core.on_safety(actions, now)
        stopping = any(isinstance(a, StopBelt | CancelAllStrokes) for a in actions)
        if stopping and self.stream is not None and not any(isinstance(a, StopMotion) for a in out):
            self.stream.stop_now("safety stop")
        self._act(out, deferred=True)
        running = any(
            isinstance(a, StartBelt | AllowDiverting)
            or (isinstance(a, Transition) and a.to_state is State.RUNNING)
            for a in actions
        )
        if running and self.stream is not None:
            self.stream.resume()

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
            self.feed(Tick(msg["count"], t))
        elif name == "input_edge":
            self._input(msg["pin"], msg["value"], self._host_t(msg["clock"]))
        elif name == "grip_changed":
            self.feed(
                Grip(bool(msg["gripped"]), msg["pressure_pa"] / 1000, self._host_t(msg["clock"]))
            )
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
            return  # device_up once the arm's setup is sent again (_mcu_task / replug)
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
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arm": self.core.status(), "counters": dict(self.counters)}
        if self.stream is not None:
            out["motion"] = {**self.stream.stats, "halted": self.stream.halted}
        if self.camera is not None:
            out["camera"] = {k: round(v, 1) for k, v in self.camera.stats.items()}
        return out

    def health(self) -> dict[str, Any]:
        return {"arm": self.core.status()}

    def final_counters(self) -> dict[str, Any]:
        out = dict(self.host.counters)
        out.update(self.counters)
        if self.stream is not None:
            out.update({f"motion_{k}": v for k, v in self.stream.stats.items()})
        return out


def create_machine(board: Any, ctx: MachineContext) -> ArmMachine:
    """The registry's factory for ``machine: arm`` (edge/runtime/registry.py)."""
    return ArmMachine(board, ctx)
