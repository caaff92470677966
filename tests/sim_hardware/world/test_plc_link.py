"""The world behind the simulated PLC, driven over real Modbus TCP like the node drives it."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator

import pytest
from pymodbus.client import ModbusTcpClient

from sim_hardware.plc import PlcCommands, PlcSimulator
from sim_hardware.plc.register_map import (
    COIL_DIVERTER_1,
    COIL_RUN,
    DI_ESTOP,
    DI_PHOTO_EYE_1,
    HR_RAMP,
    HR_SPEED_SETPOINT,
    IR_SPEED_MM_S,
)
from sim_hardware.world import CellWorld, RealClock, SimClock
from sim_hardware.world.plc_link import PlcWorldAdapter
from tests.sim_hardware.world.helpers import small_config


def _wait(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def cell() -> Iterator[tuple[CellWorld, ModbusTcpClient]]:
    clock = RealClock()
    world = CellWorld(small_config(), start_s=clock.now(), arrivals=False)
    sim = PlcSimulator(port=0, world_factory=lambda: PlcWorldAdapter(world, clock))
    with sim:
        client = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=2)
        assert client.connect()
        try:
            yield world, client
        finally:
            client.close()


def _start_belt(client: ModbusTcpClient, speed_m_s: float) -> None:
    hi, lo = struct.unpack(">HH", struct.pack(">f", speed_m_s))
    client.write_registers(HR_SPEED_SETPOINT, [hi, lo], device_id=1)
    client.write_register(HR_RAMP, 20_000, device_id=1)
    client.write_coil(COIL_RUN, True, device_id=1)


def test_run_coil_and_setpoint_move_the_world_belt_and_its_eye_shows_the_parcel(cell):
    world, client = cell
    _start_belt(client, 2.0)
    assert _wait(lambda: client.read_input_registers(IR_SPEED_MM_S, count=1, device_id=1)
                 .registers[0] == 2000)  # fmt: skip
    world.add_parcel(length_mm=600.0)  # blocks the eye for (602 + 600) / 2000 = 0.3 s

    def eye() -> bool:
        return client.read_discrete_inputs(DI_PHOTO_EYE_1, count=1, device_id=1).bits[0]

    assert _wait(eye, 2.0)
    assert _wait(lambda: not eye(), 2.0)


def test_a_diverter_coil_diverts_a_parcel_and_estop_shows_and_stops(cell):
    world, client = cell
    _start_belt(client, 2.0)
    client.write_coil(COIL_DIVERTER_1 + 1, True, device_id=1)  # station 1 held out
    parcel = world.add_parcel()
    assert _wait(lambda: world.score.records[parcel.id].actual == 1, 5.0)
    world.set_estop(True)
    assert _wait(lambda: client.read_discrete_inputs(DI_ESTOP, count=1, device_id=1).bits[0])
    assert _wait(lambda: client.read_input_registers(IR_SPEED_MM_S, count=1, device_id=1)
                 .registers[0] == 0, 2.0)  # fmt: skip


def test_with_a_sim_clock_the_adapter_steps_the_world_by_dt():
    world = CellWorld(small_config(), arrivals=False)
    adapter = PlcWorldAdapter(world)
    go = PlcCommands(run=True, speed_setpoint=1.0, ramp_mm_s2=1000)
    status = adapter.step(0.5, go)
    assert world.t == 0.5 and status.speed == pytest.approx(0.5)
    world.add_parcel()
    status = adapter.step(20.0, go)
    assert status.parcel_count == 1 and status.odometer_m == pytest.approx(
        world.belt.position_at(20.5) / 1000
    )
    clock = SimClock()
    stepped = PlcWorldAdapter(CellWorld(small_config(), arrivals=False), clock)
    clock.advance(2.0)
    assert stepped.step(0.01, go).speed == pytest.approx(1.0)  # follows the clock, not dt
