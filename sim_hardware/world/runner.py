"""Runs a world in real time: a thread moves it to the wall clock every ``step_s``.

Used beside the simulated MCU on a real pty (whose firmware keeps ``time.monotonic()``).
The world trails the clock by ``lag_s`` so that inputs from other threads (an MCU output
firing now) are still in the world's future when they arrive; the belt itself is exact at
any instant, so the encoder the MCU reads does not trail.
"""

from __future__ import annotations

import threading

from sim_hardware.world.clock import Clock, RealClock
from sim_hardware.world.world import CellWorld


class RealTimeRunner:
    def __init__(
        self,
        world: CellWorld,
        clock: Clock | None = None,
        step_s: float = 0.001,
        lag_s: float = 0.005,
    ) -> None:
        self.world = world
        self.clock = clock or RealClock()
        self.step_s = step_s
        self.lag_s = lag_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-world", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.step_s):
                self.world.catch_up(self.clock.now() - self.lag_s)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> RealTimeRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.error is not None:
            raise RuntimeError("the world runner failed") from self.error

    def __enter__(self) -> RealTimeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
