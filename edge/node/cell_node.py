"""The sorting-cell node: the cell core and the safety machine between the real drivers.

Everything that changes the cell's state happens on one asyncio loop, in ``feed`` (facts for
the cell core) and ``apply_safety`` (the safety machine's actions), so the pure cores never
see two facts at once. Drivers that run in threads (Modbus polling, the fleet link's
command thread) hand their facts to this loop; MCU and line devices are asyncio already.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
from edge.node.faults import FaultTracker
from edge.node.fleet import FleetBridge
from edge.node.parcel_journal import ParcelJournal
from edge.node.plc_belt import PlcBelt, PlcStatus
from edge.node.reporter import Reporter
from edge.node.supervisor import Supervisor
from edge.node.systemd import Notifier
from edge.safety.machine import (
    AllowDiverting,
    CancelAllStrokes,
    DegradedChanged,
    Refused,
    SafetyAction,
    SafetyAlarm,
    SafetyMachine,
    StartBelt,
    State,
    StopBelt,
    Transition,
)
from firmware_bridge.linedev.device import LineDevice
from firmware_bridge.linedev.events import LineError, NoRead, Read, StateChange
from firmware_bridge.mcu import McuError, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.link import StateChange as McuStateChange

log = logging.getLogger("wolfpack.node")

TICK_S = 0.02  # timer tick: brain deadlines, safety deadlines, health
ENCODER_REPORT_MS = 10
HEALTHY_STATES = (State.READY, State.RUNNING, State.STOPPING)


class CellNode:
    def __init__(
        self,
        board: BoardConfig,
        *,
        config_version: str = "",
        health_file: str | Path | None = None,
        start_when_ready: bool = False,
        journal_file: str | Path | None = None,
    ) -> None:
        if board.cell is None:
            raise ValueError("this board config has no cell section; a cell node needs one")
        self.board = board
        self.cell = board.cell
        self.config_version = config_version
        self.health_file = Path(health_file) if health_file else None
        self.start_when_ready = start_when_ready
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
        self.safety = SafetyMachine(self.cell.safety, devices)
        self.encoder = EncoderClock()
        self.supervisor = Supervisor(on_crash=self._task_crashed)
        self.notifier = Notifier()
        self.counters: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.mcu: McuLink | None = None
        self.diverter: McuDiverter | None = None
        self.plc: PlcBelt | None = None
        self.fleet: FleetBridge | None = None
        self.scanners: list[LineDevice] = []
        self.camera: Any = None  # edge.node.camera_feed.CameraFeed when cell.camera is set
        self._mcu_ops: dict[int, asyncio.Task[None]] = {}
        self._asks: dict[int, float] = {}  # parcel -> deadline (monotonic), brain liveness
        self._brain_misses = 0
        self._brain_up = False
        self._plc_last: PlcStatus | None = None
        self._scanner_up: dict[str, bool] = {}
        self._refusals: list[Refused] = []
        self._health: dict[str, Any] = {}
        self._started_belt = False
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self.reporter = Reporter("node-report")
        self.metrics: Any = None  # edge.node.metrics.NodeMetrics with a metrics: section
        if board.metrics is not None:
            from edge.node.metrics import NodeMetrics

            self.metrics = NodeMetrics(self, board.metrics)
        self.faults = FaultTracker(self)  # the state's faults list, synced after each safety pass
        self.telemetry: Any = None  # edge.node.telemetry.NodeTelemetry once a fleet link is up
        self.sparkplug: Any = None  # edge.node.sparkplug_bridge.SparkplugBridge when enabled
        self._heartbeat_due = 0.0
        # Nothing is diverted before an operator's start (or --start): a restarted node may
        # find parcels and a moving belt, and must not act on them until told to.
        self.core.handle(Halt("waiting for an operator's start", time.monotonic()))
        journal = _journal_path(board, self.health_file, journal_file)
        self.journal = ParcelJournal(journal, self.reporter) if journal is not None else None
        if self.journal is not None:
            self.journal.load(self.core)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down safely."""
        self.loop = asyncio.get_running_loop()
        await self._open()
        self.notifier.ready(f"cell {self.safety.state.value}")
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def _open(self) -> None:
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
        if board.mqtt is not None:
            self.fleet = FleetBridge(
                board.mqtt,
                board.node.site,
                board.node.id,
                cell.brain,
                self.loop,
                self._on_route,
                self._on_operator,
                config_version=self.config_version,
                reporter=self.reporter,
                on_ask_failed=self._ask_failed,
            )
            self.fleet.link.extra_state = self._state_extra
            self.fleet.start()
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
        self.supervisor.start("timer", self._timer_task)
        if self.metrics is not None:
            self.metrics.start()  # its own thread; a scrape never waits for this loop
        log.info(
            "cell node %s/%s started: devices %s; safety %s",
            board.node.site, board.node.id, ", ".join(sorted(self.safety.devices)),
            self.safety.state.value,
        )  # fmt: skip

    async def shutdown(self) -> None:
        """Belt stopped, strokes cancelled, offline published, outbox flushed."""
        self.notifier.stopping()
        now = time.monotonic()
        self._closing = True  # from here, devices going away is the plan, not a fault
        self.apply_safety(self.safety.stop(now) if self.safety.state is State.RUNNING else [])
        self.feed(Halt("node shutting down", now))
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
        await self.supervisor.stop()
        for dev in self.scanners:
            await dev.stop()
        if self.plc is not None:
            await asyncio.to_thread(self.plc.stop)
        if self.mcu is not None:
            await self.mcu.close()
        await asyncio.to_thread(self.reporter.flush, 3.0)
        if self.sparkplug is not None:  # last values, NDEATH, disconnect
            await asyncio.to_thread(self.sparkplug.stop)
        if self.fleet is not None:
            drained = await asyncio.to_thread(self.fleet.link.wait_drained, 3.0)
            if not drained:
                log.warning("outbox not drained at shutdown; it is kept on disk and sent later")
            await asyncio.to_thread(self.fleet.stop)
        self._write_health(force=True, status="stopped")
        if self.journal is not None:
            self.journal.close(self.core, self.encoder.count, self._pending_actions())
        await asyncio.to_thread(self.reporter.close, 3.0)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
        log.info("cell node stopped")

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

    # ---- operators ------------------------------------------------------------------------------
    def _on_operator(self, name: str, _args: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        if name == "status":
            return self.status()
        actions = {"start": self.safety.start, "stop": self.safety.stop,
                   "reset": self.safety.reset}[name](now)  # fmt: skip
        self.apply_safety(actions)
        refused = [a for a in actions if isinstance(a, Refused)]
        if refused:
            return {"refused": refused[0].why, "state": self.safety.state.value}
        return {"state": self.safety.state.value}

    def command(self, name: str) -> dict[str, Any]:
        """start / stop / reset / status from this process (tests, the CLI)."""
        return self._on_operator(name, {})

    def status(self) -> dict[str, Any]:
        return {
            "state": self.safety.state.value,
            "devices_up": sorted(self.safety.up),
            "degraded": sorted(self.safety.degraded),
            "parcels": dict(self.counters),
            "decisions": dict(self.decisions),
            "active_parcels": len(self.core.active),
            "tasks": {n: s.restarts for n, s in self.supervisor.status.items()},
            "reporting": {
                **self.reporter.stats(),
                "safety_report_errors": self.counters["report_errors"],
            },
        }

    # ---- safety -------------------------------------------------------------------------------
    def apply_safety(self, actions: list[SafetyAction]) -> None:
        """Act on the devices first, then report. Device commands are handed to their
        threads and tasks before any report is made; reports go to the reporting thread
        and cannot raise here, so no failure there can delay or skip a stop."""
        now = time.monotonic()
        for action in actions:
            if isinstance(action, StopBelt):
                self._drive_belt(False, action.cause)
            elif isinstance(action, CancelAllStrokes):
                self._cancel_all_now()  # on the wire before the core or anyone hears of it
                self.feed(Halt(action.cause, now))
                if self.diverter is not None:
                    self._spawn(self._cancel_all())
            elif isinstance(action, StartBelt):
                self._drive_belt(True, action.cause)
            elif isinstance(action, AllowDiverting):
                self.feed(Resume(now))
        for action in actions:
            try:
                self._report_safety(action)
            except Exception:  # reporting is never allowed to break the safety path
                self.counters["report_errors"] += 1
        self._write_health()

    def _report_safety(self, action: SafetyAction) -> None:
        if isinstance(action, Transition):
            log.warning(
                "safety %s -> %s: %s",
                action.from_state.value, action.to_state.value, action.cause,
            )  # fmt: skip
            if self.fleet is not None:
                self.fleet.event(
                    "safety",
                    {"from": action.from_state.value, "to": action.to_state.value,
                     "cause": action.cause},
                )  # fmt: skip
                self.fleet.request_state()
            self.notifier.status(f"cell {action.to_state.value}: {action.cause}")
            if action.to_state is State.READY and self.start_when_ready:
                self._maybe_autostart()
        elif isinstance(action, StopBelt | StartBelt):
            log.info("belt %s: %s", "start" if isinstance(action, StartBelt) else "stop",
                     action.cause)  # fmt: skip
        elif isinstance(action, DegradedChanged):
            if self.fleet is not None:
                self.fleet.event(
                    "degraded", {"devices": sorted(action.devices), "cause": action.cause}
                )
        elif isinstance(action, Refused):
            self._refusals.append(action)
            del self._refusals[:-100]
            log.warning("%s refused: %s", action.command, action.why)
        elif isinstance(action, SafetyAlarm):
            log.error("safety alarm: %s", action.detail)
            self.faults.raise_alarm(action.detail)  # reported (and cleared at reset) by sync

    def _maybe_autostart(self) -> None:
        if self._started_belt:
            return  # only once, at boot: after an e-stop or fault a person starts the cell
        self._started_belt = True
        assert self.loop is not None
        self.loop.call_soon(lambda: self.apply_safety(self.safety.start(time.monotonic())))

    def _drive_belt(self, run: bool, cause: str) -> None:
        """Command the belt now (the write leaves before this returns); a stop is retried
        until the PLC confirms it."""
        if self.plc is None:
            return
        speed = self.cell.belt.nominal_speed_mm_s if run else None
        task = self.plc.drive(run, speed, self._belt_failed)
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

    def _spawn(self, coro: Any) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        actions = self.journal.restore(self.core, count, t)
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
        if self.safety.state is State.RUNNING and self.plc is not None and (
            self.plc.stopped_by_plc(st)
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

    async def _timer_task(self) -> None:
        watchdog_due = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            if self.plc is not None and now >= self._heartbeat_due:
                self._heartbeat_due = now + self.cell.plc.heartbeat_ms / 1000  # type: ignore[union-attr]
                self.plc.heartbeat()  # from this loop: a hung loop stops it, and the PLC the belt
            self._check_brain(now)
            self.apply_safety(self.safety.tick(now))
            count = self.encoder.count
            if count is not None:
                self.feed(Tick(count, now))
            if self.journal is not None:
                self.journal.tick(self.core, count, now, self._pending_actions())
            if self.notifier.watchdog_s is not None and now >= watchdog_due:
                watchdog_due = now + self.notifier.watchdog_s
                self.notifier.watchdog()  # the loop is alive; safety is reported apart

    def _task_crashed(self, name: str, exc: BaseException, restarts: int, delay_s: float) -> None:
        self.counters["task_crashes"] += 1
        if self.fleet is not None:
            self.fleet.event(
                "task_crashed",
                {"task": name, "error": f"{type(exc).__name__}: {exc}", "restarts": restarts,
                 "retry_in_s": delay_s},
            )  # fmt: skip

    # ---- health -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        state = self.safety.state
        missing = sorted(self.safety.devices - self.safety.up)
        return {
            "healthy": state in HEALTHY_STATES,
            "state": state.value,
            "config_version": self.config_version,
            "devices_missing": missing,
            "degraded": sorted(self.safety.degraded),
            "why": self.safety.history[-1].cause if self.safety.history else "starting",
            "pid": os.getpid(),
            "report_errors": self.reporter.errors + self.counters["report_errors"],
        }

    def _state_extra(self) -> dict[str, Any]:
        return {"cell": {**self.health(), "parcels": dict(self.counters)}}

    def _write_health(self, force: bool = False, status: str | None = None) -> None:
        self.faults.sync()  # the report pass of every apply_safety ends here
        health = self.health()
        if status is not None:  # the last word: what the node counted over its whole run
            health = {**health, "healthy": False, "state": status, "counters": dict(self.counters)}
        if not force and health == self._health:
            return
        self._health = health
        if self.health_file is None:
            return
        # written by the reporting thread: a full or slow disk never holds up the loop
        self.reporter.submit(_write_json, self.health_file, {**health, "t": time.time()})


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


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n")
    os.replace(tmp, path)
