"""Registers <-> engineering values: data type, byte/word order, then scale and offset.

``engineering = raw * scale + offset``. Integer types with scale 1 and offset 0 stay exact
Python ints (a 64-bit counter must not lose its low digits to a float).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from firmware_bridge.modbus.datatypes import DataType, Order

Value = bool | int | float | str

_STRUCT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


class CodecError(ValueError):
    """A value does not fit its tag's data type (too big, wrong kind, not ASCII...)."""


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one tag's value is laid out in registers."""

    type: DataType
    order: Order = Order.ABCD
    length: int = 1  # registers, for strings
    scale: float = 1.0
    offset: float = 0.0

    @property
    def count(self) -> int:
        return self.type.registers(self.length)

    @property
    def exact(self) -> bool:
        return self.scale == 1 and self.offset == 0


def _to_registers(raw: bytes, order: Order) -> list[int]:
    if order.swaps_bytes:
        raw = bytes(b for i in range(0, len(raw), 2) for b in (raw[i + 1], raw[i]))
    regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if order.swaps_words:
        regs.reverse()
    return regs


def _from_registers(regs: Sequence[int], order: Order) -> bytes:
    words = list(regs)
    if order.swaps_words:
        words.reverse()
    raw = b"".join(int(w).to_bytes(2, "big") for w in words)
    if order.swaps_bytes:
        raw = bytes(b for i in range(0, len(raw), 2) for b in (raw[i + 1], raw[i]))
    return raw


def decode(enc: Encoding, regs: Sequence[int]) -> Value:
    """Registers (exactly ``enc.count`` of them, 0..65535) -> engineering value."""
    if len(regs) != enc.count:
        raise CodecError(f"{enc.type} needs {enc.count} registers, got {len(regs)}")
    if enc.type is DataType.BOOL:
        return bool(regs[0])
    raw = _from_registers(regs, enc.order)
    if enc.type is DataType.STRING:
        return raw.split(b"\x00", 1)[0].decode("latin-1")
    number = struct.unpack(_STRUCT[enc.type], raw)[0]
    if enc.exact:
        return number
    return number * enc.scale + enc.offset


def encode(enc: Encoding, value: Value) -> list[int]:
    """Engineering value -> registers. Raises CodecError when it does not fit."""
    if enc.type is DataType.BOOL:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise CodecError(f"a bool tag takes true/false or 0/1, not {value!r}")
        return [int(value)]
    if enc.type is DataType.STRING:
        if not isinstance(value, str):
            raise CodecError(f"a string tag takes text, not {value!r}")
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise CodecError(f"{value!r} has characters outside Latin-1") from exc
        if len(raw) > 2 * enc.length:
            raise CodecError(f"{value!r} is longer than {2 * enc.length} characters")
        return _to_registers(raw.ljust(2 * enc.length, b"\x00"), enc.order)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"a {enc.type} tag takes a number, not {value!r}")
    raw_value: int | float = value if enc.exact else (value - enc.offset) / enc.scale
    if enc.type.is_integer:
        if isinstance(raw_value, float):
            if not math.isfinite(raw_value):
                raise CodecError(f"{value!r} is not a finite number")
            raw_value = round(raw_value)
        low, high = enc.type.integer_range()
        if not low <= raw_value <= high:
            raise CodecError(f"{value!r} gives raw {raw_value}, outside {enc.type} {low}..{high}")
    else:
        raw_value = float(raw_value)
        if enc.type is DataType.FLOAT32 and math.isfinite(raw_value):
            if abs(raw_value) > 3.4028234663852886e38:
                raise CodecError(f"{value!r} is outside the float32 range")
    return _to_registers(struct.pack(_STRUCT[enc.type], raw_value), enc.order)
