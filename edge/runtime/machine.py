"""The interface every machine kind implements to be hosted by the node runtime.

A *machine* is one kind of warehouse equipment a board drives: the diverter sorting line, the
sorting arm, the vehicle. It is a pure controller core (facts in, actions out, no I/O, no
clock: ``edge/cell/`` is the model) plus the adapters that connect the core to its drivers.
The *runtime* (``edge.runtime.node.Node``) is everything else a node needs and every machine
shares: process life, the task supervisor, the safety state machine and its operator
commands (start / stop / reset / status), the fleet link, the health file, systemd notify,
faults and state on MQTT, and an orderly shutdown. See docs/runtime.md.

The safety-first contract (docs/runtime.md, "The safety path"): when the safety machine
decides, the runtime calls :meth:`Machine.act_on_safety` with every action of the decision
*before* anything is reported, and that method only commands devices (a write that leaves
before it returns, a task handed the work); it never reports, logs at length, waits, or
raises on purpose. Reporting follows in :meth:`Machine.report_safety`, whose failures the
runtime counts and swallows, so nothing on the reporting path can delay or skip a stop.

Calls into a machine all happen on the node's one asyncio loop (drivers in threads hand
their facts to it with ``loop.call_soon_threadsafe``), so its core never sees two facts at
once. Add to this interface, never rename: other machines build on it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from edge.safety.config import SafetyConfig
from edge.safety.machine import SafetyAction, SafetyMachine

if TYPE_CHECKING:
    from edge.config.board import BoardBase
    from edge.runtime.fleet import FleetBridge
    from edge.runtime.reporter import Reporter
    from edge.runtime.supervisor import Supervisor
    from edge.runtime.systemd import Notifier


class MachineError(Exception):
    """A machine cannot be built or started from this config; the message says where and why."""


@dataclass(frozen=True)
class MachineContext:
    """What the runtime knows of its surroundings when it builds a machine.

    ``state_dir``: where the machine may keep state across restarts (a journal), or None when
    the node has nowhere to keep it (then it keeps none).
    """

    config_version: str = ""
    health_file: Path | None = None
    state_dir: Path | None = None
    start_when_ready: bool = False


class Host(Protocol):
    """What the runtime offers a machine (``Machine.host`` once bound). Everything here is
    safe to call from the node's loop; nothing blocks on disk or network."""

    board: BoardBase
    config_version: str
    loop: asyncio.AbstractEventLoop | None
    safety: SafetyMachine
    supervisor: Supervisor
    reporter: Reporter
    notifier: Notifier
    counters: Counter[str]
    fleet: FleetBridge | None

    @property
    def closing(self) -> bool:
        """True once shutdown began: devices going away are the plan, not faults."""
        ...

    def apply_safety(self, actions: list[SafetyAction]) -> None:
        """Hand the safety machine's actions over: the machine's devices act on them first,
        then they are reported. Call it with what a ``self.host.safety.<input>(...)`` returned."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop as a background task kept until it ends."""
        ...

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Publish an event on the fleet link (through the reporting thread); no-op without one."""
        ...

    def request_state(self) -> None:
        """Republish the retained state soon (after something in ``state_extra`` changed)."""
        ...


class Machine(ABC):
    """One machine kind on the runtime. Subclass it; the registry's factory builds it.

    Life cycle, as the runtime drives it::

        m = factory(board, ctx)          # pure: parse nothing, open nothing
        m.bind(host)                     # the runtime's services are there
        await m.open()                   # open drivers, start tasks (host.supervisor)
        ... m.act_on_safety / m.report_safety / m.tick / m.command ... (on the loop)
        await m.make_safe()              # shutdown: after the runtime's own safety stop
        await m.close()                  # drivers closed
        m.finish()                       # after the last report: persist what must survive

    Only :attr:`kind`, :attr:`safety_config`, :attr:`devices`, :meth:`open`,
    :meth:`act_on_safety` and :meth:`close` are required; the rest have defaults that do
    nothing.
    """

    kind: ClassVar[str] = ""  # the config's ``machine:`` value, e.g. "diverter"
    label: ClassVar[str] = "machine"  # how logs and systemd's STATUS name it, e.g. "cell"

    host: Host

    def bind(self, host: Host) -> None:
        """Called once by the runtime before :meth:`open`; keep ``host`` and build what needs
        the runtime's services (the reporter, the supervisor)."""
        self.host = host

    # ---- what the safety machine watches -----------------------------------------------
    @property
    @abstractmethod
    def safety_config(self) -> SafetyConfig:
        """The safety section (e-stop stop time, what losing each device does)."""

    @property
    @abstractmethod
    def devices(self) -> frozenset[str]:
        """The devices whose loss the safety machine handles (names of DeviceLossPolicy)."""

    # ---- life -----------------------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Open the drivers and start the machine's tasks with ``host.supervisor.start``.
        Report devices with ``host.apply_safety(host.safety.device_up(name, t))`` as they
        come up (and ``device_lost`` as they go). Must not wait for a device to answer."""

    async def make_safe(self) -> None:
        """Shutdown, after the runtime stopped the machine through the safety machine:
        leave the devices safe (cancel queued motion, outputs off). Bound every wait (a
        device may be the reason we stop); log and go on when one does not answer."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Close the drivers (the supervisor's tasks are already stopped)."""

    def finish(self) -> None:
        """The very end, after the last report and the health file: persist what a
        restarted node needs (a journal). Runs once."""
        return None

    # ---- the safety path -------------------------------------------------------------------
    @abstractmethod
    def act_on_safety(self, actions: Sequence[SafetyAction]) -> None:
        """Apply the safety machine's actions to the devices NOW, before any report: stop
        motion, cancel queued actions, make outputs safe, and feed the core what it must
        know (halt / resume). Commands leave before this returns or are handed to tasks;
        never wait, never report here. Ignore actions that do not concern this machine."""

    def report_safety(self, action: SafetyAction) -> None:
        """The machine's own report of one action (a log line, an event), after every action
        of the decision was acted on. May raise: the runtime counts and swallows it. The
        runtime itself reports transitions, degraded devices, refusals and alarms."""
        return None

    def tick(self, now: float) -> None:
        """Every runtime tick (20 ms), after the safety machine's own tick: heartbeats,
        deadlines, the core's time facts."""
        return None

    # ---- operators and health ---------------------------------------------------------
    def commands(self) -> dict[str, str]:
        """The machine's own operator commands: name -> one-line help. start / stop / reset
        / status belong to the runtime and cannot be taken."""
        return {}

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one of :meth:`commands` on the loop; return the result. Return
        ``{"refused": why}`` to refuse (the fleet link answers with the reason)."""
        return {"refused": f"unknown command {name!r}"}

    def status(self) -> dict[str, Any]:
        """Extra keys of the ``status`` command's answer (counters, active work)."""
        return {}

    def health(self) -> dict[str, Any]:
        """Extra keys of the health file (kept small: it is rewritten on every change)."""
        return {}

    def state_extra(self, health: dict[str, Any]) -> dict[str, Any]:
        """What the retained MQTT state carries beside the link's own fields, given the
        runtime's health. Default: ``{kind: health}``."""
        return {self.kind: health}

    def device_reason(self, device: str) -> str | None:
        """Why ``device`` is not up, as the fault message shows it; None: a generic text."""
        return None

    def attach_fleet(self, fleet: FleetBridge) -> None:
        """The fleet link is built (not yet started): register machine-specific inbound
        commands on ``fleet.link.commands`` (a brain's answers) here."""
        return None

    def final_counters(self) -> dict[str, Any]:
        """What the last health file written at shutdown carries as ``counters``."""
        return dict(self.host.counters)
