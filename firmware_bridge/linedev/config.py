"""The ``line_devices:`` section of a board config: one entry per scanner, scale or other ASCII
device. Usable alone (``LineDeviceConfig.model_validate(dict)``); the board config composes it.
"""

from __future__ import annotations

import codecs
import re
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from firmware_bridge.linedev.framing import Framing

SERIAL_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialLinkConfig(_Strict):
    """An RS-232 / USB serial line (a pty in the simulator)."""

    port: str = Field(min_length=1, description="serial device; prefer /dev/serial/by-id/...")
    baud: int = Field(9600, description=f"one of {', '.join(map(str, SERIAL_BAUDS))}")

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, baud: int) -> int:
        if baud not in SERIAL_BAUDS:
            raise ValueError(f"expected one of {', '.join(map(str, SERIAL_BAUDS))}")
        return baud

    @property
    def describe(self) -> str:
        return f"{self.port} @ {self.baud}"


class TcpLinkConfig(_Strict):
    """A TCP client connection to the device (scanners with Ethernet listen on a port)."""

    host: str = Field(min_length=1, description="IP address or host name of the device")
    port: int = Field(ge=1, le=65535, description="TCP port the device listens on")
    connect_timeout_s: float = Field(3.0, gt=0, le=60, description="give up a connect after")

    @property
    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class TriggerConfig(_Strict):
    """Trigger mode: the host asks for each read (e.g. when a photo-eye sees a parcel)."""

    command: str = Field(
        min_length=1,
        description="bytes sent to start a read, exactly as written (escapes such as \\r and "
        '\\x16 in a double-quoted YAML string), e.g. "\\x16T\\r" for many Honeywell scanners',
    )
    stop_command: str | None = Field(
        None, description='sent when the read window closes without a read, e.g. "\\x16U\\r"'
    )
    timeout_ms: int = Field(
        300,
        ge=10,
        le=60000,
        description="read window: no reading within this long is a no-read with cause 'timeout'",
    )


class ReconnectConfig(_Strict):
    """Backoff between attempts to reopen a lost line: doubles from min_s up to max_s."""

    min_s: float = Field(0.1, gt=0, le=60, description="first delay after a loss")
    max_s: float = Field(5.0, gt=0, le=600, description="longest delay between attempts")

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectConfig:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least min_s ({self.min_s})")
        return self


class LineDeviceConfig(_Strict):
    """One line device: a barcode scanner, a scale, any device that reports a line per reading."""

    name: str = Field(pattern=_NAME, description="name used in logs and events, e.g. 'scanner-1'")
    serial: SerialLinkConfig | None = Field(None, description="the device is on a serial line")
    tcp: TcpLinkConfig | None = Field(None, description="the device is reached over TCP")
    framing: Framing = Field(
        "crlf",
        description="crlf (line ends at LF, one CR before it removed), cr, lf, or stx-etx "
        "(each reading wrapped in STX 0x02 ... ETX 0x03)",
    )
    encoding: str = Field("ascii", description="text encoding of readings, e.g. ascii, latin-1")
    no_read_token: str | None = Field(
        "NoRead",
        description="the text the device sends when it could not read (null: it sends none)",
    )
    empty_is_no_read: bool = Field(
        True, description="an empty line is a no-read (cause 'empty') rather than an error"
    )
    trigger: TriggerConfig | None = Field(None, description="trigger mode; absent: free-running")
    label_pattern: str | None = Field(
        None,
        description="regular expression a reading must match whole (e.g. '[0-9]{6}|WP[0-9]{10}'"
        "); anything else is refused as an 'invalid-reading' error, like readings with control "
        "characters or only spaces. null: any printable reading is accepted",
    )
    max_line_length: int = Field(
        256, ge=1, le=65536, description="longer readings are refused whole as errors"
    )
    idle_timeout_s: float | None = Field(
        None,
        gt=0,
        description="reopen the line after this long without a byte (for devices that send a "
        "heartbeat); null: silence is normal (a scanner between parcels)",
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown text encoding {encoding!r}, e.g. ascii, latin-1") from None
        return encoding

    @field_validator("label_pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        if not pattern:
            raise ValueError("an empty pattern would refuse every reading; use null for none")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @cached_property
    def compiled_pattern(self) -> re.Pattern[str] | None:
        """``label_pattern`` compiled once (a full match is required)."""
        return None if self.label_pattern is None else re.compile(self.label_pattern)

    @model_validator(mode="after")
    def _one_link(self) -> LineDeviceConfig:
        if (self.serial is None) == (self.tcp is None):
            raise ValueError("give exactly one of 'serial' (port, baud) or 'tcp' (host, port)")
        return self

    @property
    def link_description(self) -> str:
        link = self.serial if self.serial is not None else self.tcp
        assert link is not None
        return link.describe


def _unique(devices: list[LineDeviceConfig]) -> list[LineDeviceConfig]:
    for what, keys in (
        ("line device name", [d.name for d in devices]),
        ("line device serial port", [d.serial.port for d in devices if d.serial]),
        ("line device TCP endpoint", [d.tcp.describe for d in devices if d.tcp]),
    ):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise ValueError(f"{what} {key!r} appears more than once; each must be unique")
            seen.add(key)
    return devices


# The board config's ``line_devices:`` list: names, ports and endpoints unique.
LineDevices = Annotated[list[LineDeviceConfig], AfterValidator(_unique)]
