"""Shared set-up for MCU tests: a simulated MCU on a real pty in a background thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim_hardware.mcu import SimMcuOptions, SimMcuThread


@contextlib.contextmanager
def sim_mcu(tmp_path: Path, **options: Any) -> Iterator[tuple[SimMcuThread, str]]:
    """A running simulated MCU and the symlink path of its pty."""
    link = str(tmp_path / "mcu")
    options.setdefault("seed", 1)
    sim = SimMcuThread(SimMcuOptions(link=link, **options))
    sim.start()
    try:
        yield sim, link
    finally:
        sim.stop()
