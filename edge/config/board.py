"""The pydantic model of one board's config file.

Each section lives in its own module; a section that belongs to a library (for instance a
Modbus register map) may define its pydantic model inside that library, and this root model
composes it. Every model forbids unknown keys so a misspelt key is an error, not a default.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from edge.cell.config import CellConfig
from edge.config.metrics import MetricsConfig
from firmware_bridge.linedev.config import LineDevices
from firmware_bridge.modbus.config import ModbusConfig
from fleet_link.config import MqttConfig
from fleet_link.sparkplug.config import SparkplugConfig
from vision.config import VisionConfig

_IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            "expected an identifier: 1-64 lower-case letters, digits, '-' or '_', starting "
            "with a letter or digit (it becomes an MQTT topic level and a file name)"
        )
    return value


# Safe in an MQTT topic level, a file name and a systemd unit name.
Identifier = Annotated[
    str,
    AfterValidator(_check_identifier),
    Field(json_schema_extra={"pattern": _IDENTIFIER.pattern}),
]

STANDARD_BAUDS = (
    9600, 19200, 38400, 57600, 115200, 230400, 250000, 460800, 500000, 921600, 1000000,
    2000000,
)  # fmt: skip


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(StrictModel):
    """Who this board is: the MQTT namespace wolfpack/v1/<site>/<id>/ is built from these."""

    id: Identifier = Field(description="node id, unique within the site, e.g. 'cell-07'")
    site: Identifier = Field(description="site id, e.g. 'dc-berlin'")
    description: str = Field("", description="free text for operators")


class McuConfig(StrictModel):
    """One microcontroller on a serial port (USB CDC or UART)."""

    name: Identifier = Field(description="name used in logs and commands, e.g. 'main'")
    port: str = Field(
        min_length=1,
        description="serial device; prefer the stable /dev/serial/by-id/... path",
    )
    baud: int = Field(250000, description=f"one of {', '.join(map(str, STANDARD_BAUDS))}")
    watchdog_ms: int = Field(
        500,
        ge=20,
        le=10000,
        description="the firmware makes every actuator safe after this long without a valid "
        "frame from the host",
    )
    heartbeat_ms: int | None = Field(
        None,
        ge=5,
        description="how often the host proves it is alive; default a quarter of watchdog_ms",
    )

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, baud: int) -> int:
        if baud not in STANDARD_BAUDS:
            raise ValueError(
                f"expected a standard baud rate, one of {', '.join(map(str, STANDARD_BAUDS))}"
            )
        return baud

    @model_validator(mode="after")
    def _heartbeat_fits_watchdog(self) -> McuConfig:
        if self.heartbeat_ms is not None and self.heartbeat_ms * 2 > self.watchdog_ms:
            raise ValueError(
                f"heartbeat_ms ({self.heartbeat_ms}) must be at most half of watchdog_ms "
                f"({self.watchdog_ms}), or one lost heartbeat trips the watchdog"
            )
        return self

    @property
    def heartbeat_interval_ms(self) -> int:
        return self.heartbeat_ms if self.heartbeat_ms is not None else max(5, self.watchdog_ms // 4)


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_lines: bool = Field(False, description="JSON lines instead of human-readable text")


class BoardBase(StrictModel):
    """The sections every board has, whatever machine it runs (docs/runtime.md).

    ``machine`` names the machine kind (edge/runtime/registry.py); the kind's own section is
    added by its board model: ``BoardConfig`` for the diverter line (``cell:``), and one built
    by :func:`board_model_for` for every other kind. ``load_board_config`` picks the model
    from the file's ``machine:`` key.
    """

    node: NodeConfig
    machine: str = Field(
        "diverter",
        description="the machine this board runs: diverter (the sorting line, default), arm "
        "(sorting arm) or amr (vehicle); its own section is 'cell', 'arm' or 'amr'",
    )
    mcus: list[McuConfig] = Field(default_factory=list, description="microcontrollers")
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    vision: VisionConfig | None = Field(
        None, description="camera, parcel detector, label reader, tracker and calibration"
    )
    modbus: ModbusConfig = Field(
        default_factory=ModbusConfig, description="Modbus RTU/TCP devices and their register maps"
    )
    mqtt: MqttConfig | None = Field(
        None, description="fleet link: broker, TLS, credentials, outbox, telemetry, commands"
    )
    line_devices: LineDevices = Field(
        default_factory=list,
        description="barcode scanners, scales and other devices that report a line per reading",
    )
    metrics: MetricsConfig | None = Field(
        None, description="the node's Prometheus /metrics endpoint (docs/metrics.md); off if absent"
    )
    sparkplug: SparkplugConfig | None = Field(
        None, description="Sparkplug B edge node for SCADA (docs/sparkplug.md); off if absent"
    )

    @field_validator("mcus")
    @classmethod
    def _unique_mcu_names(cls, mcus: list[McuConfig]) -> list[McuConfig]:
        _require_unique("mcu", [m.name for m in mcus])
        _require_unique("mcu port", [m.port for m in mcus])
        return mcus

    @field_validator("sparkplug")
    @classmethod
    def _sparkplug_needs_mqtt(
        cls, spb: SparkplugConfig | None, info: ValidationInfo
    ) -> SparkplugConfig | None:
        if spb is not None and spb.enabled and info.data.get("mqtt") is None:
            raise ValueError("sparkplug needs the mqtt section (its broker and credentials)")
        return spb


class BoardConfig(BoardBase):
    """A board running the diverter sorting line (``machine: diverter``, the default): the
    shared sections plus ``cell:``. Sections for Modbus, MQTT, vision and the cell add fields
    here."""

    machine: Literal["diverter"] = Field(
        "diverter",
        description="the machine this board runs: diverter (the sorting line, default), arm "
        "(sorting arm) or amr (vehicle); its own section is 'cell', 'arm' or 'amr'",
    )
    cell: CellConfig | None = Field(
        None, description="sorting cell: belt, photo-eyes, chutes, routing, timing, safety"
    )

    @field_validator("cell")
    @classmethod
    def _cell_references(cls, cell: CellConfig | None, info: ValidationInfo) -> CellConfig | None:
        """The cell names devices of other sections: each name must resolve."""
        if cell is None:
            return cell
        for problem in cell_reference_problems(cell, info.data):
            raise ValueError(problem)
        return cell


_MODELS: dict[str, type[BoardBase]] = {"diverter": BoardConfig}


def board_model_for(kind_name: str) -> type[BoardBase]:
    """The board model of machine kind ``kind_name``: BoardBase plus the kind's section.

    The section's model is imported here, lazily (only the kind a config names). Raises
    ``edge.runtime.machine.MachineError`` for an unknown kind or one missing from this build.
    If the section's model has ``board_problems(self, sections: dict) -> list[str]``, it is
    called with the other sections already validated (names of MCUs, devices) so a name that
    does not resolve is an error at the section's key, as the diverter's cell does.
    """
    model = _MODELS.get(kind_name)
    if model is not None:
        return model
    from edge.runtime.registry import kind

    k = kind(kind_name)
    section_model = k.load_config_model()

    def _references(cls: type[BoardBase], section: object, info: ValidationInfo) -> object:
        check = getattr(section, "board_problems", None)
        if section is not None and callable(check):
            for problem in check(info.data):
                raise ValueError(problem)
        return section

    section_type: object = section_model if k.required else (section_model | None)
    default: object = ... if k.required else None
    model = create_model(
        f"{k.name.capitalize()}BoardConfig",
        __base__=BoardBase,
        __doc__=f"A board running machine {k.name!r}: the shared sections plus {k.section!r}.",
        __validators__={"_references": field_validator(k.section)(classmethod(_references))},
        machine=(
            Literal[k.name],  # type: ignore[valid-type]
            Field(description=f"'{k.name}': {k.description}"),
        ),
        **{k.section: (section_type, Field(default, description=k.description))},
    )
    _MODELS[kind_name] = model
    return model


def cell_reference_problems(cell: CellConfig, sections: dict[str, object]) -> list[str]:
    """What in ``cell`` names a device the rest of the board config does not have."""
    problems: list[str] = []
    mcus = sections.get("mcus")
    if isinstance(mcus, list):
        names = [m.name for m in mcus]
        if cell.belt.mcu not in names:
            problems.append(
                f"cell.belt.mcu: {cell.belt.mcu!r} is not an MCU of this board "
                f"(mcus: {', '.join(names) or 'none'})"
            )
    modbus = sections.get("modbus")
    if cell.plc is not None and isinstance(modbus, ModbusConfig):
        devices = {d.name: d for d in modbus.devices}
        dev = devices.get(cell.plc.device)
        if dev is None:
            problems.append(
                f"cell.plc.device: {cell.plc.device!r} is not a Modbus device "
                f"(modbus.devices: {', '.join(devices) or 'none'})"
            )
        else:
            tags = {t.name for t in dev.tags}
            wanted = [("run", cell.plc.run), ("estop", cell.plc.estop), ("speed", cell.plc.speed)]
            if cell.plc.speed_setpoint is not None:
                wanted.append(("speed_setpoint", cell.plc.speed_setpoint))
            if cell.plc.heartbeat is not None:
                wanted.append(("heartbeat", cell.plc.heartbeat))
            if cell.plc.ramp is not None:
                wanted.append(("ramp", cell.plc.ramp))
            wanted += [(f"chute_full.{c}", tag) for c, tag in cell.plc.chute_full.items()]
            for key, tag in wanted:
                if tag not in tags:
                    problems.append(
                        f"cell.plc.{key}: device {dev.name!r} has no tag {tag!r} "
                        f"(its tags: {', '.join(sorted(tags))})"
                    )
    devices_list = sections.get("line_devices")
    if isinstance(devices_list, list):
        line_names = [d.name for d in devices_list]
        for i, scanner in enumerate(cell.scanners):
            if scanner.device not in line_names:
                problems.append(
                    f"cell.scanners[{i}].device: {scanner.device!r} is not a line device "
                    f"(line_devices: {', '.join(line_names) or 'none'})"
                )
    if cell.camera is not None and sections.get("vision") is None:
        problems.append("cell.camera: the cell uses a camera but the board has no vision section")
    return problems


def _require_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} appears more than once; each must be unique")
        seen.add(name)
