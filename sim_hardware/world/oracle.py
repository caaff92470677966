"""An ideal controller that reads the truth: fires each diverter exactly when the parcel's
centre is on it. It proves the world (a perfect sorter sorts perfectly) and is the yardstick
a real controller's divert error is compared with. ``offset_mm`` shifts every stroke (a
deliberate timing error, for tests).
"""

from __future__ import annotations

from sim_hardware.world.world import CellWorld


class OracleController:
    def __init__(self, world: CellWorld, stroke_s: float = 0.05, offset_mm: float = 0.0) -> None:
        self.world = world
        self.stroke_s = stroke_s
        self.offset_mm = offset_mm
        self._planned: set[int] = set()

    def plan(self) -> None:
        """Schedule strokes for parcels inducted since the last call (call after each step)."""
        w = self.world
        for pid in w.on_belt():
            if pid in self._planned:
                continue
            self._planned.add(pid)
            rec = w.score.records[pid]
            station = rec.intended
            x = w.diverters[station].position_mm + self.offset_mm
            pos = w.count_when_centre_at(pid, x) / w.config.belt.counts_per_mm
            at = w.belt.time_of(pos)
            if at is not None and at >= w.t:
                w.stroke(station, at, self.stroke_s)

    def run(self, until_s: float, step_s: float = 0.01) -> None:
        while self.world.t < until_s:
            self.world.advance_to(min(until_s, self.world.t + step_s))
            self.plan()
