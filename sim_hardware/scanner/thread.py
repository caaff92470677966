"""Runs a SimScanner in a background thread with its own loop (for tests and benches)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sim_hardware.loop_call import call_on_loop
from sim_hardware.scanner.device import ScannerOptions, SimScanner

T = TypeVar("T")


class SimScannerThread:
    """``with SimScannerThread(opts) as t: t.call(t.sim.scan, "ABC")``: every control call is
    marshalled onto the scanner's loop."""

    def __init__(self, options: ScannerOptions) -> None:
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-scanner")
        self._thread.daemon = True
        self.sim = SimScanner(options)

    def start(self) -> SimScannerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(5)
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the scanner's loop and return its result."""
        return call_on_loop(self._loop, fn, *args)

    def scan(self, text: str) -> bool:
        return self.call(self.sim.scan, text)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.call(self.sim.stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> SimScannerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
