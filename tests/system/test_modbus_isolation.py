"""A dead device never holds up the others: they keep their poll period within 10%."""

from __future__ import annotations

import itertools
import statistics
import time
from contextlib import ExitStack

from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.poller import Poller
from firmware_bridge.modbus.quality import Quality
from sim_hardware.plc import PlcSimulator
from tests.firmware_bridge.modbus.helpers import rtu_device, tcp_device

VFD_TAGS = [
    {"name": "speed", "table": "input_register", "address": 0, "type": "float32"},
    {"name": "fault", "table": "input_register", "address": 3},
    {"name": "temp", "table": "input_register", "address": 11, "type": "int16", "scale": 0.1},
]


def periods(starts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(starts)]


def assert_period_kept(poller: Poller, name: str, period: float) -> None:
    intervals = periods(list(poller.devices[name].poll_starts))
    assert len(intervals) >= 15, f"{name} polled only {len(intervals) + 1} times"
    mean, median = statistics.fmean(intervals), statistics.median(intervals)
    assert abs(mean - period) <= 0.1 * period, f"{name}: mean period {mean:.4f} s"
    assert abs(median - period) <= 0.1 * period, f"{name}: median period {median:.4f} s"


def test_three_tcp_plcs_one_dead(tmp_path):
    with ExitStack() as stack:
        sims = [stack.enter_context(PlcSimulator(port=0)) for _ in range(3)]
        sims[2].fault().no_answer = True
        cfg = ModbusConfig.model_validate(
            {
                "devices": [
                    tcp_device(f"plc{i}", sim.port, poll_ms=100, timeout_ms=150, retries=1)
                    for i, sim in enumerate(sims)
                ]
            }
        )
        with Poller(cfg) as poller:
            time.sleep(2.5)
        for name in ("plc0", "plc1"):
            assert_period_kept(poller, name, 0.1)
        snap = poller.snapshot()
        assert all(v.quality is Quality.GOOD for v in snap["plc0"].values())
        dead = snap["plc2"]["speed"]
        assert dead.quality is Quality.BAD and dead.value is None and dead.cause == "timeout"


def test_three_units_on_one_rs485_line_one_dead(tmp_path):
    link = tmp_path / "rs485"
    with PlcSimulator(port=None, rtu_link=link, baud=115200, units=(1, 2, 3)) as sim:
        sim.fault(3).no_answer = True
        cfg = ModbusConfig.model_validate(
            {
                "devices": [
                    rtu_device(
                        f"vfd{u}",
                        str(link),
                        u,
                        tags=VFD_TAGS,
                        poll_ms=100,
                        timeout_ms=40,
                        retries=0,
                        backoff_ms=400,
                        backoff_max_ms=1600,
                    )
                    for u in (1, 2, 3)
                ]
            }
        )
        with Poller(cfg) as poller:
            time.sleep(3.0)
        for name in ("vfd1", "vfd2"):
            assert_period_kept(poller, name, 0.1)
        dead = poller.devices["vfd3"]
        # Offline backoff: probed a handful of times, not every 100 ms.
        assert 2 <= len(dead.poll_starts) <= 6
        assert not dead.online and "no answer" in str(dead.last_error)
        assert poller.snapshot()["vfd3"]["speed"].quality is Quality.BAD
