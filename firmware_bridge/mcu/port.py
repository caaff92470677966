"""Open a serial port (USB CDC, UART or pty) for non-blocking use from asyncio.

pyserial sets raw mode and the baud rate (a pty ignores the latter); the file descriptor is
then read with ``loop.add_reader``, so no thread is needed beside MQTT and Modbus.
"""

from __future__ import annotations

import os

import serial

from firmware_bridge.mcu.errors import PortError


def open_port(path: str, baud: int) -> serial.Serial:
    """Open ``path`` non-blocking and exclusive; PortError names the port and the cause."""
    if not os.path.exists(path):
        raise PortError(f"{path}: no such serial port (is the MCU plugged in / the sim running?)")
    try:
        port = serial.Serial(path, baud, timeout=0, write_timeout=0, exclusive=True)
    except (serial.SerialException, OSError) as exc:
        raise PortError(f"{path}: cannot open: {exc}") from exc
    try:
        port.reset_input_buffer()  # bytes from before we opened belong to nobody
    except (serial.SerialException, OSError):
        pass
    return port
