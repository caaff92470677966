"""Simulated MCU firmware on a pty, implementing docs/mcu-protocol.md from the MCU side."""

from sim_hardware.mcu.device import SimMcu, SimMcuOptions, SimMcuProcess, SimMcuThread
from sim_hardware.mcu.encoder import BeltEncoder, EncoderSource

__all__ = [
    "BeltEncoder",
    "EncoderSource",
    "SimMcu",
    "SimMcuOptions",
    "SimMcuProcess",
    "SimMcuThread",
]
