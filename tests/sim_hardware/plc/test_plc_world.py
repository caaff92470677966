"""The conveyor world model: ramps, e-stop, VFD faults, photo-eyes and counting."""

from __future__ import annotations

import pytest

from sim_hardware.plc.world import ConveyorWorld, PlcCommands


def run(world: ConveyorWorld, seconds: float, commands: PlcCommands, dt: float = 0.01):
    status = world.status()
    for _ in range(round(seconds / dt)):
        status = world.step(dt, commands)
    return status


def test_belt_ramps_toward_its_setpoint_at_the_ramp_rate():
    world = ConveyorWorld()
    go = PlcCommands(run=True, speed_setpoint=2.0, ramp_mm_s2=1000)
    assert run(world, 1.0, go).speed == pytest.approx(1.0, abs=0.011)
    assert run(world, 2.0, go).speed == pytest.approx(2.0)


def test_setpoint_is_clamped_to_the_belt_maximum():
    world = ConveyorWorld(max_speed=1.0)
    assert run(world, 3.0, PlcCommands(run=True, speed_setpoint=9.0)).speed == 1.0


def test_stop_ramps_down_but_estop_stops_at_once():
    world = ConveyorWorld()
    go = PlcCommands(run=True, speed_setpoint=1.0)
    run(world, 2.0, go)
    assert run(world, 0.5, PlcCommands(run=False)).speed == pytest.approx(0.5, abs=0.011)
    run(world, 2.0, go)
    world.estop = True
    status = run(world, 0.01, go)
    assert status.speed == 0.0 and status.estop and not status.running


def test_vfd_fault_stops_the_belt_until_reset():
    world = ConveyorWorld()
    go = PlcCommands(run=True, speed_setpoint=1.0)
    run(world, 2.0, go)
    world.vfd_fault_code = 7
    status = run(world, 0.01, go)
    assert status.speed == 0.0 and status.vfd_faulted and status.vfd_fault_code == 7
    assert run(world, 0.5, go).vfd_fault_code == 7
    assert run(world, 0.01, PlcCommands(run=True, fault_reset=True)).vfd_fault_code == 0


def test_parcels_block_photo_eyes_and_are_counted_past_the_last():
    world = ConveyorWorld(eye_positions_m=(1.0, 2.0), length_m=3.0)
    world.add_parcel(0.0)
    go = PlcCommands(run=True, speed_setpoint=1.0, ramp_mm_s2=60000)
    status = run(world, 1.1, go)  # leading edge at ~1.1 m, parcel 0.4 m long
    assert status.photo_eyes == (True, False)
    status = run(world, 1.0, go)
    assert status.photo_eyes == (False, True)
    status = run(world, 0.5, go)
    assert status.photo_eyes == (False, False) and status.parcel_count == 1
