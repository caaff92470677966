"""E-stop stops the belt within the modelled braking; chutes fill, drain and show drops."""

from __future__ import annotations

import pytest

from sim_hardware.world import CellWorld
from tests.sim_hardware.world.helpers import SPEED, running_world, small_config


def test_estop_stops_the_belt_and_everything_on_it_within_the_braking_distance():
    world = running_world()
    parcel = world.add_parcel()
    world.advance_to(0.5)
    world.set_estop(True)
    x0 = world.centre_mm(parcel.id)
    decel = world.config.belt.estop_decel_mm_s2
    world.advance_to(0.5 + SPEED / decel)  # the modelled stopping time
    assert world.belt.speed_at(world.t) == 0.0
    stopped_at = world.centre_mm(parcel.id)
    assert stopped_at - x0 == pytest.approx(SPEED**2 / (2 * decel), abs=1e-6)
    world.advance(10.0)
    assert world.centre_mm(parcel.id) == stopped_at  # nothing moves while stopped
    kinds = [e.kind for e in world.events if e.kind == "estop"]
    assert kinds == ["estop"]


def test_a_stroke_while_stopped_takes_only_a_parcel_already_in_its_window():
    world = running_world()
    parcel = world.add_parcel()
    world.set_estop(True, at=0.2)
    world.advance_to(3.0)
    world.stroke(1, world.t, 0.2)
    world.advance(1.0)
    assert world.diverters[1].empty_strokes == 1
    assert parcel.id in world.on_belt()


def test_the_induction_waits_for_the_gap_and_holds_while_the_belt_stands():
    world = CellWorld(small_config(), arrivals=False)  # belt not running
    a = world.add_parcel(length_mm=300.0)
    b = world.add_parcel(length_mm=300.0)
    assert world.on_belt() == [a.id] and world.waiting == 1
    world.command_belt(True, SPEED, 1e9)
    world.advance_to(1.0)
    rec_a, rec_b = world.score.records[a.id], world.score.records[b.id]
    gap = world.config.arrivals.min_gap_mm
    assert rec_b.induct_travel_mm - rec_a.induct_travel_mm == pytest.approx(300.0 + gap)


def test_a_chute_is_full_at_its_capacity_and_drains_at_its_rate():
    config = small_config(
        stations=[
            {"position_mm": 1500.0, "capacity": 3, "drain_per_min": 6.0, "sensor_ms": 100},
            {"position_mm": 2500.0},
        ]
    )
    world = CellWorld(config, arrivals=False)
    world.command_belt(True, SPEED, 1e9)
    world.set_diverter(0, True)  # held on: takes everything
    for _ in range(4):
        world.add_parcel(length_mm=200.0)
    world.advance_to(3.0)
    chute = world.chutes[0]
    assert len(chute.received) == 4 and chute.overflows == 1
    chute.drain(world.t)
    assert chute.full
    last_drop = world.score.records[chute.received[-1]].ended_s
    assert chute.sensor(last_drop + 0.05) and not chute.sensor(last_drop + 0.15)
    first_drop = world.score.records[chute.received[0]].ended_s
    chute.drain(first_drop + 20.0)  # 6 per minute: one every 10 s, from the first drop
    assert chute.level == 2 and not chute.full
    chute.drain(first_drop + 60.0)
    assert chute.level == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stations": []}, "at least one station"),
        ({"reject_station": 5}, "reject_station 5 is not one of the 3 stations"),
        ({"stations": [{"position_mm": 6000.0}]}, "station 0 at 6000.0 mm is past the belt end"),
        ({"photo_eyes_mm": [(700.0, 600.0)]}, r"photo-eye \[700.0, 600.0\] is not an interval"),
    ],
)
def test_a_bad_layout_is_refused_saying_where(data, message):
    with pytest.raises(ValueError, match=message):
        small_config(**data)
