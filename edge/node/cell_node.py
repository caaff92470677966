"""The diverter sorting line as a machine on the shared node runtime (docs/runtime.md).

``DiverterMachine`` puts the cell core (``edge/cell/``) between the real drivers: the MCU
link and its diverter strokes, the PLC's belt, the scanners, the camera and the brain's
routes. The runtime (``edge.runtime.node.Node``) hosts it: the safety machine, operator
commands, fleet link, health, shutdown. Everything that changes the cell's state happens
on the runtime's one asyncio loop, in ``feed`` (facts for the cell core) and
``act_on_safety`` (the safety machine's actions), so the pure cores never see two facts at
once. Drivers that run in threads (Modbus polling, the fleet link's command thread) hand
their facts to this loop; MCU and line devices are asyncio already.

``CellNode`` is the diverter machine already hosted by a runtime, as built before machines
had kinds: ``CellNode(board, ...)``, ``await node.run(stop)``, ``node.command("start")``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cell.controller import CellCore
from edge.cell.events import (
    Alarm,
    AskBrain,
    BrainAnswer,
    BrainUnavailable,
    CancelStroke,
    CellAction,
    CellEvent,
    ChuteFull,
    EyeEdge,
    Halt,
    PublishRecord,
    Resume,
    ScheduleStroke,
    Sighting,
    StrokeAccepted,
    StrokeDone,
    StrokeRefused,
    Tick,
)
from edge.cell.mcu_adapter import McuDiverter
from edge.config.board import BoardConfig
from edge.node.encoder import EncoderClock
from edge.node.parcel_journal import ParcelJournal
from edge.node.plc_belt import PlcBelt, PlcStatus
from edge.runtime.machine import Machine, MachineContext
from edge.runtime.node import Node
from edge.safety.machine import (
    AllowDiverting,
    CancelAllStrokes,
    SafetyAction,
    StartBelt,
    State,
    StopBelt,
)
from firmware_bridge.linedev.device import LineDevice
from firmware_bridge.linedev.events import LineError, NoRead, Read, StateChange
from firmware_bridge.mcu import McuError, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.link import StateChange as McuStateChange

if TYPE_CHECKING:
    from edge.runtime.faults import FaultTracker
    from edge.runtime.fleet import FleetBridge
    from edge.runtime.reporter import Reporter
    from edge.runtime.supervisor import Supervisor
    from edge.runtime.systemd import Notifier
    from edge.safety.config import SafetyConfig
    from edge.safety.machine import SafetyMachine

log = logging.getLogger("wolfpack.node")

ENCODER_REPORT_MS = 10


class DiverterMachine(Machine):
    """The diverter line: belt, photo-eyes, scanners, camera, diverter strokes into chutes."""

    kind = "diverter"
    label = "cell"

    def __init__(
        self,
        board: BoardConfig,
        ctx: MachineContext | None = None,
        *,
        journal_file: str | Path | None = None,
    ) -> None:
        if board.cell is None:
            raise ValueError("this board config has no cell section; a cell node needs one")
        ctx = ctx or MachineContext()
        self.board = board
        self.cell = board.cell
        self.core = CellCore(self.cell)
        devices = {"mcu"}
        if self.cell.plc is not None:
            devices.add("plc")
        if self.cell.scanners:
            devices.add("scanner")
        if self.cell.camera is not None:
            devices.add("camera")
        if board.mqtt is not None:
            devices.add("brain")
        self._devices = frozenset(devices)
        self.encoder = EncoderClock()
        self.decisions: Counter[str] = Counter()
        self.mcu: McuLink | None = None
        self.diverter: McuDiverter | None = None
        self.plc: PlcBelt | None = None
        self.scanners: list[LineDevice] = []
        self.camera: Any = None  # edge.node.camera_feed.CameraFeed when cell.camera is set
        self._mcu_ops: dict[int, asyncio.Task[None]] = {}
        self._asks: dict[int, float] = {}  # parcel -> deadline (monotonic), brain liveness
        self._brain_misses = 0
        self._brain_up = False
        self._plc_last: PlcStatus | None = None
        self._scanner_up: dict[str, bool] = {}
        self._heartbeat_due = 0.0
        self._background: set[asyncio.Task[Any]] = set()  # belt commands until confirmed
        self.metrics: Any = None  # edge.node.metrics.NodeMetrics with a metrics: section
        self.telemetry: Any = None  # edge.node.telemetry.NodeTelemetry once a fleet link is up
        self.sparkplug: Any = None  # edge.node.sparkplug_bridge.SparkplugBridge when enabled
        self.journal: ParcelJournal | None = None
        self._journal_path = _journal_path(
            board, ctx.health_file, journal_file if journal_file is not None else (
                ctx.state_dir / f"{board.node.id}.parcels.json" if ctx.state_dir else None)
        )  # fmt: skip
        # Nothing is diverted before an operator's start (or --start): a restarted node may
        # find parcels and a moving belt, and must not act on them until told to.
        self.core.handle(Halt("waiting for an operator's start", time.monotonic()))

    def bind(self, host: Any) -> None:
        super().bind(host)
        if self.board.metrics is not None:
            from edge.node.metrics import NodeMetrics

            self.metrics = NodeMetrics(self, self.board.metrics)
        if self._journal_path is not None:
            self.journal = ParcelJournal(self._journal_path, self.reporter)
            self.journal.load(self.core)

    # ---- the runtime's services, by the names this machine's helpers use --------------------
    @property
    def safety(self) -> SafetyMachine:
        return self.host.safety

    @property
    def supervisor(self) -> Supervisor:
        return self.host.supervisor

    @property
    def notifier(self) -> Notifier:
        return self.host.notifier

    @property
    def reporter(self) -> Reporter:
        return self.host.reporter

    @property
    def counters(self) -> Counter[str]:
        return self.host.counters

    @property
    def fleet(self) -> FleetBridge | None:
        return self.host.fleet

    @property
    def faults(self) -> FaultTracker:
        return self._node.faults

    @property
    def config_version(self) -> str:
        return self.host.config_version

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.host.loop

    @property
    def _closing(self) -> bool:
        return self.host.closing

    @property
    def _node(self) -> Node:
        assert isinstance(self.host, Node)
        return self.host

    def apply_safety(self, actions: list[SafetyAction]) -> None:
        self.host.apply_safety(actions)

    def _on_operator(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """An operator command through the runtime (the Sparkplug bridge's commands)."""
        return self._node._on_operator(name, args)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.host.spawn(coro)

    # ---- the Machine interface --------------------------------------------------------------
    @property
    def safety_config(self) -> SafetyConfig:
        return self.cell.safety

    @property
    def devices(self) -> frozenset[str]:
        return self._devices

    def attach_fleet(self, fleet: FleetBridge) -> None:
        fleet.attach_brain(self.cell.brain, self._on_route, self._ask_failed)

    async def open(self) -> None:
        assert self.loop is not None
        board, cell = self.board, self.cell
        mcu_cfg = next(x for x in board.mcus if x.name == cell.belt.mcu)
        self.mcu = McuLink(
            mcu_cfg.port,
            baud=mcu_cfg.baud,
            watchdog_ms=mcu_cfg.watchdog_ms,
            heartbeat_ms=mcu_cfg.heartbeat_ms,
            name=mcu_cfg.name,
        )
        self.diverter = McuDiverter(self.mcu, cell)
        if self.journal is not None and self.journal.saved is not None:
            from edge.cell.persist import pending_actions

            # The link delivers action_done only for ids it issued or adopted; the previous
            # run's strokes fire while no node listens and come right after identify.
            self.mcu.adopt_actions(pending_actions(self.journal.saved).values())
        self.mcu.on_event(self._on_mcu_event)
        self.mcu.on_state(self._on_mcu_state)
        if cell.plc is not None:
            self.plc = PlcBelt(board.modbus, cell.plc, self.loop, self._on_plc)
            self.plc.start()
        by_name = {d.name: d for d in board.line_devices}
        for binding in cell.scanners:
            dev = LineDevice(by_name[binding.device])
            self.scanners.append(dev)
            self._scanner_up[dev.name] = False
            self.supervisor.start(f"scanner {dev.name}", self._scanner_task(dev, binding))
        if cell.camera is not None:
            from edge.node.camera_feed import start_camera

            self.camera = start_camera(self)
        from edge.node.sparkplug_bridge import start_sparkplug

        self.sparkplug = start_sparkplug(self)  # Sparkplug B edge node, with a sparkplug: section
        from edge.node.telemetry import start_telemetry

        self.telemetry = start_telemetry(self)
        self.supervisor.start("mcu", self._mcu_task)
        if self.metrics is not None:
            self.metrics.start()  # its own thread; a scrape never waits for this loop

    async def make_safe(self) -> None:
        """Strokes cancelled, the belt stopped (the runtime's safety stop went first)."""
        self.feed(Halt("node shutting down", time.monotonic()))
        if self.diverter is not None and self.mcu is not None and self.mcu.state.up:
            try:
                await asyncio.wait_for(self.diverter.cancel_all(), 2.0)
            except (McuError, TimeoutError) as exc:
                log.warning("cancelling strokes at shutdown: %s", exc)
        if self.plc is not None:
            try:
                await asyncio.wait_for(self.plc.command(False), 2.0)
            except Exception as exc:  # the PLC may be the reason we stop
                log.warning("stopping the belt at shutdown: %s", exc)

    async def close(self) -> None:
        for dev in self.scanners:
            await dev.stop()
        if self.plc is not None:
            await asyncio.to_thread(self.plc.stop)
        if self.mcu is not None:
            await self.mcu.close()
        if self.sparkplug is not None:  # NDEATH, disconnect
            await asyncio.to_thread(self.sparkplug.stop)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)

    def finish(self) -> None:
        if self.journal is not None:
            self.journal.close(self.core, self.encoder.count, self._pending_actions())

    def act_on_safety(self, actions: Sequence[SafetyAction]) -> None:
        """Devices first: the belt command handed to the PLC's writer, every stroke's cancel
        on the wire, the core halted or resumed. No reporting here (the runtime reports)."""
        now = time.monotonic()
        failed: list[BaseException] = []
        for action in actions:
            try:  # one action failing (a dead writer thread) must not skip the next one
                self._act_on(action, now)
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise failed[0]  # the runtime counts and logs it, after every action was tried

    def _act_on(self, action: SafetyAction, now: float) -> None:
        if isinstance(action, StopBelt):
            self._drive_belt(False, action.cause, quick=action.quick or action.emergency)
        elif isinstance(action, CancelAllStrokes):
            self._cancel_all_now()  # on the wire before the core or anyone hears of it
            self.feed(Halt(action.cause, now))
            if self.diverter is not None:
                self._spawn(self._cancel_all())
        elif isinstance(action, StartBelt):
            self._drive_belt(True, action.cause)
        elif isinstance(action, AllowDiverting):
            self.feed(Resume(now))

    def report_safety(self, action: SafetyAction) -> None:
        if isinstance(action, StopBelt | StartBelt):
            log.info("belt %s: %s", "start" if isinstance(action, StartBelt) else "stop",
                     action.cause)  # fmt: skip

    def tick(self, now: float) -> None:
        if self.plc is not None and now >= self._heartbeat_due:
            self._heartbeat_due = now + self.cell.plc.heartbeat_ms / 1000  # type: ignore[union-attr]
            self.plc.heartbeat()  # from this loop: a hung loop stops it, and the PLC the belt
        self._check_brain(now)
        count = self.encoder.count
        if count is not None:
            self.feed(Tick(count, now))
        if self.journal is not None:
            self.journal.tick(self.core, count, now, self._pending_actions())

    def status(self) -> dict[str, Any]:
        return {
            "parcels": dict(self.counters),
            "decisions": dict(self.decisions),
            "active_parcels": len(self.core.active),
        }

    def state_extra(self, health: dict[str, Any]) -> dict[str, Any]:
        return {"cell": {**health, "parcels": dict(self.counters)}}

    def device_reason(self, device: str) -> str | None:
        if device == "plc":
            st = self._plc_last
            if st is None:
                return "no status from the PLC yet"
            return (st.why or "PLC offline") if not st.online else "PLC status incomplete"
        if device == "mcu":
            mcu = self.mcu
            return f"MCU link {mcu.state.value}" if mcu is not None else "MCU link not opened"
        if device == "scanner":
            down = sorted(name for name, up in self._scanner_up.items() if not up)
            return f"not connected: {', '.join(down)}" if down else "scanner not up"
        if device == "camera":
            return "no frames from the camera"
        return None

    # ---- the cell core ------------------------------------------------------------------------
    def feed(self, event: CellEvent) -> None:
        try:
            actions = self.core.handle(event)
        except ValueError as exc:  # a fact the core refuses (unknown eye...): log, keep going
            log.error("cell refused %s: %s", type(event).__name__, exc)
            return
        if self.journal is not None:
            if isinstance(event, EyeEdge | StrokeDone | StrokeAccepted):
                # the MCU resends nothing it delivered, and an accepted stroke's action id is
                # how the next node knows it fired: these go to disk at once
                self.journal.save_now(self.core, self.encoder.count, event.t,
                                      self._pending_actions())  # fmt: skip
            elif actions or not isinstance(event, Tick):
                self.journal.dirty = True
        for action in actions:
            self._act(action)

    def _act(self, action: CellAction) -> None:
        now = time.monotonic()
        if isinstance(action, ScheduleStroke):
            self._mcu_op(action.parcel_id, self._schedule(action))
        elif isinstance(action, CancelStroke):
            self._mcu_op(action.parcel_id, self._cancel(action))
        elif isinstance(action, AskBrain):
            self._ask(action, now)
        elif isinstance(action, PublishRecord):
            rec = action.record
            self.counters[rec.outcome] += 1
            self.decisions[rec.decision_source or "none"] += 1
            if self.metrics is not None:
                self.metrics.record(rec)  # stage latency histograms
            self._asks.pop(rec.parcel_id, None)
            if self.fleet is not None:
                self.fleet.record(rec)
            if self.journal is not None:  # recorded: a restart must not take it back
                self.journal.save_now(self.core, self.encoder.count, now, self._pending_actions())
            log.debug("parcel %d %s -> %s", rec.parcel_id, rec.outcome, rec.chute)
        elif isinstance(action, Alarm):
            self.counters[f"alarm_{action.kind}"] += 1
            if action.fault:  # the stop first; the report after it
                self.apply_safety(self.safety.fault(f"{action.kind}: {action.detail}", now))
            log.warning("alarm %s: %s", action.kind, action.detail)
            if self.fleet is not None:
                self.fleet.event("alarm", {"kind": action.kind, "detail": action.detail})

    def _mcu_op(self, parcel_id: int, op: Any) -> None:
        """MCU work for one parcel runs in order: a cancel waits for its schedule's answer."""
        previous = self._mcu_ops.get(parcel_id)

        async def chained() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await op

        task = asyncio.get_running_loop().create_task(chained())
        self._mcu_ops[parcel_id] = task
        task.add_done_callback(lambda t: self._mcu_done(parcel_id, t))

    def _mcu_done(self, parcel_id: int, task: asyncio.Task[None]) -> None:
        if self._mcu_ops.get(parcel_id) is task:
            del self._mcu_ops[parcel_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("MCU operation for parcel %d failed: %s", parcel_id, task.exception())

    async def _schedule(self, action: ScheduleStroke) -> None:
        assert self.diverter is not None
        try:
            refused = await self.diverter.schedule(action)
        except McuError as exc:
            refused = StrokeRefused(action.parcel_id, str(exc), time.monotonic())
        self.feed(
            refused if refused is not None else StrokeAccepted(action.parcel_id, time.monotonic())
        )

    async def _cancel(self, action: CancelStroke) -> None:
        assert self.diverter is not None
        try:
            await self.diverter.cancel(action)
        except McuError as exc:
            log.error("cancelling the stroke of parcel %d failed: %s", action.parcel_id, exc)

    # ---- the brain ----------------------------------------------------------------------------
    def _ask(self, ask: AskBrain, now: float) -> None:
        if self.fleet is None:
            self.feed(BrainUnavailable(ask.parcel_id, "no fleet link configured", now))
            return
        if not self.fleet.connected:
            self.feed(BrainUnavailable(ask.parcel_id, "broker unreachable", now))
            return
        self._asks[ask.parcel_id] = ask.deadline_t
        self.fleet.ask(ask, now)

    def _ask_failed(self, parcel_id: int, why: str) -> None:
        """The outbox could not store a route request: decide locally, now."""
        if self._asks.pop(parcel_id, None) is not None:
            self.feed(BrainUnavailable(parcel_id, why, time.monotonic()))

    def _on_route(self, parcel_id: int, chute: str | None, t: float) -> None:
        if self._asks.pop(parcel_id, None) is not None:
            self._brain_misses = 0
            self._set_brain(True, "answered")
        self.feed(BrainAnswer(parcel_id, chute, t))

    def _check_brain(self, now: float) -> None:
        if self.fleet is None:
            return
        for parcel_id, deadline in list(self._asks.items()):
            if now > deadline:
                del self._asks[parcel_id]
                self._brain_misses += 1
        connected = self.fleet.connected
        if not connected:
            self._set_brain(False, "broker unreachable")
        elif self._brain_misses >= self.cell.brain.lost_after_misses:
            self._set_brain(False, f"{self._brain_misses} answers late in a row")
        elif not self._brain_up and self._brain_misses == 0:
            self._set_brain(True, "broker connected")

    def _set_brain(self, up: bool, why: str) -> None:
        if up == self._brain_up or self._closing:
            return
        self._brain_up = up
        now = time.monotonic()
        if up:
            self.apply_safety(self.safety.device_up("brain", now))
        else:
            self.apply_safety(self.safety.device_lost("brain", why, now))

    def _drive_belt(self, run: bool, cause: str, quick: bool = False) -> None:
        """Command the belt now (the write leaves before this returns); a stop is retried
        until the PLC confirms it. ``quick``: on the drive's quick-stop ramp (a fault)."""
        if self.plc is None:
            return
        speed = self.cell.belt.nominal_speed_mm_s if run else None
        task = self.plc.drive(run, speed, self._belt_failed, quick=quick)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _belt_failed(self, run: bool, exc: BaseException) -> None:
        what = "start" if run else "stop"
        self.counters[f"belt_{what}_failures"] += 1
        log.error("belt %s failed: %s", what, exc)
        if self._closing:
            return
        # a PLC that refuses a belt command is a fault (a failed stop keeps being retried)
        self.apply_safety(self.safety.fault(f"PLC did not take the belt {what}: {exc}",
                                            time.monotonic()))  # fmt: skip

    def _cancel_all_now(self) -> None:
        """Every stroke the MCU holds for this node cancelled at once, the frames written
        before this returns (a stroke due a few ms after an e-stop must not wait for a loop
        turn or a round trip per stroke); the answers are settled by a task."""
        if self.diverter is None:
            return
        try:
            sent = self.diverter.cancel_all_now()
        except McuError as exc:  # link closed: the MCU watchdog is the backstop
            log.error("cancelling all strokes failed: %s", exc)
            return
        if sent:
            self._spawn(self._settle_cancels(sent))

    async def _settle_cancels(self, sent: list[tuple[int, asyncio.Future[Any]]]) -> None:
        assert self.diverter is not None
        await asyncio.gather(*(answer for _, answer in sent), return_exceptions=True)
        for action_id, answer in sent:
            try:
                self.diverter.settle(action_id, answer)
            except McuError as exc:
                log.error("cancelling stroke action %d failed: %s", action_id, exc)

    async def _cancel_all(self) -> None:
        """The strokes whose schedule was still in flight at the stop: cancelled once the
        MCU has accepted them."""
        assert self.diverter is not None
        pending = list(self._mcu_ops.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.diverter.cancel_all()
        except McuError as exc:
            log.error("cancelling all strokes failed: %s (the MCU watchdog is the backstop)", exc)

    # ---- devices ------------------------------------------------------------------------------
    async def _mcu_task(self) -> None:
        assert self.mcu is not None and self.diverter is not None
        await self.mcu.connect()
        outputs = [c.output for c in self.cell.chutes]
        if self.cell.reject.output is not None:
            outputs.append(self.cell.reject.output)
        await self.diverter.configure(outputs)
        await self.mcu.set_encoder_report(self.cell.belt.encoder, ENCODER_REPORT_MS)
        self.apply_safety(self.safety.device_up("mcu", time.monotonic()))
        await asyncio.Event().wait()  # the link reconnects by itself; state changes tell us

    def _on_mcu_event(self, msg: m.Message) -> None:
        assert self.diverter is not None
        count = msg.fields.get("count")
        if self.journal is not None and not self.journal.restored and isinstance(count, int):
            # before the first MCU fact with a position, and before it is translated: a
            # held action_done must find the action ids the journal gives the diverter
            self._restore(count, time.monotonic())
        fact = self.diverter.translate(msg)
        if fact is None:
            return
        if isinstance(fact, Tick):
            self.encoder.update(fact.count, fact.t)
        self.feed(fact)

    def _restore(self, count: int, t: float) -> None:
        """The parcels the previous run left on the belt, back under tracking; the strokes
        they had pending recognised if the MCU reports them done (it fired them, or its
        watchdog dropped them, while no node was there)."""
        assert self.journal is not None and self.diverter is not None
        fleet = self.fleet
        actions = self.journal.restore(
            self.core, count, t, fleet.recorded_parcels if fleet is not None else None
        )
        if actions is None:
            return
        self.counters["parcels_restored"] += len(self.core.active)
        self.diverter.adopt(actions)
        if self.core.halted is None:  # already started: schedule what they need
            self.feed(Resume(t))

    def _pending_actions(self) -> dict[int, int]:
        return self.diverter.pending() if self.diverter is not None else {}

    def _on_mcu_state(self, change: McuStateChange) -> None:
        if self._closing:
            return
        now = time.monotonic()
        if change.state.up:
            if "mcu" not in self.safety.up and self.diverter is not None:
                self.apply_safety(self.safety.device_up("mcu", now))
        elif "mcu" in self.safety.up:
            self.apply_safety(self.safety.device_lost("mcu", change.reason, now))

    def _on_plc(self, st: PlcStatus) -> None:
        if self._closing:
            return
        now = time.monotonic()
        last = self._plc_last
        self._plc_last = st
        if not st.online:
            if last is None or last.online:
                self.apply_safety(self.safety.device_lost("plc", st.why, now))
            return
        if last is None or not last.online:
            self.apply_safety(self.safety.device_up("plc", now))
        if last is None or not last.online or st.estop != last.estop:
            self.apply_safety(self.safety.estop(st.estop, now))
        if last is None or not last.online or st.moving != last.moving:
            self.apply_safety(self.safety.belt(st.moving, now))
        if (
            self.safety.state is State.RUNNING
            and self.plc is not None
            and (self.plc.stopped_by_plc(st))
        ):
            self.apply_safety(self.safety.fault(
                "the PLC stopped the belt by itself (run command cleared: its communication "
                "watchdog, or a stop at its panel)", now))  # fmt: skip
        for chute, full in st.full.items():
            if last is None or last.full.get(chute, False) != full:
                self.feed(ChuteFull(chute, full, now))

    def _scanner_task(self, dev: LineDevice, binding: Any) -> Any:
        async def run() -> None:
            await dev.start()
            async for ev in dev.events():
                if isinstance(ev, LineError):
                    self.counters["scanner_line_errors"] += 1  # not a parcel: no slot
                elif isinstance(ev, Read | NoRead):
                    count = self.encoder.count_at(ev.mono_time)
                    if count is None:
                        continue  # no encoder yet: the belt cannot be carrying parcels
                    read = isinstance(ev, Read)
                    self.counters["scanner_reads" if read else "scanner_no_reads"] += 1
                    self.feed(
                        Sighting(
                            binding.name, count, ev.mono_time, binding.position_mm,
                            label=ev.text if isinstance(ev, Read) else None,
                            in_order_mm=binding.read_window_mm, no_read=not read,
                        )
                    )  # fmt: skip
                elif isinstance(ev, StateChange):
                    self._scanner_state(dev.name, ev.state == "connected", ev.reason)

        return run

    def _scanner_state(self, name: str, up: bool, why: str) -> None:
        if self._closing:
            return
        self._scanner_up[name] = up
        now = time.monotonic()
        if all(self._scanner_up.values()):
            self.apply_safety(self.safety.device_up("scanner", now))
        elif "scanner" in self.safety.up:
            self.apply_safety(self.safety.device_lost("scanner", f"{name}: {why}", now))


class CellNode:
    """The diverter line hosted by its own runtime: the object callers built before machines
    had kinds (tests, tools). An attribute the runtime has (``safety``, ``fleet``,
    ``status``, ``command``, ``run``...) is the runtime's; any other (``core``, ``mcu``,
    ``plc``, ``feed``...) is the machine's, read and written through."""

    def __init__(
        self,
        board: BoardConfig,
        *,
        config_version: str = "",
        health_file: str | Path | None = None,
        start_when_ready: bool = False,
        journal_file: str | Path | None = None,
    ) -> None:
        ctx = MachineContext(
            config_version=config_version,
            health_file=Path(health_file) if health_file else None,
            start_when_ready=start_when_ready,
        )
        machine = DiverterMachine(board, ctx, journal_file=journal_file)
        node = Node(board, machine, config_version=config_version, health_file=health_file,
                    start_when_ready=start_when_ready)  # fmt: skip
        object.__setattr__(self, "machine", machine)
        object.__setattr__(self, "runtime", node)

    def _owner(self, name: str) -> Any:
        node = object.__getattribute__(self, "runtime")
        if name in vars(node) or hasattr(type(node), name):
            return node
        return object.__getattribute__(self, "machine")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner(name), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._owner(name), name, value)


def _journal_path(
    board: BoardConfig, health_file: Path | None, journal_file: str | Path | None
) -> Path | None:
    """Where the parcels in flight are kept: as given, else beside the health file (tmpfs
    under systemd), else beside the outbox; None without any of them."""
    if journal_file is not None:
        return Path(journal_file)
    if health_file is not None:
        return health_file.with_name(f"{board.node.id}.parcels.json")
    if board.mqtt is not None:
        return Path(board.mqtt.outbox.path).with_name(f"{board.node.id}.parcels.json")
    return None
