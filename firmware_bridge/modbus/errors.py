"""Errors a Modbus read or write ends in. Each names the device and the cause."""

from __future__ import annotations

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusError(Exception):
    """Base of every Modbus failure; ``cause`` is a short phrase for a tag's quality."""

    cause = "error"


class ModbusExceptionError(ModbusError):
    """The device answered with a Modbus exception response: an error, never a value."""

    def __init__(self, where: str, function: int, code: int) -> None:
        self.function = function
        self.code = code
        self.name = EXCEPTION_NAMES.get(code, "unknown exception")
        self.cause = f"exception {code} ({self.name})"
        super().__init__(f"{where}: function {function} answered exception {code} ({self.name})")


class ModbusTimeoutError(ModbusError):
    cause = "timeout"


class ModbusLinkError(ModbusError):
    """The connection or serial port could not be opened or broke."""

    cause = "link down"


class ModbusProtocolError(ModbusError):
    """The answer did not fit the request (wrong length, function or unit)."""

    cause = "bad answer"


class WriteRefusedError(ModbusError):
    """A write that the config forbids: read-only tag, out of range, wrong kind of value."""

    cause = "write refused"
