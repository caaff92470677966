"""The node runtime: one process hosting one machine (docs/runtime.md).

The runtime owns what every machine shares: the safety state machine and the operator
commands that drive it, the task supervisor, the fleet link, the reporting thread, the
health file, systemd notify and an orderly shutdown. The machine (``edge.runtime.machine``)
owns its core and drivers. Everything that changes state happens on one asyncio loop.

The safety path: ``apply_safety`` hands a decision's actions to the machine's devices
(``Machine.act_on_safety``) before anything is reported; reports go to the reporting thread
and their failures are counted, so nothing on the reporting path can delay or skip a stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.runtime.faults import FaultTracker
from edge.runtime.machine import Machine
from edge.runtime.reporter import Reporter
from edge.runtime.supervisor import Supervisor
from edge.runtime.systemd import Notifier
from edge.safety.machine import (
    DegradedChanged,
    Refused,
    SafetyAction,
    SafetyAlarm,
    SafetyMachine,
    State,
    Transition,
)

if TYPE_CHECKING:
    from edge.config.board import BoardBase
    from edge.runtime.fleet import FleetBridge

log = logging.getLogger("wolfpack.node")

TICK_S = 0.02  # timer tick: safety deadlines, the machine's deadlines, health
HEALTHY_STATES = (State.READY, State.RUNNING, State.STOPPING)
RUNTIME_COMMANDS = ("start", "stop", "reset", "status")


class Node:
    """The runtime around one machine; ``await node.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        board: BoardBase,
        machine: Machine,
        *,
        config_version: str = "",
        health_file: str | Path | None = None,
        start_when_ready: bool = False,
    ) -> None:
        taken = set(machine.commands()) & set(RUNTIME_COMMANDS)
        if taken:
            raise ValueError(f"machine {machine.kind!r} may not define {sorted(taken)}: "
                             "start/stop/reset/status belong to the runtime")  # fmt: skip
        self.board = board
        self.machine = machine
        self.config_version = config_version
        self.health_file = Path(health_file) if health_file else None
        self.start_when_ready = start_when_ready
        self.safety = SafetyMachine(machine.safety_config, machine.devices)
        self.supervisor = Supervisor(on_crash=self._task_crashed)
        self.notifier = Notifier()
        self.counters: Counter[str] = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fleet: FleetBridge | None = None
        self.reporter = Reporter("node-report")
        self._refusals: list[Refused] = []
        self._health: dict[str, Any] = {}
        self._started_once = False
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self.faults = FaultTracker(self)  # the state's faults list, synced after each safety pass
        machine.bind(self)

    @property
    def closing(self) -> bool:
        return self._closing

    # ---- lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down safely."""
        self.loop = asyncio.get_running_loop()
        await self._open()
        self.notifier.ready(f"{self.machine.label} {self.safety.state.value}")
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def _open(self) -> None:
        assert self.loop is not None
        board = self.board
        if board.mqtt is not None:
            from edge.runtime.fleet import FleetBridge

            self.fleet = FleetBridge(
                board.mqtt,
                board.node.site,
                board.node.id,
                None,
                self.loop,
                None,
                self._on_operator,
                config_version=self.config_version,
                reporter=self.reporter,
                commands=self.machine.commands(),
            )
            self.fleet.link.extra_state = self._state_extra
            self.machine.attach_fleet(self.fleet)
            self.fleet.start()
        await self.machine.open()
        self.supervisor.start("timer", self._timer_task)
        log.info(
            "%s node %s/%s started: machine %s, devices %s; safety %s",
            self.machine.label, board.node.site, board.node.id, self.machine.kind,
            ", ".join(sorted(self.safety.devices)), self.safety.state.value,
        )  # fmt: skip

    async def shutdown(self) -> None:
        """Machine stopped and made safe, drivers closed, offline published, outbox flushed."""
        self.notifier.stopping()
        self._closing = True  # from here, devices going away is the plan, not a fault
        now = time.monotonic()
        self.apply_safety(self.safety.stop(now) if self.safety.state is State.RUNNING else [])
        for step, call in (("making the machine safe", self.machine.make_safe),
                           ("stopping tasks", self.supervisor.stop),
                           ("closing the machine's drivers", self.machine.close)):  # fmt: skip
            try:
                await call()
            except Exception:  # one step failing must not skip the next (the outbox, health)
                log.exception("shutdown: %s failed", step)
        await asyncio.to_thread(self.reporter.flush, 3.0)
        if self.fleet is not None:
            drained = await asyncio.to_thread(self.fleet.link.wait_drained, 3.0)
            if not drained:
                log.warning("outbox not drained at shutdown; it is kept on disk and sent later")
            await asyncio.to_thread(self.fleet.stop)
        try:
            self._write_health(force=True, status="stopped")
        except Exception:
            log.exception("shutdown: the last health file")
        try:
            self.machine.finish()
        except Exception:
            log.exception("shutdown: the machine's last step failed")
        await asyncio.to_thread(self.reporter.close, 3.0)
        log.info("%s node stopped", self.machine.label)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self.fleet is not None:
            self.fleet.event(kind, data)

    def request_state(self) -> None:
        if self.fleet is not None:
            self.fleet.request_state()

    # ---- safety -------------------------------------------------------------------------------
    def apply_safety(self, actions: list[SafetyAction]) -> None:
        """Act on the devices first, then report. The machine hands its device commands to
        their threads and tasks before any report is made; reports go to the reporting
        thread and cannot raise here, so no failure there can delay or skip a stop."""
        if actions:
            try:
                self.machine.act_on_safety(actions)
            except Exception:  # a bug on the acting side: loud, counted, reports still go out
                self.counters["safety_act_errors"] += 1
                log.exception("acting on %s failed", [type(a).__name__ for a in actions])
        for action in actions:
            try:
                self._report_safety(action)
                self.machine.report_safety(action)
            except Exception:  # reporting is never allowed to break the safety path
                self.counters["report_errors"] += 1
        try:
            self._write_health()  # faults and health: the machine's health() may raise too
        except Exception:
            self.counters["report_errors"] += 1
            log.exception("health and faults after a safety decision")

    def _report_safety(self, action: SafetyAction) -> None:
        label = self.machine.label
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
            self.notifier.status(f"{label} {action.to_state.value}: {action.cause}")
            if action.to_state is State.READY and self.start_when_ready:
                self._maybe_autostart()
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
        if self._started_once:
            return  # only once, at boot: after an e-stop or fault a person starts the machine
        self._started_once = True
        assert self.loop is not None
        self.loop.call_soon(lambda: self.apply_safety(self.safety.start(time.monotonic())))

    # ---- tasks ----------------------------------------------------------------------------------
    async def _timer_task(self) -> None:
        watchdog_due = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.apply_safety(self.safety.tick(now))
            self.machine.tick(now)
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

    # ---- operators ------------------------------------------------------------------------------
    def _on_operator(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        if name == "status":
            return self.status()
        if name in ("start", "stop", "reset"):
            actions = {"start": self.safety.start, "stop": self.safety.stop,
                       "reset": self.safety.reset}[name](now)  # fmt: skip
            self.apply_safety(actions)
            refused = [a for a in actions if isinstance(a, Refused)]
            if refused:
                return {"refused": refused[0].why, "state": self.safety.state.value}
            return {"state": self.safety.state.value}
        if name in self.machine.commands():
            return self.machine.command(name, args)
        known = ", ".join([*RUNTIME_COMMANDS, *self.machine.commands()])
        return {"refused": f"unknown command {name!r}; known: {known}"}

    def command(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """An operator command from this process (tests, the CLI)."""
        return self._on_operator(name, args or {})

    def status(self) -> dict[str, Any]:
        return {
            "state": self.safety.state.value,
            "devices_up": sorted(self.safety.up),
            "degraded": sorted(self.safety.degraded),
            **self.machine.status(),
            "tasks": {n: s.restarts for n, s in self.supervisor.status.items()},
            "reporting": {
                **self.reporter.stats(),
                "safety_report_errors": self.counters["report_errors"],
            },
        }

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
            **self.machine.health(),
        }

    def _state_extra(self) -> dict[str, Any]:
        return self.machine.state_extra(self.health())

    def _write_health(self, force: bool = False, status: str | None = None) -> None:
        self.faults.sync()  # the report pass of every apply_safety ends here
        health = self.health()
        if status is not None:  # the last word: what the node counted over its whole run
            health = {**health, "healthy": False, "state": status,
                      "counters": self.machine.final_counters()}  # fmt: skip
        if not force and health == self._health:
            return
        self._health = health
        if self.health_file is None:
            return
        # written by the reporting thread: a full or slow disk never holds up the loop
        self.reporter.submit(_write_json, self.health_file, {**health, "t": time.time()})


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n")
    os.replace(tmp, path)
