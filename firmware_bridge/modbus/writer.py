"""What a write must pass before it reaches the wire: access, range and data type."""

from __future__ import annotations

import math

from firmware_bridge.modbus.codec import CodecError, Value, encode
from firmware_bridge.modbus.config import ModbusTag
from firmware_bridge.modbus.errors import WriteRefusedError


def check_write(device: str, tag: ModbusTag, value: Value) -> list[int]:
    """Return the registers to write, or raise WriteRefusedError saying why not."""
    where = f"device {device} tag {tag.name}"
    if tag.access != "read_write":
        raise WriteRefusedError(f"{where} is read-only (access: {tag.access})")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isnan(value) and (tag.min is not None or tag.max is not None):
            raise WriteRefusedError(f"{where}: NaN is outside any configured range")
        if tag.min is not None and value < tag.min:
            raise WriteRefusedError(f"{where}: {value} is below the configured min {tag.min}")
        if tag.max is not None and value > tag.max:
            raise WriteRefusedError(f"{where}: {value} is above the configured max {tag.max}")
    try:
        return encode(tag.encoding, value)
    except CodecError as exc:
        raise WriteRefusedError(f"{where}: {exc}") from exc
