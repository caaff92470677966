from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim_hardware.plc import PlcSimulator


@pytest.fixture
def plc(tmp_path) -> Iterator[PlcSimulator]:
    """A simulated PLC on a free TCP port and an RTU pty (115200 baud), units 1 and 2."""
    sim = PlcSimulator(
        port=0, rtu_link=tmp_path / "plc-rtu", baud=115200, units=(1, 2), turnaround_s=0.001
    )
    with sim:
        yield sim
