"""The cell's safety state machine: boot, ready, running, stopping, e-stop, fault.

Pure like the cell core: inputs carry their time, outputs are actions (stop the belt, cancel
every stroke, allow diverting, ...) and a ``Transition`` for every state change with its
cause and time. The rules, in order of precedence:

1. E-stop wins over everything: from any state, a pressed e-stop stops the belt and cancels
   every scheduled stroke. The belt must be still within ``estop_stop_ms``, else an alarm.
2. The belt runs only in ``running`` (and coasts down in ``stopping``): a belt found moving
   in any other state (a restarted node, a start from the PLC's panel) is stopped.
3. Leaving e-stop or fault needs an explicit reset, refused (with the reason) while the
   e-stop is pressed, the belt still moves or a device whose policy is 'stop' is lost.
4. Losing a device follows its policy: 'stop' faults the cell (belt stopped, strokes
   cancelled), 'degrade' keeps it running and reports the degraded set.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge.safety.config import SafetyConfig


class State(enum.Enum):
    BOOT = "boot"
    READY = "ready"
    RUNNING = "running"
    STOPPING = "stopping"
    ESTOP = "estop"
    FAULT = "fault"


@dataclass(frozen=True)
class Transition:
    """A state change: the event published for operators and the parcel records' context."""

    from_state: State
    to_state: State
    cause: str
    t: float


@dataclass(frozen=True)
class StopBelt:
    emergency: bool
    cause: str
    # a fault's stop: the drive's quick-stop ramp (IEC 61800-5-2 SS1), not the normal one;
    # an operator's stop ramps down as configured
    quick: bool = False


@dataclass(frozen=True)
class StartBelt:
    cause: str


@dataclass(frozen=True)
class CancelAllStrokes:
    """Feed the cell core a Halt and cancel every pending MCU action."""

    cause: str


@dataclass(frozen=True)
class AllowDiverting:
    cause: str


@dataclass(frozen=True)
class DegradedChanged:
    devices: frozenset[str]
    cause: str
    t: float


@dataclass(frozen=True)
class Refused:
    command: str
    why: str
    t: float


@dataclass(frozen=True)
class SafetyAlarm:
    detail: str
    t: float


SafetyAction = (
    Transition
    | StopBelt
    | StartBelt
    | CancelAllStrokes
    | AllowDiverting
    | DegradedChanged
    | Refused
    | SafetyAlarm
)


class SafetyMachine:
    def __init__(self, cfg: SafetyConfig, devices: frozenset[str] | set[str]) -> None:
        """``devices``: the devices this cell has; each must be up before the cell is ready,
        except those whose loss only degrades it."""
        for device in devices:
            cfg.device_loss.policy(device)  # refuses unknown names
        self.cfg = cfg
        self.devices = frozenset(devices)
        self.state = State.BOOT
        self.up: set[str] = set()
        self.degraded: frozenset[str] = frozenset()
        self.estop_pressed = False
        self.belt_moving = False
        self.estop_deadline: float | None = None
        self.history: list[Transition] = []
        self._out: list[SafetyAction] = []

    # ---- inputs ------------------------------------------------------------------------------
    def device_up(self, device: str, t: float) -> list[SafetyAction]:
        self._begin()
        self.up.add(self._known(device))
        self._update_degraded(f"{device} up", t)
        if self.state is State.BOOT and self._required_up() and not self.estop_pressed:
            self._go(State.READY, "all required devices up", t)
        return self._out

    def device_lost(self, device: str, why: str, t: float) -> list[SafetyAction]:
        self._begin()
        self.up.discard(self._known(device))
        cause = f"{device} lost: {why}"
        if self.cfg.device_loss.policy(device) == "degrade":
            self._update_degraded(cause, t)
        elif self.state in (State.READY, State.RUNNING, State.STOPPING):
            self._fault(cause, t)
        return self._out

    def estop(self, pressed: bool, t: float) -> list[SafetyAction]:
        self._begin()
        self.estop_pressed = pressed
        if pressed and self.state is not State.ESTOP:
            self.estop_deadline = t + self.cfg.estop_stop_ms / 1000
            self._go(State.ESTOP, "e-stop pressed", t)
            self._out += [StopBelt(True, "e-stop"), CancelAllStrokes("e-stop")]
        return self._out

    def belt(self, moving: bool, t: float) -> list[SafetyAction]:
        """The PLC's belt status (running / at standstill). A belt found moving while the
        cell is not running (a node restarted under a running belt, someone at the PLC's
        panel) is stopped: only an operator's start runs it."""
        self._begin()
        was_moving, self.belt_moving = self.belt_moving, moving
        if moving and not was_moving and self.state not in (State.RUNNING, State.STOPPING):
            self._out.append(
                StopBelt(False, f"belt moving while the cell is {self.state.value}", quick=True)
            )
        if not moving and self.state is State.STOPPING:
            self._go(State.READY, "belt at standstill", t)
        self._check_estop_deadline(t)
        return self._out

    def tick(self, t: float) -> list[SafetyAction]:
        self._begin()
        self._check_estop_deadline(t)
        return self._out

    def fault(self, cause: str, t: float) -> list[SafetyAction]:
        """A fault found elsewhere (a jam, a PLC fault code): stop and wait for a reset."""
        self._begin()
        if self.state not in (State.ESTOP, State.FAULT):
            self._fault(cause, t)
        return self._out

    # ---- operator commands -------------------------------------------------------------------
    def start(self, t: float) -> list[SafetyAction]:
        self._begin()
        if self.state is not State.READY:
            self._out.append(Refused("start", f"the cell is {self.state.value}, not ready", t))
            return self._out
        self._go(State.RUNNING, "start command", t)
        self._out += [AllowDiverting("start"), StartBelt("start command")]
        return self._out

    def stop(self, t: float) -> list[SafetyAction]:
        self._begin()
        if self.state is not State.RUNNING:
            self._out.append(Refused("stop", f"the cell is {self.state.value}, not running", t))
            return self._out
        self._go(State.STOPPING, "stop command", t)
        self._out += [CancelAllStrokes("stop command"), StopBelt(False, "stop command")]
        if not self.belt_moving:
            self._go(State.READY, "belt at standstill", t)
        return self._out

    def reset(self, t: float) -> list[SafetyAction]:
        self._begin()
        why = self._reset_refusal()
        if why is not None:
            self._out.append(Refused("reset", why, t))
            return self._out
        self.estop_deadline = None
        self._go(State.READY, "reset command", t)
        return self._out

    # ---- internals ---------------------------------------------------------------------------
    def _reset_refusal(self) -> str | None:
        if self.state not in (State.ESTOP, State.FAULT):
            return f"nothing to reset: the cell is {self.state.value}"
        if self.estop_pressed:
            return "the e-stop is still pressed; release it first"
        if self.belt_moving:
            return "the belt is still moving"
        missing = sorted(self._lost_required())
        if missing:
            return f"required device(s) still lost: {', '.join(missing)}"
        return None

    def _fault(self, cause: str, t: float) -> None:
        self._go(State.FAULT, cause, t)
        self._out += [StopBelt(False, cause, quick=True), CancelAllStrokes(cause)]

    def _check_estop_deadline(self, t: float) -> None:
        if (
            self.state is State.ESTOP
            and self.estop_deadline is not None
            and self.belt_moving
            and t > self.estop_deadline
        ):
            self._out.append(
                SafetyAlarm(
                    f"belt still moving {self.cfg.estop_stop_ms} ms after the e-stop "
                    "(check the PLC's stop circuit)",
                    t,
                )
            )
            self.estop_deadline = None  # raised once per e-stop

    def _update_degraded(self, cause: str, t: float) -> None:
        degraded = frozenset(
            d
            for d in self.devices - self.up
            if self.cfg.device_loss.policy(d) == "degrade" and self.state is not State.BOOT
        )
        if self.state is State.BOOT:
            degraded = frozenset()
        if degraded != self.degraded:
            self.degraded = degraded
            self._out.append(DegradedChanged(degraded, cause, t))

    def _lost_required(self) -> set[str]:
        return {d for d in self.devices - self.up if self.cfg.device_loss.policy(d) == "stop"}

    def _required_up(self) -> bool:
        return not self._lost_required()

    def _known(self, device: str) -> str:
        if device not in self.devices:
            raise ValueError(f"{device!r} is not a device of this cell: {sorted(self.devices)}")
        return device

    def _go(self, state: State, cause: str, t: float) -> None:
        if state is self.state:
            return
        tr = Transition(self.state, state, cause, t)
        self.state = state
        self.history.append(tr)
        self._out.append(tr)
        if state is State.READY:
            self._update_degraded(cause, t)

    def _begin(self) -> None:
        self._out = []
