"""The simulated PLC's map, turnaround, RTU wire time and injected faults, seen by a master."""

from __future__ import annotations

import time

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_bridge.modbus.datatypes import Table
from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.errors import ModbusExceptionError, ModbusTimeoutError
from firmware_bridge.modbus.link import open_link
from firmware_bridge.modbus.planner import ReadRequest
from tests.firmware_bridge.modbus.helpers import one_device, rtu_device, tcp_device


def device(raw: dict) -> ModbusDevice:
    cfg = one_device(raw)
    return ModbusDevice(cfg, open_link(cfg.link))


def test_pymodbus_own_client_reads_the_model_string(plc):
    client = ModbusTcpClient("127.0.0.1", port=plc.port)
    assert client.connect()
    try:
        rr = client.read_input_registers(12, count=8, device_id=1)
        text = b"".join(r.to_bytes(2, "big") for r in rr.registers).rstrip(b"\0").decode()
    finally:
        client.close()
    assert text == "WP-CONVEYOR-SIM"


def test_undefined_addresses_answer_illegal_data_address(plc):
    dev = device(tcp_device("plc", plc.port))
    with pytest.raises(ModbusExceptionError, match="illegal data address") as info:
        dev.read_registers(ReadRequest(Table.HOLDING_REGISTER, 3, 1, ()))
    assert info.value.code == 2
    dev.link.close()


def test_injected_exception_code_is_answered(plc):
    plc.fault(1).exception = 6
    dev = device(tcp_device("plc", plc.port))
    with pytest.raises(ModbusExceptionError, match=r"exception 6 \(server device busy\)"):
        dev.read_registers(ReadRequest(Table.INPUT_REGISTER, 0, 2, ()))
    dev.link.close()


def test_no_answer_fault_times_out_after_the_device_timeout_only(plc):
    plc.fault(2).no_answer = True
    dev = device(tcp_device("plc", plc.port, unit_id=2, timeout_ms=200, retries=1))
    start = time.monotonic()
    with pytest.raises(ModbusTimeoutError, match=r"no answer within 0\.200 s"):
        dev.read_registers(ReadRequest(Table.INPUT_REGISTER, 0, 2, ()))
    assert 0.39 <= time.monotonic() - start < 0.6  # (1 + retries) x timeout
    dev.link.close()


def test_slow_answers_are_slow(plc):
    plc.fault().delay_s = 0.08
    dev = device(tcp_device("plc", plc.port, timeout_ms=1000))
    start = time.monotonic()
    dev.read_registers(ReadRequest(Table.INPUT_REGISTER, 0, 2, ()))
    assert time.monotonic() - start >= 0.08
    dev.link.close()


def test_rtu_answers_take_the_modelled_wire_time(plc):
    dev = device(rtu_device("plc", str(plc.rtu.link), 1, baud=115200))
    request = ReadRequest(Table.HOLDING_REGISTER, 100, 125, ())
    dev.read_registers(request)  # open the port
    start = time.monotonic()
    for _ in range(5):
        dev.read_registers(request)
    per = (time.monotonic() - start) / 5
    # request 8 chars + answer 5 + 250 chars at 11 bits/char, + 1 ms turnaround + 1.75 ms gap
    wire = (8 + 255) * 11 / 115200 + 0.001 + 0.00175
    assert wire <= per < wire * 1.5
    dev.link.close()


def test_units_on_one_rtu_line_answer_for_themselves(plc):
    plc.world(2).vfd_fault_code = 9
    time.sleep(0.05)
    tags = [{"name": "fault", "table": "input_register", "address": 3}]
    one = device(rtu_device("a", str(plc.rtu.link), 1, tags=tags))
    assert one.poll()["fault"].value == 0
    one.link.close()
    two = device(rtu_device("b", str(plc.rtu.link), 2, tags=tags))
    assert two.poll()["fault"].value == 9
    two.link.close()
