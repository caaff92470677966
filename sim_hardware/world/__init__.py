"""The simulated sorting cell: belt kinematics, parcel arrivals, photo-eyes, diverters,
chutes and the ground truth for scoring, on a clock the runner controls.

``world`` composes the concepts; ``plc_link`` and ``mcu_link`` plug it into the simulated
PLC (as its conveyor) and the simulated MCU (as its encoder, driven by its outputs).
"""

from sim_hardware.world.clock import Clock, RealClock, SimClock
from sim_hardware.world.config import WorldConfig
from sim_hardware.world.parcels import Parcel
from sim_hardware.world.truth import END, ParcelRecord, Scoreboard
from sim_hardware.world.world import CellWorld, WorldError, WorldEvent

__all__ = [
    "END",
    "CellWorld",
    "Clock",
    "Parcel",
    "ParcelRecord",
    "RealClock",
    "Scoreboard",
    "SimClock",
    "WorldConfig",
    "WorldError",
    "WorldEvent",
]
