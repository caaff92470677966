"""The host side of the MCU serial link (docs/mcu-protocol.md)."""

from firmware_bridge.mcu.clocksync import ClockSync
from firmware_bridge.mcu.errors import (
    IncompatibleFirmwareError,
    LinkClosedError,
    McuCommandError,
    McuError,
    McuResetError,
    McuTimeout,
    PortError,
)
from firmware_bridge.mcu.identity import PROTOCOL_VERSION, FirmwareIdentity
from firmware_bridge.mcu.link import LinkState, McuLink, StateChange

__all__ = [
    "PROTOCOL_VERSION",
    "ClockSync",
    "FirmwareIdentity",
    "IncompatibleFirmwareError",
    "LinkClosedError",
    "LinkState",
    "McuCommandError",
    "McuError",
    "McuLink",
    "McuResetError",
    "McuTimeout",
    "PortError",
    "StateChange",
]
