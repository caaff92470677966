"""The names a register map uses for tables, data types and byte/word orders."""

from __future__ import annotations

from enum import StrEnum


class Table(StrEnum):
    """The four Modbus data tables. Bits and registers are never mixed in one request."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    INPUT_REGISTER = "input_register"
    HOLDING_REGISTER = "holding_register"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        return self in (Table.COIL, Table.HOLDING_REGISTER)

    @property
    def max_read_count(self) -> int:
        """Protocol limit per read request: 2000 bits or 125 registers."""
        return 2000 if self.is_bits else 125


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"

    @property
    def is_integer(self) -> bool:
        return self.value[0] in "iu"

    @property
    def is_float(self) -> bool:
        return self.value.startswith("float")

    def registers(self, length: int = 1) -> int:
        """Registers (or bits, for bool) one value occupies; strings take ``length``."""
        if self is DataType.STRING:
            return length
        if self is DataType.BOOL:
            return 1
        return {"16": 1, "32": 2, "64": 4}[self.value[-2:]]

    def integer_range(self) -> tuple[int, int]:
        bits = 16 * self.registers()
        if self.value.startswith("u"):
            return 0, (1 << bits) - 1
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class Order(StrEnum):
    """Byte/word order, named by where the bytes A B C D of the big-endian value land.

    ``ABCD``: big-endian, most significant register first (the Modbus default).
    ``CDAB``: word swap: the registers come in reverse order (least significant first).
    ``BADC``: byte swap: the two bytes inside every register are exchanged.
    ``DCBA``: both: fully little-endian.
    For 64-bit values (bytes A..H) the same two rules apply to all four registers, so CDAB
    means GH EF CD AB and DCBA means HG FE DC BA. For 16-bit values only the byte swap
    matters. For strings the byte swap exchanges the two characters of every register and
    the word swap reverses the order of the registers.
    """

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def swaps_bytes(self) -> bool:
        return self in (Order.BADC, Order.DCBA)

    @property
    def swaps_words(self) -> bool:
        return self in (Order.CDAB, Order.DCBA)
