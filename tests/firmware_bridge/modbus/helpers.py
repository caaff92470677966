"""Shared by the Modbus unit and system tests: configs for the simulated conveyor PLC."""

from __future__ import annotations

from typing import Any

from firmware_bridge.modbus.config import ModbusConfig, ModbusDeviceConfig

CONVEYOR_TAGS: list[dict[str, Any]] = [
    {"name": "run", "table": "coil", "address": 0, "type": "bool", "access": "read_write"},
    {"name": "diverter-1", "table": "coil", "address": 8, "type": "bool", "access": "read_write"},
    {"name": "running", "table": "discrete_input", "address": 0, "type": "bool"},
    {"name": "estop", "table": "discrete_input", "address": 1, "type": "bool"},
    {"name": "photo-eye-1", "table": "discrete_input", "address": 8, "type": "bool"},
    {"name": "chute-full-1", "table": "discrete_input", "address": 16, "type": "bool"},
    {
        "name": "speed-setpoint", "table": "holding_register", "address": 0, "type": "float32",
        "unit": "m/s", "access": "read_write", "min": 0.0, "max": 2.5,
    },
    {"name": "ramp", "table": "holding_register", "address": 2, "access": "read_write"},
    {"name": "speed", "table": "input_register", "address": 0, "type": "float32", "unit": "m/s"},
    {"name": "fault-code", "table": "input_register", "address": 3},
    {"name": "parcels", "table": "input_register", "address": 4, "type": "uint32", "order": "CDAB"},
    {"name": "odometer", "table": "input_register", "address": 6, "type": "float64", "unit": "m"},
    {
        "name": "current", "table": "input_register", "address": 10, "type": "int16",
        "scale": 0.01, "unit": "A",
    },
    {"name": "model", "table": "input_register", "address": 12, "type": "string", "length": 8},
]  # fmt: skip


def tcp_device(name: str, port: int, tags: list[dict[str, Any]] | None = None, **kw: Any) -> dict:
    return {
        "name": name,
        "tcp": {"host": "127.0.0.1", "port": port},
        "tags": tags or CONVEYOR_TAGS,
        **kw,
    }


def rtu_device(
    name: str, path: str, unit: int, baud: int = 115200, tags: list | None = None, **kw: Any
) -> dict:
    return {
        "name": name,
        "rtu": {"port": path, "baud": baud, "parity": "E"},
        "unit_id": unit,
        "tags": tags or CONVEYOR_TAGS,
        **kw,
    }


def one_device(raw: dict) -> ModbusDeviceConfig:
    return ModbusConfig.model_validate({"devices": [raw]}).devices[0]
