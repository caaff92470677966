"""An exception response becomes an error naming the Modbus exception, never a value."""

from __future__ import annotations

from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.link import open_link
from firmware_bridge.modbus.quality import Quality
from sim_hardware.plc import PlcSimulator
from tests.firmware_bridge.modbus.helpers import CONVEYOR_TAGS, one_device, tcp_device

MISSING = {"name": "missing", "table": "holding_register", "address": 50}


def test_illegal_data_address_marks_only_its_tags_bad():
    with PlcSimulator(port=0) as sim:
        cfg = one_device(tcp_device("plc", sim.port, [*CONVEYOR_TAGS, MISSING]))
        dev = ModbusDevice(cfg, open_link(cfg.link))
        values = dev.poll()
        dev.link.close()
    missing = values["missing"]
    assert missing.quality is Quality.BAD and missing.value is None
    assert missing.cause == "exception 2 (illegal data address)"
    assert all(v.quality is Quality.GOOD for n, v in values.items() if n != "missing")
    assert dev.online, "a device that answers, even 'no', is online"


def test_injected_device_failure_is_reported_with_its_code():
    with PlcSimulator(port=0) as sim:
        sim.fault().exception = 4
        cfg = one_device(tcp_device("plc", sim.port))
        dev = ModbusDevice(cfg, open_link(cfg.link))
        values = dev.poll()
        dev.link.close()
    assert {v.quality for v in values.values()} == {Quality.BAD}
    assert {v.value for v in values.values()} == {None}
    assert {v.cause for v in values.values()} == {"exception 4 (server device failure)"}
