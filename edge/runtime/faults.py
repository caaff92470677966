"""The machine's active faults, kept true in the retained state at all times.

What is wrong with a cell follows from the safety machine and the devices, so the list is not
raised and cleared by scattered calls: after every ``apply_safety`` (the node's report pass,
which runs on every safety input and every timer tick) the wanted set is computed from the
machine as it is now and only the difference is reported, through ``FleetBridge.fault`` (the
reporting thread: an ``events/fault`` message and the state's ``faults`` list). A fault is
therefore cleared by the same thing that ends it: a reset, a device back, a released e-stop.

Codes (docs/mqtt.md, "Faults"):

* ``estop`` (critical): the cell is in e-stop: the button pressed, or released and waiting for
  a reset;
* ``cell_fault`` (error): the cell is in fault, with the cause that put it there;
* ``<device>_lost`` for ``mcu``, ``plc``, ``scanner``, ``camera``, ``brain``: the device is
  not up (error when its loss stops the cell, warning when it only degrades it). During boot
  a device that has not come up yet is not a fault until ``BOOT_GRACE_S`` has passed;
* ``safety_alarm`` (critical): the safety machine's alarm (the belt still moving after an
  e-stop's stop time), until the cell is reset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.safety.machine import State

log = logging.getLogger("wolfpack.node.faults")

BOOT_GRACE_S = 10.0  # a device may take this long to come up at boot before it is a fault
DEVICES = ("mcu", "plc", "scanner", "camera", "brain")

FaultInfo = dict[str, str]


@dataclass(frozen=True)
class SafetyView:
    """What the fault list is computed from: the safety machine's state and its devices."""

    state: State
    estop_pressed: bool
    devices: frozenset[str]
    up: frozenset[str]
    policies: Mapping[str, str]  # device -> 'stop' or 'degrade'
    fault_cause: str | None  # the cause of the transition into FAULT
    alarm: str | None  # the safety alarm raised in this e-stop or fault
    reasons: Mapping[str, str]  # device -> why it is not up (when known)
    waiting: frozenset[str]  # devices not up that are still allowed to come up (boot)


def wanted_faults(view: SafetyView) -> dict[str, FaultInfo]:
    """The faults that are true of ``view``: code -> event fields (severity, message, device)."""
    out: dict[str, FaultInfo] = {}
    if view.state is State.ESTOP:
        out["estop"] = {
            "severity": "critical",
            "message": "e-stop pressed" if view.estop_pressed
            else "e-stop released; the cell waits for a reset",
        }  # fmt: skip
    if view.state is State.FAULT:
        out["cell_fault"] = {"severity": "error", "message": view.fault_cause or "cell in fault"}
    for device in sorted(view.devices - view.up - view.waiting):
        stops = view.policies.get(device, "stop") == "stop"
        out[f"{device}_lost"] = {
            "severity": "error" if stops else "warning",
            "message": view.reasons.get(device) or f"{device} is not up",
            "device": device,
        }
    if view.alarm is not None and view.state in (State.ESTOP, State.FAULT):
        out["safety_alarm"] = {"severity": "critical", "message": view.alarm}
    return out


class FaultDiff:
    """The faults reported so far; ``update`` returns what to raise, change and clear."""

    def __init__(self) -> None:
        self.active: dict[str, FaultInfo] = {}

    def update(self, wanted: dict[str, FaultInfo]) -> list[tuple[str, bool, FaultInfo]]:
        changes: list[tuple[str, bool, FaultInfo]] = []
        for code in sorted(self.active.keys() - wanted.keys()):
            changes.append((code, False, self.active[code]))
        for code in sorted(wanted):
            if self.active.get(code) != wanted[code]:  # new, or its message changed
                changes.append((code, True, wanted[code]))
        self.active = dict(wanted)
        return changes


Report = Callable[[str, bool, FaultInfo], None]


class FaultTracker:
    """Computes a node's faults after each safety pass and reports the changes."""

    def __init__(self, node: Any, report: Report | None = None) -> None:
        self.node = node
        self.diff = FaultDiff()
        self.started = time.monotonic()
        self.ever_up: set[str] = set()
        self.alarm: str | None = None
        self._report = report

    def raise_alarm(self, detail: str) -> None:
        """The safety machine's alarm: a fault until the cell leaves e-stop / fault."""
        self.alarm = detail

    def view(self, now: float) -> SafetyView:
        node, safety = self.node, self.node.safety
        self.ever_up |= safety.up
        if self.alarm is not None and safety.state not in (State.ESTOP, State.FAULT):
            self.alarm = None  # reset: the alarm ended with the stop it was about
        missing = safety.devices - safety.up
        booting = safety.state is State.BOOT and now - self.started < BOOT_GRACE_S
        waiting = frozenset(d for d in missing if booting and d not in self.ever_up)
        cause = None
        if safety.state is State.FAULT and safety.history:
            cause = safety.history[-1].cause  # the transition into FAULT (the latest one)
        return SafetyView(
            state=safety.state,
            estop_pressed=safety.estop_pressed,
            devices=frozenset(safety.devices),
            up=frozenset(safety.up),
            policies={d: safety.cfg.device_loss.policy(d) for d in missing},
            fault_cause=cause,
            alarm=self.alarm,
            reasons={d: device_reason(node, d) for d in missing - waiting},
            waiting=waiting,
        )

    def sync(self, now: float | None = None) -> None:
        """Report what changed since the last call (cheap when nothing did)."""
        if self.node._closing:
            return  # devices going away at shutdown are the plan, not faults
        changes = self.diff.update(wanted_faults(self.view(time.monotonic() if now is None
                                                           else now)))  # fmt: skip
        for code, active, info in changes:
            if self._report is not None:
                self._report(code, active, info)
            elif self.node.fleet is not None:
                self.node.fleet.fault(code, active, **info)
            if active:
                log.warning("fault %s: %s", code, info.get("message", ""))
            else:
                log.info("fault %s cleared", code)


def device_reason(node: Any, device: str) -> str:
    """Why ``device`` is not up: the machine's own words (``Machine.device_reason``) when it
    has them, else what the runtime knows (the brain's broker), else a generic text."""
    machine = getattr(node, "machine", None)
    if machine is not None:
        reason = machine.device_reason(device)
        if reason:
            return str(reason)
    if device == "brain":
        fleet = node.fleet
        if fleet is None or not fleet.connected:
            return "broker unreachable"
        return "the brain's answers come too late"
    return f"{device} is not up"
