"""One view of a running simulated MCU, whichever firmware runs it: the Python one
(sim_hardware/mcu, in a thread or a process) or the C reference firmware's host build
(firmware/, always a process). The MCU link tests use it through the ``mcu_kind`` /
``start_mcu`` / ``mcu_firmware`` fixtures (tests/conftest.py), so every test runs against both.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim_hardware.mcu import SimMcuOptions, SimMcuProcess, SimMcuThread
from sim_hardware.mcu.c_firmware import CFirmwareProcess
from sim_hardware.mcu.firmware import ActionRecord, OutputChange

KINDS = ("python", "c")
# What each firmware says in identify_response.
IDENTITY = {
    "python": {"firmware": "wolfpack-sim-mcu", "rx_window": 8},
    "c": {"firmware": "wolfpack-mcu", "rx_window": 8},
}


class SimulatedMcu:
    """A running simulated MCU: its pty ``path`` and what tests ask of it."""

    kind: str
    path: str

    @property
    def identity(self) -> dict[str, Any]:
        return IDENTITY[self.kind]

    def executed(self, name: str | None = None) -> list[dict[str, Any]]:
        """The fields of every command the firmware executed (of ``name``), in order."""
        return [f for n, f in self._executed() if name is None or n == name]

    def _executed(self) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def actions_log(self) -> list[ActionRecord]:
        raise NotImplementedError

    def output_log(self) -> list[OutputChange]:
        raise NotImplementedError

    def outputs(self) -> list[int]:
        raise NotImplementedError

    def safe_values(self) -> list[int]:
        raise NotImplementedError

    def watchdog_trips(self) -> list[float]:
        raise NotImplementedError

    def last_host_frame(self) -> float | None:
        raise NotImplementedError

    def held_sent(self) -> int:
        raise NotImplementedError

    def unplugs(self) -> int:
        raise NotImplementedError

    def dropped_from_host(self) -> int:
        raise NotImplementedError

    def set_input(self, pin: int, value: int) -> None:
        raise NotImplementedError

    def unplug(self, replug_after_s: float | None = None) -> None:
        raise NotImplementedError

    def replug(self) -> None:
        raise NotImplementedError

    def stall(self, seconds: float) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class PythonThreadMcu(SimulatedMcu):
    kind = "python"

    def __init__(self, sim: SimMcuThread, path: str) -> None:
        self.sim, self.path = sim, path

    def _fw(self, fn: Any) -> Any:
        return self.sim.call(lambda: fn(self.sim.sim.firmware))  # type: ignore[union-attr]

    def _executed(self) -> list[tuple[str, dict[str, Any]]]:
        return self._fw(lambda fw: [(n, dict(f)) for n, f in fw.executed])

    def actions_log(self) -> list[ActionRecord]:
        return self._fw(lambda fw: list(fw.actions_log))

    def output_log(self) -> list[OutputChange]:
        return self._fw(lambda fw: list(fw.output_log))

    def outputs(self) -> list[int]:
        return self._fw(lambda fw: list(fw.outputs))

    def safe_values(self) -> list[int]:
        return self._fw(lambda fw: list(fw.safe_values))

    def watchdog_trips(self) -> list[float]:
        return self._fw(lambda fw: list(fw.watchdog_trips))

    def last_host_frame(self) -> float | None:
        return self._fw(lambda fw: fw.last_host_frame)

    def held_sent(self) -> int:
        return self._fw(lambda fw: fw.held_sent)

    def unplugs(self) -> int:
        return self.sim.call(lambda: self.sim.sim.wire.stats.unplugs)  # type: ignore[union-attr]

    def dropped_from_host(self) -> int:
        return self.sim.call(
            lambda: self.sim.sim.wire.from_host_faults.dropped  # type: ignore[union-attr]
        )

    def set_input(self, pin: int, value: int) -> None:
        self.sim.call(self.sim.sim.set_input, pin, value)  # type: ignore[union-attr]

    def unplug(self, replug_after_s: float | None = None) -> None:
        self.sim.call(self.sim.sim.unplug, replug_after_s)  # type: ignore[union-attr]

    def replug(self) -> None:
        self.sim.call(self.sim.sim.replug)  # type: ignore[union-attr]

    def stall(self, seconds: float) -> None:
        self.sim.call(self.sim.sim.stall, seconds)  # type: ignore[union-attr]

    def reset(self) -> None:
        self.sim.call(self.sim.sim.reset)  # type: ignore[union-attr]


class PythonProcessMcu(SimulatedMcu):
    kind = "python"

    def __init__(self, sim: SimMcuProcess, path: str) -> None:
        self.sim, self.path = sim, path

    def _executed(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, dict(f)) for n, f in self.sim.get("firmware.executed")]

    def actions_log(self) -> list[ActionRecord]:
        return list(self.sim.get("firmware.actions_log"))

    def output_log(self) -> list[OutputChange]:
        return list(self.sim.get("firmware.output_log"))

    def outputs(self) -> list[int]:
        return list(self.sim.get("firmware.outputs"))

    def safe_values(self) -> list[int]:
        return list(self.sim.get("firmware.safe_values"))

    def watchdog_trips(self) -> list[float]:
        return list(self.sim.get("firmware.watchdog_trips"))

    def last_host_frame(self) -> float | None:
        return self.sim.get("firmware.last_host_frame")

    def held_sent(self) -> int:
        return int(self.sim.get("firmware.held_sent"))

    def unplugs(self) -> int:
        return int(self.sim.get("wire.stats.unplugs"))

    def dropped_from_host(self) -> int:
        return int(self.sim.get("wire.from_host_faults.dropped"))

    def set_input(self, pin: int, value: int) -> None:
        self.sim.call("set_input", pin, value)

    def unplug(self, replug_after_s: float | None = None) -> None:
        self.sim.call("unplug", replug_after_s)

    def replug(self) -> None:
        self.sim.call("replug")

    def stall(self, seconds: float) -> None:
        self.sim.call("stall", seconds)

    def reset(self) -> None:
        self.sim.call("reset")


class CHostMcu(SimulatedMcu):
    kind = "c"

    def __init__(self, proc: CFirmwareProcess, path: str) -> None:
        self.proc, self.path = proc, path

    def _fresh(self) -> CFirmwareProcess:
        if self.proc._proc is not None and self.proc._proc.poll() is None:
            self.proc.refresh()
        return self.proc

    def _executed(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self._fresh().executed)

    def actions_log(self) -> list[ActionRecord]:
        return list(self._fresh().actions_log)

    def output_log(self) -> list[OutputChange]:
        return list(self._fresh().output_log)

    def _bits(self, key: str) -> list[int]:
        bits = self.proc.sync()[key]
        return [(bits >> i) & 1 for i in range(self.proc.options.outputs)]

    def outputs(self) -> list[int]:
        return self._bits("outputs")

    def safe_values(self) -> list[int]:
        return self._bits("safe")

    def watchdog_trips(self) -> list[float]:
        return list(self._fresh().watchdog_trips)

    def last_host_frame(self) -> float | None:
        return self._fresh().last_host_frame

    def held_sent(self) -> int:
        return self._fresh().held_sent

    def unplugs(self) -> int:
        return int(self.proc.sync()["unplugs"])

    def dropped_from_host(self) -> int:
        return int(self.proc.sync()["dropped_from_host"])

    def set_input(self, pin: int, value: int) -> None:
        self.proc.set_input(pin, value)
        self.proc.sync()

    def unplug(self, replug_after_s: float | None = None) -> None:
        self.proc.unplug(replug_after_s)
        self.proc.sync()

    def replug(self) -> None:
        self.proc.replug()
        self.proc.sync()

    def stall(self, seconds: float) -> None:
        self.proc.stall(seconds)
        self.proc.sync()

    def reset(self) -> None:
        self.proc.reset()
        self.proc.sync()


@contextlib.contextmanager
def open_mcu(
    kind: str, link: str | Path, *, process: bool = False, **options: Any
) -> Iterator[SimulatedMcu]:
    """Start a simulated MCU of ``kind`` at ``link``; ``process`` puts the Python firmware in
    its own process (timing tests: no shared interpreter lock); the C firmware always is."""
    options.setdefault("seed", 1)
    opts = SimMcuOptions(link=str(link), **options)
    if kind == "c":  # timing tests ask for real-time scheduling, as SimMcuProcess does
        with CFirmwareProcess(opts, realtime=process) as proc:
            yield CHostMcu(proc, str(link))
    elif kind == "python" and process:
        with SimMcuProcess(opts) as sim:
            yield PythonProcessMcu(sim, str(link))
    elif kind == "python":
        # The sim shares this process with the host link: switch threads often, or its timers
        # miss by the default 5 ms switch interval (an artefact of running both in one process).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)
        sim = SimMcuThread(opts).start()
        try:
            yield PythonThreadMcu(sim, str(link))
        finally:
            sim.stop()
            sys.setswitchinterval(interval)
    else:
        raise ValueError(f"unknown firmware kind {kind!r} (one of {', '.join(KINDS)})")
