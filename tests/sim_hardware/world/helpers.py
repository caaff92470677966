"""Small cells for world tests: one photo-eye, three stations, a short belt."""

from __future__ import annotations

from typing import Any

from sim_hardware.world import CellWorld, WorldConfig

SPEED = 2000.0  # mm/s


def small_config(**overrides: Any) -> WorldConfig:
    data: dict[str, Any] = {
        "seed": 7,
        "belt": {"length_mm": 5000.0, "estop_decel_mm_s2": 4000.0},
        "photo_eyes_mm": [(500.0, 502.0)],
        "stations": [
            {"position_mm": 1500.0, "capture_mm": 30.0},
            {"position_mm": 2500.0, "capture_mm": 30.0},
            {"position_mm": 3500.0, "capture_mm": 30.0},
        ],
    }
    data.update(overrides)
    return WorldConfig.model_validate(data)


def running_world(config: WorldConfig | None = None, *, arrivals: bool = False) -> CellWorld:
    """A world whose belt is at ``SPEED`` from t=0 (an instant ramp)."""
    world = CellWorld(config or small_config(), arrivals=arrivals)
    world.command_belt(True, SPEED, ramp_mm_s2=1e9)
    world.advance_to(0.0)
    return world
