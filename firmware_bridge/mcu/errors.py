"""Errors of the MCU link; each message says which port and what happened."""

from __future__ import annotations


class McuError(Exception):
    """Base of every MCU link error."""


class PortError(McuError):
    """The serial port cannot be opened or vanished."""


class McuTimeout(McuError):
    """No answer within the allowed time (the link may still recover)."""


class McuCommandError(McuError):
    """The firmware refused a command; ``code`` is the protocol's error code."""

    def __init__(self, command: str, code: int, message: str) -> None:
        super().__init__(f"MCU refused {command}: {message} (error code {code})")
        self.command = command
        self.code = code
        self.reason = message


class McuResetError(McuError):
    """The MCU restarted while the command was in flight.

    A reset wipes the firmware's state, so the command may or may not have run before the
    reset, and re-sending it blindly could run it twice or against a fresh state: the caller
    decides (the cell controller re-plans from the fresh state).
    """


class LinkClosedError(McuError):
    """The link was closed by the host while the command waited."""


class IncompatibleFirmwareError(McuError):
    """The firmware's identify answer does not match what this host needs."""
