"""Writes go only to read-write tags, inside the configured range; read-back verifies."""

from __future__ import annotations

import struct
import time

import pytest

from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.errors import ModbusProtocolError, WriteRefusedError
from firmware_bridge.modbus.link import open_link
from sim_hardware.plc import PlcSimulator
from sim_hardware.plc.register_map import HR_SPEED_SETPOINT
from tests.firmware_bridge.modbus.helpers import one_device, tcp_device


def setpoint(sim: PlcSimulator) -> float:
    regs = sim.engine.images[1].get("holding_register", HR_SPEED_SETPOINT, 2)
    return struct.unpack(">f", struct.pack(">HH", *regs))[0]


@pytest.fixture
def plc():
    with PlcSimulator(port=0) as sim:
        cfg = one_device(tcp_device("plc", sim.port))
        dev = ModbusDevice(cfg, open_link(cfg.link))
        yield sim, dev
        dev.link.close()


def test_a_write_outside_the_range_is_refused_and_nothing_is_sent(plc):
    sim, dev = plc
    dev.write("speed-setpoint", 1.0)
    before = sim.engine.requests
    with pytest.raises(WriteRefusedError, match=r"3\.0 is above the configured max 2\.5"):
        dev.write("speed-setpoint", 3.0)
    with pytest.raises(WriteRefusedError, match="below the configured min"):
        dev.write("speed-setpoint", -1.0)
    assert sim.engine.requests == before
    assert setpoint(sim) == 1.0


def test_read_only_tags_are_never_written(plc):
    sim, dev = plc
    before = sim.engine.requests
    with pytest.raises(WriteRefusedError, match="tag speed is read-only"):
        dev.write("speed", 1.0)
    assert sim.engine.requests == before


def test_a_verified_write_reaches_the_world(plc):
    sim, dev = plc
    assert dev.write("speed-setpoint", 0.5, verify=True) == [0x3F00, 0]
    dev.write("run", True, verify=True)
    deadline = time.monotonic() + 5
    while sim.world().speed < 0.5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.world().speed == pytest.approx(0.5)
    assert dev.poll(["speed"])["speed"].value == pytest.approx(0.5)


def test_read_back_catches_a_plc_that_changed_the_value(plc):
    sim, dev = plc
    # The PLC clears the fault-reset coil after acting on it, so a read-back sees 0.
    cfg = one_device(
        tcp_device(
            "plc",
            sim.port,
            [
                {
                    "name": "reset",
                    "table": "coil",
                    "address": 1,
                    "type": "bool",
                    "access": "read_write",
                    "verify_write": True,
                }
            ],
        ),
    )
    resetter = ModbusDevice(cfg, dev.link)
    dev.write("run", False)
    resetter.write("reset", True, verify=False)
    time.sleep(0.05)  # one world tick: the PLC acts and clears the coil
    with pytest.raises(ModbusProtocolError, match=r"read back \[0\] after writing \[1\]"):
        sim.fault().delay_s = 0.03  # the write lands, then a tick clears it before read-back
        resetter.write("reset", True)
