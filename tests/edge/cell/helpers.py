"""A small cell for the core's tests: 1 count per mm, so counts read as millimetres."""

from __future__ import annotations

from typing import Any

from edge.cell.config import CellConfig
from edge.cell.controller import CellCore
from edge.cell.events import CellAction, CellEvent, PublishRecord, ScheduleStroke
from edge.cell.record import ParcelRecord

# induction eye at 100 mm, decision point 800, chute a at 1000, b at 2000, reject run-off at
# the belt's end (3000). 1 m/s nominal, 20 ms margin: strokes at least 20 counts ahead.
BASE: dict[str, Any] = {
    "belt": {"counts_per_mm": 1.0, "length_mm": 3000, "nominal_speed_mm_s": 1000},
    "photo_eyes": [
        {"id": "in", "position_mm": 100, "mcu_input": 0, "jam_mm": 1500},
        {"id": "mid", "position_mm": 1500, "mcu_input": 1, "jam_mm": 500},
    ],
    "induction_eye": "in",
    "decision_point_mm": 800,
    "brain_deadline_ms": 30,
    "schedule_margin_ms": 20,
    "match_tolerance_mm": 40,
    "confirm_window_mm": 300,
    "chutes": [
        {"id": "a", "diverter_mm": 1000, "output": 1, "stroke_ms": 100, "confirm_input": 8},
        {"id": "b", "diverter_mm": 2000, "output": 2, "stroke_ms": 100, "confirm_input": 9},
    ],
    "routing": [
        {"chute": "a", "label": "A-.*"},
        {"chute": "b", "label": "B-.*"},
    ],
}


def make_cfg(**overrides: Any) -> CellConfig:
    data = {**BASE, **overrides}
    return CellConfig.model_validate(data)


class Driver:
    """Feeds events to a core and keeps every action it returned."""

    def __init__(self, cfg: CellConfig | None = None) -> None:
        self.core = CellCore(cfg or make_cfg())
        self.actions: list[CellAction] = []

    def __call__(self, event: CellEvent) -> list[CellAction]:
        out = self.core.handle(event)
        self.actions.extend(out)
        return out

    @property
    def records(self) -> list[ParcelRecord]:
        return [a.record for a in self.actions if isinstance(a, PublishRecord)]

    @property
    def strokes(self) -> list[ScheduleStroke]:
        return [a for a in self.actions if isinstance(a, ScheduleStroke)]

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]
