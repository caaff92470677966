"""Modbus RTU/TCP masters driven by register maps from the board config.

The pieces, one per module: ``config`` (the register-map section of a board config),
``codec`` (registers <-> engineering values in every byte/word order), ``planner`` (tags ->
fewest read requests), ``link`` (one transaction at a time on a TCP connection or RS-485
line), ``device`` (one device's reads, health and backoff), ``poller`` (every device on its
period, one worker per line), ``writer`` (range-checked writes with read-back).
"""

from firmware_bridge.modbus.config import ModbusConfig, ModbusDeviceConfig, ModbusTag
from firmware_bridge.modbus.errors import (
    ModbusError,
    ModbusExceptionError,
    ModbusLinkError,
    ModbusTimeoutError,
    WriteRefusedError,
)
from firmware_bridge.modbus.quality import Quality, TagValue

__all__ = [
    "ModbusConfig",
    "ModbusDeviceConfig",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusLinkError",
    "ModbusTag",
    "ModbusTimeoutError",
    "Quality",
    "TagValue",
    "WriteRefusedError",
]
