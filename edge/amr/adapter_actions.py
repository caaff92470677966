"""The vehicle's own actions (what the VDA 5050 core hands over with ``StartAction``): pick and
drop, charging, fine positioning, object detection.

This vehicle class has no load-handling device of its own on the drive MCU yet: pick and drop
take a fixed time (``LOAD_S``, or the action's ``duration`` parameter in seconds) during which
the vehicle stands (the core holds it for a HARD/SOFT action), as a tote carrier with a
passive roller deck does while a station's conveyor moves the tote. Charging is real: the
charging contacts are switched through the drive MCU and the action finishes when the battery
reports charging (FAILED after ``CHARGE_START_S`` without current).

Progress comes back through ``progress(action_id, status, result)``, on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge.amr.config import AmrConfig
from edge.amr.vehicle_state import (
    CancelAction,
    EndAction,
    PauseAction,
    ResumeAction,
    StartAction,
)

LOAD_S = 2.0  # pick / drop without a duration parameter
QUICK_S = 0.5  # finePositioning, detectObject
CHARGE_START_S = 10.0  # startCharging fails when no charging current flows by then

Progress = Callable[[str, str, str | None], None]


class Charger(Protocol):
    def set_charging(self, on: bool) -> None: ...


@dataclass
class _Timed:
    action_id: str
    remaining_s: float
    handle: asyncio.TimerHandle | None = None
    started: float = 0.0


class ActionRunner:
    """Runs the actions the vehicle core starts; one timer per timed action."""

    def __init__(
        self,
        cfg: AmrConfig,
        loop: asyncio.AbstractEventLoop,
        progress: Progress,
        charger: Charger | None,
    ) -> None:
        self.cfg = cfg
        self.loop = loop
        self.progress = progress
        self.charger = charger
        self._timed: dict[str, _Timed] = {}
        self._charge_wait: dict[str, tuple[bool, float]] = {}  # action -> (want on, deadline)
        self._charging = False

    def command(self, c: Any) -> None:
        if isinstance(c, StartAction):
            self._start(c)
        elif isinstance(c, CancelAction):
            self._end(c.action_id, "FAILED", "cancelled")
        elif isinstance(c, EndAction):
            self._end(c.action_id, "FINISHED", None)
        elif isinstance(c, PauseAction):
            t = self._timed.get(c.action_id)
            if t is not None and t.handle is not None:
                t.handle.cancel()
                t.handle = None
                t.remaining_s = max(0.0, t.remaining_s - (time.monotonic() - t.started))
        elif isinstance(c, ResumeAction):
            t = self._timed.get(c.action_id)
            if t is not None and t.handle is None:
                self._arm(t)

    def _start(self, c: StartAction) -> None:
        a = c.action
        kind = a.action_type
        if kind in ("pick", "drop"):
            try:
                duration = float(a.param("duration", LOAD_S))
            except (TypeError, ValueError):
                duration = -1.0
            if not 0 <= duration <= 600:
                self.progress(a.action_id, "FAILED", "duration must be 0..600 s")
                return
            self._run_timed(a.action_id, duration)
        elif kind in ("finePositioning", "detectObject"):
            self._run_timed(a.action_id, QUICK_S)
        elif kind in ("startCharging", "stopCharging"):
            on = kind == "startCharging"
            if self.charger is None:
                self.progress(a.action_id, "FAILED", "no charging contacts on this vehicle")
                return
            self.progress(a.action_id, "RUNNING", None)
            self.charger.set_charging(on)
            if self._charging == on:
                self.progress(a.action_id, "FINISHED", None)
                return
            self._charge_wait[a.action_id] = (on, time.monotonic() + CHARGE_START_S)
            self.loop.call_later(CHARGE_START_S, self._charge_timeout, a.action_id)
        elif kind == "waitForTrigger":
            self.progress(a.action_id, "FAILED", "this vehicle has no trigger input")
        else:
            self.progress(a.action_id, "FAILED", f"{kind} is not run by this vehicle")

    def _run_timed(self, action_id: str, seconds: float) -> None:
        t = _Timed(action_id, seconds)
        self._timed[action_id] = t
        self.progress(action_id, "RUNNING", None)
        self._arm(t)

    def _arm(self, t: _Timed) -> None:
        t.started = time.monotonic()
        t.handle = self.loop.call_later(t.remaining_s, self._end, t.action_id, "FINISHED", None)

    def _end(self, action_id: str, status: str, result: str | None) -> None:
        t = self._timed.pop(action_id, None)
        if t is not None and t.handle is not None:
            t.handle.cancel()
        self._charge_wait.pop(action_id, None)
        self.progress(action_id, status, result)

    def _charge_timeout(self, action_id: str) -> None:
        if action_id in self._charge_wait:
            on, _ = self._charge_wait.pop(action_id)
            what = "no charging current" if on else "charging did not stop"
            self.progress(action_id, "FAILED", f"{what} after {CHARGE_START_S:g} s")

    def battery(self, percent: float, charging: bool) -> None:
        """The battery's report: charging actions finish when the current follows."""
        self._charging = charging
        for action_id, (on, _) in list(self._charge_wait.items()):
            if on == charging:
                del self._charge_wait[action_id]
                self.progress(action_id, "FINISHED", None)

    def close(self) -> None:
        for t in self._timed.values():
            if t.handle is not None:
                t.handle.cancel()
        self._timed.clear()
