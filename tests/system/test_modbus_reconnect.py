"""The master reconnects after a server restart (TCP) and a cable pull (RTU pty)."""

from __future__ import annotations

import time

from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.poller import Poller
from firmware_bridge.modbus.quality import Quality
from sim_hardware.plc import PlcSimulator
from tests.firmware_bridge.modbus.helpers import rtu_device, tcp_device

TAGS = [{"name": "fault", "table": "input_register", "address": 3}]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def quality(poller: Poller, device: str) -> Quality | None:
    value = poller.snapshot().get(device, {}).get("fault")
    return value.quality if value else None


def test_tcp_master_reconnects_after_the_plc_restarts():
    with PlcSimulator(port=0) as sim:
        cfg = ModbusConfig.model_validate(
            {"devices": [tcp_device("plc", sim.port, TAGS, poll_ms=50, timeout_ms=200,
                                    backoff_ms=100, backoff_max_ms=400, stale_after_ms=5000)]}
        )  # fmt: skip
        with Poller(cfg) as poller:
            assert wait_for(lambda: quality(poller, "plc") is Quality.GOOD)
            sim.call(sim.tcp.stop())
            assert wait_for(lambda: quality(poller, "plc") is Quality.STALE)
            stale = poller.snapshot()["plc"]["fault"]
            assert stale.value == 0 and stale.cause == "link down"
            sim.world().vfd_fault_code = 5
            sim.call(sim.tcp.start())  # same port, new process state: new connections only
            assert wait_for(lambda: poller.snapshot()["plc"]["fault"].value == 5)
            assert poller.devices["plc"].online


def test_tcp_master_survives_dropped_connections():
    with PlcSimulator(port=0) as sim:
        cfg = ModbusConfig.model_validate(
            {"devices": [tcp_device("plc", sim.port, TAGS, poll_ms=50, timeout_ms=200)]}
        )
        with Poller(cfg) as poller:
            assert wait_for(lambda: quality(poller, "plc") is Quality.GOOD)
            for _ in range(3):
                sim.drop_connections()
                time.sleep(0.2)
            sim.world().vfd_fault_code = 3
            assert wait_for(lambda: poller.snapshot()["plc"]["fault"].value == 3)


def test_rtu_master_reopens_the_port_after_a_cable_pull(tmp_path):
    link = tmp_path / "usb-rs485"
    with PlcSimulator(port=None, rtu_link=link, baud=115200) as sim:
        cfg = ModbusConfig.model_validate(
            {"devices": [rtu_device("vfd", str(link), 1, tags=TAGS, poll_ms=50, timeout_ms=100,
                                    retries=0, backoff_ms=100, backoff_max_ms=200,
                                    stale_after_ms=300)]}
        )  # fmt: skip
        with Poller(cfg) as poller:
            assert wait_for(lambda: quality(poller, "vfd") is Quality.GOOD)
            sim.pull_cable(1.0)
            assert wait_for(lambda: quality(poller, "vfd") is Quality.BAD)
            assert poller.snapshot()["vfd"]["fault"].value is None
            sim.world().vfd_fault_code = 8
            assert wait_for(lambda: poller.snapshot()["vfd"]["fault"].value == 8)
            assert quality(poller, "vfd") is Quality.GOOD


def test_values_of_an_offline_device_age_from_stale_to_bad_between_probes():
    with PlcSimulator(port=0) as sim:
        cfg = ModbusConfig.model_validate(
            {"devices": [tcp_device("plc", sim.port, TAGS, poll_ms=50, timeout_ms=100,
                                    retries=0, backoff_ms=5000, stale_after_ms=600)]}
        )  # fmt: skip
        with Poller(cfg) as poller:
            assert wait_for(lambda: quality(poller, "plc") is Quality.GOOD)
            sim.fault().no_answer = True
            assert wait_for(lambda: quality(poller, "plc") is Quality.STALE, timeout=2)
            assert poller.snapshot()["plc"]["fault"].cause == "timeout"
            # No probe for 5 s, yet the value must not stay 'stale' past stale_after_ms.
            assert wait_for(lambda: quality(poller, "plc") is Quality.BAD, timeout=2)
            bad = poller.snapshot()["plc"]["fault"]
            assert bad.value is None and bad.cause == "timeout"
