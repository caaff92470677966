"""Shared set-up for MCU tests: a simulated MCU on a real pty in a background thread.

The sim shares the test process with the host link, so both threads contend for the GIL; its
default switch interval (5 ms) would make the simulated MCU's timers miss by milliseconds, an
artefact of running both in one process (the CLI runs the sim in its own process). Tests
shorten the interval while a sim runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim_hardware.mcu import SimMcuOptions, SimMcuProcess, SimMcuThread


@contextlib.contextmanager
def sim_mcu(tmp_path: Path, **options: Any) -> Iterator[tuple[SimMcuThread, str]]:
    """A running simulated MCU and the symlink path of its pty."""
    link = str(tmp_path / "mcu")
    options.setdefault("seed", 1)
    sim = SimMcuThread(SimMcuOptions(link=link, **options))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    sim.start()
    try:
        yield sim, link
    finally:
        sim.stop()
        sys.setswitchinterval(interval)


@contextlib.contextmanager
def sim_mcu_process(tmp_path: Path, **options: Any) -> Iterator[tuple[SimMcuProcess, str]]:
    """A simulated MCU in its own process (for timing assertions) and its pty path."""
    link = str(tmp_path / "mcu")
    options.setdefault("seed", 1)
    with SimMcuProcess(SimMcuOptions(link=link, **options)) as sim:
        yield sim, link
