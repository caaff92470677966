"""One RS-485 line: one transaction at a time, and the 3.5-character silence between frames,
as the simulated slave sees the bus."""

from __future__ import annotations

import threading
import time

from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.link import open_link
from firmware_bridge.modbus.poller import Poller
from sim_hardware.plc import PlcSimulator
from tests.firmware_bridge.modbus.helpers import rtu_device

TAGS = [
    {"name": "speed", "table": "input_register", "address": 0, "type": "float32"},
    {"name": "running", "table": "discrete_input", "address": 0, "type": "bool"},
]
GAP_115200 = 0.00175  # Modbus: fixed 1.75 ms above 19200 baud


def test_poller_keeps_one_frame_on_the_wire_and_the_interframe_gap(tmp_path):
    link = tmp_path / "rs485"
    with PlcSimulator(port=None, rtu_link=link, baud=115200, units=(1, 2, 3)) as sim:
        cfg = ModbusConfig.model_validate(
            {"devices": [rtu_device(f"d{u}", str(link), u, tags=TAGS, poll_ms=20)
                         for u in (1, 2, 3)]}
        )  # fmt: skip
        with Poller(cfg):
            time.sleep(1.5)
        rtu = sim.rtu
        assert rtu is not None
        assert rtu.frames_seen > 100
        assert rtu.collisions == 0
        assert len(rtu.gaps) > 100
        # The pty and the scheduler add latency, never remove it: no gap may be shorter.
        assert min(rtu.gaps) >= GAP_115200 * 0.95, f"shortest gap {min(rtu.gaps) * 1e3:.3f} ms"


def test_threads_sharing_a_line_are_serialised(tmp_path):
    link = tmp_path / "rs485"
    with PlcSimulator(port=None, rtu_link=link, baud=115200, units=(1, 2)) as sim:
        configs = [
            ModbusConfig.model_validate({"devices": [rtu_device("a", str(link), 1, tags=TAGS)]}),
            ModbusConfig.model_validate({"devices": [rtu_device("b", str(link), 2, tags=TAGS)]}),
        ]
        shared = open_link(configs[0].devices[0].link)
        devices = [ModbusDevice(c.devices[0], shared) for c in configs]
        errors: list[BaseException] = []

        def hammer(dev: ModbusDevice) -> None:
            try:
                for _ in range(40):
                    assert all(v.quality.value == "good" for v in dev.poll().values())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(d,)) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        shared.close()
        assert not errors, errors
        assert sim.rtu is not None and sim.rtu.collisions == 0
        assert sim.rtu.frames_seen == 2 * 40 * 2
