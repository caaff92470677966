"""What the firmware says it is, and whether this host can drive it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from firmware_bridge.mcu.errors import IncompatibleFirmwareError
from firmware_bridge.mcu.messages import Message

# 2: the arm's motion queue, suction and vacuum messages (docs/mcu-protocol.md section 12);
# every version-1 message is unchanged, but a host must know which table the firmware speaks.
PROTOCOL_VERSION = 2

# Commands the host link itself relies on; a firmware without them cannot be driven.
REQUIRED_COMMANDS = frozenset(
    {"identify", "ping", "get_clock", "heartbeat", "set_watchdog", "config_output", "set_output"}
)


@dataclass(frozen=True)
class FirmwareIdentity:
    firmware: str
    version: str
    protocol: int
    rx_window: int
    max_payload: int
    clock_freq: int
    outputs: int
    inputs: int
    encoders: int
    commands: tuple[str, ...]

    @classmethod
    def from_message(cls, msg: Message) -> FirmwareIdentity:
        f = msg.fields
        return cls(
            firmware=f["firmware"],
            version=f["version"],
            protocol=f["protocol"],
            rx_window=f["rx_window"],
            max_payload=f["max_payload"],
            clock_freq=f["clock_freq"],
            outputs=f["outputs"],
            inputs=f["inputs"],
            encoders=f["encoders"],
            commands=tuple(c for c in f["commands"].split(",") if c),
        )

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["commands"] = list(self.commands)
        return d


def check_compatible(
    ident: FirmwareIdentity, required: frozenset[str] = REQUIRED_COMMANDS, port: str = "?"
) -> None:
    """Raise IncompatibleFirmwareError listing every difference, or return."""
    problems = []
    if ident.protocol != PROTOCOL_VERSION:
        problems.append(
            f"it speaks protocol version {ident.protocol}, this host speaks {PROTOCOL_VERSION}"
        )
    missing = sorted(required - set(ident.commands))
    if missing:
        problems.append(f"it lacks the commands {', '.join(missing)}")
    if ident.rx_window < 1 or ident.max_payload < 16:
        problems.append(
            f"its receive buffer is unusable (rx_window={ident.rx_window}, "
            f"max_payload={ident.max_payload}; need >= 1 frame of >= 16 bytes)"
        )
    if ident.clock_freq <= 0:
        problems.append(f"its clock frequency is {ident.clock_freq} Hz")
    if problems:
        raise IncompatibleFirmwareError(
            f"firmware {ident.firmware!r} {ident.version} on {port} is incompatible: "
            + "; ".join(problems)
        )


def require_commands(
    ident: FirmwareIdentity, needed: Iterable[str], port: str = "?", remedy: str = ""
) -> None:
    """Refuse, by name, firmware that lacks commands a machine needs (any machine: the arm,
    the vehicle), e.g. "the MCU on /dev/ttyACM0 (wolfpack-sim-mcu 1.0.0) lacks
    queue_joint_segment: flash the arm firmware". Call it after connect, before setup."""
    missing = [c for c in dict.fromkeys(needed) if c not in ident.commands]
    if missing:
        text = f"the MCU on {port} ({ident.firmware} {ident.version}) lacks {', '.join(missing)}"
        raise IncompatibleFirmwareError(text + (f": {remedy}" if remedy else ""))
