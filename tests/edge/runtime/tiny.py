"""A machine of a few lines with no hardware, hosted by the real runtime in the tests.

Its "motor" is an in-memory device that writes every command into a shared journal, so a
test can see the order in which the devices were commanded and the reports were made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge.runtime.machine import Machine, MachineContext
from edge.safety.config import SafetyConfig
from edge.safety.machine import CancelAllStrokes, SafetyAction, StartBelt, StopBelt


class TinyConfig(BaseModel):
    """The ``tiny:`` section: which MCU drives the motor (checked against ``mcus``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    motor_mcu: str = Field(description="the MCU the motor hangs on")
    safety: SafetyConfig = Field(default_factory=SafetyConfig)

    def board_problems(self, sections: dict[str, object]) -> list[str]:
        mcus = sections.get("mcus")
        names = [m.name for m in mcus] if isinstance(mcus, list) else []
        if self.motor_mcu not in names:
            return [f"tiny.motor_mcu: {self.motor_mcu!r} is not an MCU of this board"]
        return []


class Motor:
    """The device: commands land in ``journal`` the moment they are given."""

    def __init__(self, journal: list[tuple[str, str]]) -> None:
        self.journal = journal
        self.running = False

    def command(self, what: str) -> None:
        self.running = what == "run" or (self.running and what == "cancel")
        self.journal.append(("device", what))


class TinyMachine(Machine):
    kind = "tiny"
    label = "tiny"

    def __init__(self, board: Any, ctx: MachineContext) -> None:
        self.cfg: TinyConfig = board.tiny
        self.ctx = ctx
        self.journal: list[tuple[str, str]] = []
        self.motor = Motor(self.journal)
        self.ticks = 0
        self.fail_reports = False
        self.fail_acting = False
        self.jogs = 0

    @property
    def safety_config(self) -> SafetyConfig:
        return self.cfg.safety

    @property
    def devices(self) -> frozenset[str]:
        return frozenset({"mcu"})

    async def open(self) -> None:
        self.journal.append(("life", "open"))
        self.host.apply_safety(self.host.safety.device_up("mcu", time.monotonic()))

    def act_on_safety(self, actions: Sequence[SafetyAction]) -> None:
        if self.fail_acting:
            raise RuntimeError("acting broke")
        for action in actions:
            if isinstance(action, StopBelt):
                self.motor.command("stop")
            elif isinstance(action, CancelAllStrokes):
                self.motor.command("cancel")
            elif isinstance(action, StartBelt):
                self.motor.command("run")

    def report_safety(self, action: SafetyAction) -> None:
        self.journal.append(("report", type(action).__name__))
        if self.fail_reports:
            raise OSError("disk full")

    def tick(self, now: float) -> None:
        self.ticks += 1

    def commands(self) -> dict[str, str]:
        return {"jog": "move the motor a little (only while ready)"}

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if self.host.safety.state.value != "ready":
            return {"refused": f"jog needs ready, the machine is {self.host.safety.state.value}"}
        self.jogs += int(args.get("steps", 1))
        return {"jogs": self.jogs}

    def status(self) -> dict[str, Any]:
        return {"jogs": self.jogs}

    def health(self) -> dict[str, Any]:
        if self.fail_reports:
            raise OSError("health broke too")
        return {"motor_running": self.motor.running}

    def device_reason(self, device: str) -> str | None:
        return "motor cable unplugged" if device == "mcu" else None

    async def make_safe(self) -> None:
        self.journal.append(("life", "make_safe"))

    async def close(self) -> None:
        self.journal.append(("life", "close"))

    def finish(self) -> None:
        self.journal.append(("life", "finish"))


def create_machine(board: Any, ctx: MachineContext) -> TinyMachine:
    return TinyMachine(board, ctx)
