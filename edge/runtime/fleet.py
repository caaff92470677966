"""The node on the fleet link: parcel records, safety transitions and alarms out; the brain's
route answers and the operators' commands (start, stop, reset, status) in.

Commands arrive on the link's command thread; each is handed to the node's event loop, which
owns the cell and safety state. Route answers are handed over without waiting (the brain
gets "accepted"); operator commands wait for the node's verdict, so a refused reset answers
with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.cell.events import AskBrain
from edge.cell.record import ParcelRecord
from edge.cell.wiring import BrainBinding
from edge.runtime.config_apply import register_commands as register_config_commands
from edge.runtime.config_apply import set_status_link
from edge.runtime.reporter import Reporter
from fleet_link.commands import CommandError
from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink

log = logging.getLogger("wolfpack.node.fleet")

RouteCallback = Callable[[int, str | None, float], None]
OperatorCallback = Callable[[str, dict[str, Any]], dict[str, Any]]

_ROUTE_SCHEMA = {
    "type": "object",
    "required": ["parcel", "chute"],
    "properties": {
        "parcel": {"type": "integer", "minimum": 1},
        "chute": {"type": ["integer", "string", "null"]},
        "reason": {"type": "string"},
    },
}
_EMPTY = {"type": "object", "additionalProperties": False}


class NodeLink(EdgeLink):
    """An ``EdgeLink`` whose retained state also carries the node's own status."""

    extra_state: Callable[[], dict[str, Any]] | None = None

    def state(self, status: str = "online", reason: str = "") -> dict[str, Any]:
        body = super().state(status, reason)
        if self.extra_state is not None:
            try:
                body.update(self.extra_state())
            except Exception:  # the state must go out even if a part of it fails
                log.exception("node state could not be assembled")
        return body


class FleetBridge:
    def __init__(
        self,
        cfg: MqttConfig,
        site: str,
        node: str,
        brain: BrainBinding | None,
        loop: asyncio.AbstractEventLoop,
        on_route: RouteCallback | None,
        on_operator: OperatorCallback,
        *,
        firmware_version: str = "",
        config_version: str = "",
        reporter: Reporter | None = None,
        on_ask_failed: Callable[[int, str], None] | None = None,
        commands: dict[str, str] | None = None,
    ) -> None:
        """``brain``/``on_route``: the brain's route answers (None: a machine that attaches
        them later with :meth:`attach_brain`, or none); ``commands``: a machine's own
        operator commands (name -> help), answered through ``on_operator`` as start/stop."""
        self.brain = brain
        # Everything this bridge sends goes through the reporter's thread: the node's loop
        # never waits for the outbox's disk, and a failure there never reaches the loop.
        self.reporter = reporter or Reporter("fleet-report")
        self.on_ask_failed = on_ask_failed
        self.on_record: Callable[[ParcelRecord], None] | None = None
        self.loop = loop
        self.on_route = on_route
        self.on_operator = on_operator
        self.link = NodeLink(
            cfg, site, node, firmware_version=firmware_version, config_version=config_version
        )
        reg = self.link.commands
        if brain is not None and on_route is not None:
            self.attach_brain(brain, on_route, on_ask_failed)
        for name, text in (
            ("start", "start the belt and sorting (from ready)"),
            ("stop", "stop the belt in an orderly way"),
            ("reset", "leave e-stop or fault (refused while the cause persists)"),
            ("status", "the cell's safety state, devices and counters"),
            *(commands or {}).items(),
        ):
            reg.register(name, self._operator(name), None if name in (commands or {})
                         else _EMPTY, text)  # fmt: skip
        register_config_commands(reg)  # config_push (edge/runtime/config_apply.py)

    def attach_brain(
        self,
        brain: BrainBinding,
        on_route: RouteCallback,
        on_ask_failed: Callable[[int, str], None] | None = None,
    ) -> None:
        """Take the brain's route answers (command ``brain.answer_command``) from now on."""
        self.brain = brain
        self.on_route = on_route
        self.on_ask_failed = on_ask_failed
        # on the priority lane: a route answer is never behind a flood of other commands
        self.link.commands.register(brain.answer_command, self._route, _ROUTE_SCHEMA,
                                    "the brain's destination", priority=True)  # fmt: skip

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    def start(self) -> None:
        self.link.start()
        set_status_link(self.link)

    def stop(self, timeout: float = 5.0) -> None:
        set_status_link(None)
        self.link.stop(timeout)

    # ---- out (returns at once; stored by the reporter thread) -----------------------------
    def ask(self, ask: AskBrain, now: float) -> None:
        data: dict[str, Any] = {
            "parcel": ask.parcel_id,
            "label": ask.label,
            "deadline_ms": round(max(0.0, ask.deadline_t - now) * 1000, 1),
        }
        if ask.class_name is not None:
            data["class"] = ask.class_name
        if ask.size_mm is not None:
            data["size_mm"] = list(ask.size_mm)
        self.reporter.submit(self._ask, ask.parcel_id, data)

    def _ask(self, parcel_id: int, data: dict[str, Any]) -> None:
        try:
            if self.brain is None:
                raise RuntimeError("no brain binding attached to the fleet link")
            self.link.publish_event(self.brain.request_event, data)
        except Exception as exc:  # not stored: the cell decides locally, at once
            if self.on_ask_failed is not None:
                self.loop.call_soon_threadsafe(
                    self.on_ask_failed, parcel_id, f"request not stored: {exc}"
                )
            raise

    def record(self, record: ParcelRecord) -> None:
        self.reporter.submit(lambda: self.link.publish_event("parcel", record.to_json()))
        if self.on_record is not None:  # telemetry's per-chute counts (edge/node/telemetry.py)
            try:
                self.on_record(record)
            except Exception:  # counting must never break the cell's loop
                log.exception("on_record failed")

    def recorded_parcels(self, limit: int = 256) -> set[tuple[int, int]]:
        """(parcel id, lead count) of the last ``limit`` parcel records in the outbox: a
        node killed after committing a record and before its journal said so must not have
        the parcel restored and recorded twice (edge/node/parcel_journal.py)."""
        out: set[tuple[int, int]] = set()
        for data in self.link.recent_events("parcel", limit):
            pid, lead = data.get("parcel_id"), data.get("lead_count")
            if type(pid) is int and type(lead) is int:
                out.add((pid, lead))
        return out

    def telemetry(self, group: str, values: dict[str, Any], reason: str) -> None:
        """A telemetry message the node's deadbands let through (edge/node/telemetry.py)."""
        self.reporter.submit(self.link.publish_telemetry, group, values, reason)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.reporter.submit(self.link.publish_event, kind, data)

    def fault(self, code: str, active: bool, **info: Any) -> None:
        self.reporter.submit(self.link.set_fault, code, active, **info)

    def request_state(self) -> None:
        self.reporter.submit(self.link.request_state)

    # ---- in (command thread) ---------------------------------------------------------------
    def _route(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.brain is not None and self.on_route is not None  # registered by attach_brain
        chute = args.get("chute")
        name = None if chute is None else f"{self.brain.chute_prefix}{chute}"
        received = time.monotonic()
        self.loop.call_soon_threadsafe(self.on_route, int(args["parcel"]), name, received)
        return {"accepted": True}

    def _operator(self, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def handle(args: dict[str, Any]) -> dict[str, Any]:
            async def run() -> dict[str, Any]:
                return self.on_operator(name, args)

            try:
                future = asyncio.run_coroutine_threadsafe(run(), self.loop)
                result = future.result(timeout=5.0)
            except TimeoutError:
                raise CommandError("timeout", f"the node did not act on {name!r} in 5 s") from None
            if result.get("refused"):
                raise CommandError("refused", str(result["refused"]))
            return result

        return handle
