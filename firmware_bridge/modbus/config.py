"""The ``modbus:`` section of a board config: devices, their links and their register maps.

Usable alone (``ModbusConfig.model_validate(dict)``); the board config composes it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from firmware_bridge.modbus.codec import Encoding
from firmware_bridge.modbus.datatypes import DataType, Order, Table

RTU_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)

_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TcpLinkConfig(_Strict):
    """Modbus TCP endpoint. Devices with the same host and port share one connection."""

    host: str = Field(min_length=1, description="IP address or host name of the PLC/gateway")
    port: int = Field(502, ge=1, le=65535, description="TCP port (Modbus default 502)")

    @property
    def key(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class RtuLinkConfig(_Strict):
    """One RS-485 line. Every device on the same port must use the same serial settings."""

    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baud: int = Field(19200, description=f"one of {', '.join(map(str, RTU_BAUDS))}")
    parity: Literal["N", "E", "O"] = Field("E", description="N, E or O (Modbus default E)")
    stop_bits: Literal[1, 2] = 1

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, baud: int) -> int:
        if baud not in RTU_BAUDS:
            raise ValueError(f"expected one of {', '.join(map(str, RTU_BAUDS))}")
        return baud

    @property
    def key(self) -> str:
        return f"rtu://{self.port}"

    @property
    def char_s(self) -> float:
        """Seconds one character takes on the wire: start + 8 data + parity/stop bits."""
        bits = 1 + 8 + (0 if self.parity == "N" else 1) + self.stop_bits
        return bits / self.baud

    @property
    def interframe_s(self) -> float:
        """The silent interval between frames: 3.5 characters, fixed 1.75 ms above 19200."""
        return 0.00175 if self.baud > 19200 else 3.5 * self.char_s


class ModbusTag(_Strict):
    """One named value in a device's register map."""

    name: str = Field(pattern=_NAME, description="tag name, unique within its device")
    table: Table = Field(description="coil, discrete_input, input_register, holding_register")
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: DataType = Field(DataType.UINT16, description="data type; bit tables take bool")
    order: Order = Field(Order.ABCD, description="byte/word order, see docs/modbus.md")
    length: int = Field(1, ge=1, le=125, description="registers of a string tag")
    scale: float = Field(1.0, description="engineering = raw * scale + offset")
    offset: float = 0.0
    unit: str = Field("", description="engineering unit shown with the value, e.g. 'm/s'")
    access: Literal["read", "read_write"] = "read"
    min: float | None = Field(None, description="lowest value a write may set")
    max: float | None = Field(None, description="highest value a write may set")
    verify_write: bool = Field(False, description="read the tag back after a write")
    telemetry: bool = Field(
        False,
        description="publish this tag's value in the node's 'plc' telemetry group "
        "(as <device>.<tag>; see docs/mqtt.md)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModbusTag:
        if self.table.is_bits != (self.type is DataType.BOOL):
            hint = (
                "bits: use type bool"
                if self.table.is_bits
                else "registers: bool is only for coil or discrete_input"
            )
            raise ValueError(f"table {self.table.value} holds {hint}")
        if self.scale == 0:
            raise ValueError("scale must not be 0 (the value could not be written back)")
        if self.length != 1 and self.type is not DataType.STRING:
            raise ValueError("length is only for string tags")
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.count} registers passes 65535")
        if self.access == "read_write" and not self.table.writable:
            raise ValueError(f"{self.table.value} is read-only in Modbus; use access: read")
        if (self.min is not None or self.max is not None) and self.access != "read_write":
            raise ValueError("min/max limit writes; they need access: read_write")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    @property
    def count(self) -> int:
        return self.type.registers(self.length)

    @property
    def encoding(self) -> Encoding:
        return Encoding(self.type, self.order, self.length, self.scale, self.offset)


class ModbusDeviceConfig(_Strict):
    """One Modbus device (unit id) on a TCP endpoint or an RS-485 line."""

    name: str = Field(pattern=_NAME, description="device name used in logs and commands")
    tcp: TcpLinkConfig | None = None
    rtu: RtuLinkConfig | None = None
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id; RTU: 1-247")
    timeout_ms: int = Field(500, ge=10, le=60000, description="wait for one answer")
    retries: int = Field(1, ge=0, le=5, description="extra tries after a timeout")
    poll_ms: int = Field(1000, ge=10, description="poll period")
    max_registers: int = Field(125, ge=1, le=125, description="registers per read request")
    max_bits: int = Field(2000, ge=1, le=2000, description="coils/inputs per read request")
    max_gap: int = Field(
        0,
        ge=0,
        le=124,
        description="unused addresses a request may read to merge two ranges; 0 never "
        "reads an address no tag names (some PLCs answer 'illegal data address')",
    )
    backoff_ms: int = Field(1000, ge=10, description="first wait before retrying an offline device")
    backoff_max_ms: int = Field(30000, ge=10, description="longest wait between offline probes")
    stale_after_ms: int | None = Field(
        None, ge=1, description="how long a last good value stays 'stale' (default 3 polls)"
    )
    tags: list[ModbusTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ModbusDeviceConfig:
        if (self.tcp is None) == (self.rtu is None):
            raise ValueError("give exactly one of 'tcp' or 'rtu'")
        if self.rtu is not None and not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id {self.unit_id}: RTU unit ids are 1-247")
        if self.backoff_max_ms < self.backoff_ms:
            raise ValueError("backoff_max_ms must be at least backoff_ms")
        names: set[str] = set()
        for tag in self.tags:
            if tag.name in names:
                raise ValueError(f"tag {tag.name!r} appears more than once")
            names.add(tag.name)
            limit = self.max_bits if tag.table.is_bits else self.max_registers
            if tag.count > limit:
                raise ValueError(f"tag {tag.name!r} needs {tag.count} registers, over {limit}")
        return self

    @property
    def link(self) -> TcpLinkConfig | RtuLinkConfig:
        link = self.tcp or self.rtu
        assert link is not None
        return link

    @property
    def stale_after_s(self) -> float:
        ms = self.stale_after_ms if self.stale_after_ms is not None else 3 * self.poll_ms
        return ms / 1000

    def tag(self, name: str) -> ModbusTag:
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(f"device {self.name!r} has no tag {name!r}")


class ModbusConfig(_Strict):
    """Every Modbus device this board talks to."""

    devices: list[ModbusDeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ModbusConfig:
        names: set[str] = set()
        lines: dict[str, RtuLinkConfig] = {}
        units: set[tuple[str, int]] = set()
        for dev in self.devices:
            if dev.name in names:
                raise ValueError(f"device {dev.name!r} appears more than once")
            names.add(dev.name)
            key = (dev.link.key, dev.unit_id)
            if key in units:
                raise ValueError(f"device {dev.name!r}: unit {dev.unit_id} on {key[0]} is taken")
            units.add(key)
            if dev.rtu is not None:
                other = lines.setdefault(dev.rtu.port, dev.rtu)
                if other != dev.rtu:
                    raise ValueError(
                        f"device {dev.name!r}: {dev.rtu.port} is used with other serial "
                        "settings by another device; one RS-485 line has one baud/parity"
                    )
        return self

    def device(self, name: str) -> ModbusDeviceConfig:
        for dev in self.devices:
            if dev.name == name:
                return dev
        known = ", ".join(d.name for d in self.devices) or "none"
        raise KeyError(f"no Modbus device {name!r} (devices: {known})")
