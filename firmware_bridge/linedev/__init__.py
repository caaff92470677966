"""Line devices: barcode scanners, scales and other devices that report one ASCII line per
reading over serial or TCP. See docs/line-devices.md."""

from firmware_bridge.linedev.config import (
    LineDeviceConfig,
    LineDevices,
    ReconnectConfig,
    SerialLinkConfig,
    TcpLinkConfig,
    TriggerConfig,
)
from firmware_bridge.linedev.device import LineDevice
from firmware_bridge.linedev.events import LineError, LineEvent, NoRead, Read, StateChange
from firmware_bridge.linedev.framing import Frame, FrameError, Framing, LineDecoder, encode

__all__ = [
    "Frame",
    "FrameError",
    "Framing",
    "LineDecoder",
    "LineDevice",
    "LineDeviceConfig",
    "LineDevices",
    "LineError",
    "LineEvent",
    "NoRead",
    "Read",
    "ReconnectConfig",
    "SerialLinkConfig",
    "StateChange",
    "TcpLinkConfig",
    "TriggerConfig",
    "encode",
]
