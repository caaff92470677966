"""The register-map section refuses configs that would misread or miswrite a device."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.config import BoardConfig, ConfigError, parse_config_text
from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.errors import WriteRefusedError
from firmware_bridge.modbus.writer import check_write
from tests.firmware_bridge.modbus.helpers import one_device, rtu_device, tcp_device

TAG = {"name": "x", "table": "holding_register", "address": 0}


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ({**TAG, "type": "bool"}, "bool is only for coil or discrete_input"),
        ({**TAG, "table": "coil"}, "bits: use type bool"),
        ({**TAG, "table": "input_register", "access": "read_write"}, "read-only in Modbus"),
        ({**TAG, "min": 0}, "need access: read_write"),
        ({**TAG, "access": "read_write", "min": 5, "max": 1}, "above max"),
        ({**TAG, "scale": 0}, "scale must not be 0"),
        ({**TAG, "length": 3}, "only for string tags"),
        ({**TAG, "address": 65535, "type": "float32"}, "passes 65535"),
        ({**TAG, "order": "ABDC"}, "ABCD"),
    ],
)
def test_bad_tags_are_refused_with_the_reason(tag, message):
    with pytest.raises(ValidationError, match=message):
        one_device(tcp_device("d", 502, [tag]))


def test_a_device_needs_exactly_one_link():
    raw = tcp_device("d", 502, [TAG])
    raw["rtu"] = {"port": "/dev/ttyUSB0"}
    with pytest.raises(ValidationError, match="exactly one of 'tcp' or 'rtu'"):
        one_device(raw)


def test_devices_on_one_rs485_line_must_share_its_settings():
    a = rtu_device("a", "/dev/ttyUSB0", 1, baud=19200, tags=[TAG])
    b = rtu_device("b", "/dev/ttyUSB0", 2, baud=9600, tags=[TAG])
    with pytest.raises(ValidationError, match="other serial settings"):
        ModbusConfig.model_validate({"devices": [a, b]})


def test_two_devices_cannot_share_a_unit_id_on_one_line():
    a = rtu_device("a", "/dev/ttyUSB0", 1, tags=[TAG])
    b = rtu_device("b", "/dev/ttyUSB0", 1, tags=[TAG])
    with pytest.raises(ValidationError, match="unit 1 on rtu:///dev/ttyUSB0 is taken"):
        ModbusConfig.model_validate({"devices": [a, b]})


def test_a_tag_longer_than_max_registers_is_refused():
    tag = {**TAG, "type": "string", "length": 20}
    with pytest.raises(ValidationError, match="needs 20 registers, over 10"):
        one_device(tcp_device("d", 502, [tag], max_registers=10))


def test_rtu_timing_is_derived_from_the_serial_settings():
    dev = one_device(rtu_device("a", "/dev/ttyUSB0", 1, baud=9600, tags=[TAG]))
    assert dev.rtu is not None
    assert dev.rtu.char_s == pytest.approx(11 / 9600)
    assert dev.rtu.interframe_s == pytest.approx(3.5 * 11 / 9600)
    fast = one_device(rtu_device("a", "/dev/ttyUSB0", 1, baud=115200, tags=[TAG]))
    assert fast.rtu is not None and fast.rtu.interframe_s == 0.00175


def test_board_config_errors_point_at_the_modbus_line():
    text = (
        "node: {id: n1, site: s1}\n"
        "modbus:\n"
        "  devices:\n"
        "    - name: plc\n"
        "      tcp: {host: 10.0.0.5}\n"
        "      tags:\n"
        "        - {name: speed, table: input_register, address: 0, type: flaot32}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "board.yaml", BoardConfig)
    rendered = info.value.render()
    assert "board.yaml:7:" in rendered and "flaot32" in rendered and "float32" in rendered


WRITABLE = {
    "name": "sp", "table": "holding_register", "address": 0, "type": "float32",
    "access": "read_write", "min": 0.0, "max": 2.5,
}  # fmt: skip


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        (TAG, 1, "read-only"),
        (WRITABLE, 2.6, "above the configured max 2.5"),
        (WRITABLE, -0.1, "below the configured min 0.0"),
        (WRITABLE, float("nan"), "NaN"),
        (WRITABLE, "fast", "takes a number"),
        ({**TAG, "access": "read_write", "type": "int16"}, 40000, "outside int16"),
    ],
)
def test_writes_are_checked_against_the_config(tag, value, message):
    dev = one_device(tcp_device("plc", 502, [tag]))
    with pytest.raises(WriteRefusedError, match=message):
        check_write("plc", dev.tags[0], value)


def test_a_write_in_range_gives_its_registers():
    dev = one_device(tcp_device("plc", 502, [WRITABLE]))
    assert check_write("plc", dev.tags[0], 1.5) == [0x3FC0, 0x0000]
