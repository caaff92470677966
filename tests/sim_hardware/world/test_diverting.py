"""Diverters take a parcel only while active with its centre inside the capture window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.world import END
from tests.sim_hardware.world.helpers import SPEED, running_world

CAPTURE = 30.0  # mm, half-window of every station in small_config


def _stroke_at_count(world, station: int, count: int, duration_s: float = 0.01) -> None:
    """What the MCU does: fire when the encoder reaches ``count``."""
    at = world.belt.time_of(count / world.config.belt.counts_per_mm)
    world.stroke(station, at, duration_s)


def test_a_stroke_at_the_parcels_count_diverts_it_into_that_chute():
    world = running_world()
    parcel = world.add_parcel(label_text="000002")
    count = world.count_when_centre_at(parcel.id, world.diverters[1].position_mm)
    _stroke_at_count(world, 1, count)
    world.advance_to(5.0)
    rec = world.score.records[parcel.id]
    assert rec.actual == 1
    assert world.chutes[1].received == [parcel.id]
    assert abs(rec.divert_error_mm) <= 1.0  # one count = 1 mm here
    assert world.diverters[1].strokes == 1 and world.diverters[1].empty_strokes == 0


@pytest.mark.parametrize("offset_mm", [-CAPTURE - 25, CAPTURE + 25, -200.0, 200.0])
def test_a_stroke_early_or_late_by_more_than_the_window_mis_sorts(offset_mm):
    world = running_world()
    parcel = world.add_parcel()
    count = world.count_when_centre_at(parcel.id, world.diverters[1].position_mm + offset_mm)
    _stroke_at_count(world, 1, count, duration_s=0.01)  # 10 ms = 20 mm of travel
    world.advance_to(5.0)
    rec = world.score.records[parcel.id]
    assert rec.actual == END  # rode on past every chute
    assert world.chutes[1].received == []
    assert world.diverters[1].empty_strokes == 1


@settings(max_examples=40, deadline=None)
@given(offset_mm=st.floats(-CAPTURE + 1, CAPTURE - 1))
def test_a_stroke_inside_the_window_diverts_and_reports_its_error(offset_mm):
    world = running_world()
    parcel = world.add_parcel()
    x = world.diverters[1].position_mm + offset_mm
    at = world.belt.time_of(world.count_when_centre_at(parcel.id, x))
    world.stroke(1, at, 0.005)
    world.advance_to(5.0)
    rec = world.score.records[parcel.id]
    assert rec.actual == 1
    assert rec.divert_error_mm == pytest.approx(offset_mm, abs=1.0)


def test_a_long_early_stroke_still_takes_the_parcel_when_it_enters_the_window():
    world = running_world()
    parcel = world.add_parcel()
    x = world.diverters[1].position_mm - 200.0
    at = world.belt.time_of(world.count_when_centre_at(parcel.id, x))
    world.stroke(1, at, 0.5)  # on while the parcel rides the 200 mm into the window
    world.advance_to(5.0)
    rec = world.score.records[parcel.id]
    assert rec.actual == 1
    assert rec.divert_error_mm == pytest.approx(-200.0, abs=1.0)  # fired 200 mm early


def test_the_outcome_does_not_depend_on_the_step_size():
    outcomes = []
    for step in (0.001, 0.037, 1.0):
        world = running_world()
        parcel = world.add_parcel()
        count = world.count_when_centre_at(parcel.id, world.diverters[2].position_mm + 12)
        _stroke_at_count(world, 2, count)
        while world.t < 5.0:
            world.advance(step)
        rec = world.score.records[parcel.id]
        outcomes.append((rec.actual, round(rec.divert_error_mm, 6), round(rec.ended_s, 9)))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_photo_eye_edges_are_at_the_exact_belt_positions():
    world = running_world()
    edges: list[tuple[int, bool, float]] = []
    world.eye_listeners.append(lambda eye, blocked, t: edges.append((eye, blocked, t)))
    world.add_parcel(length_mm=400.0)
    world.advance_to(5.0)
    (e1, on, t_on), (e2, off, t_off) = edges
    assert (e1, on, e2, off) == (0, True, 0, False)
    assert t_on == pytest.approx(500.0 / SPEED, abs=1e-5)  # head reaches the beam's start
    assert t_off == pytest.approx((502.0 + 400.0) / SPEED, abs=1e-5)  # tail leaves the beam's end
    assert not world.eye_blocked(0)


def test_a_parcel_inside_the_window_when_the_stroke_starts_is_taken_at_once():
    world = running_world()
    parcel = world.add_parcel()
    x = world.diverters[0].position_mm
    world.advance_to(world.belt.time_of(world.count_when_centre_at(parcel.id, x)))
    world.set_diverter(0, True)
    world.advance(0.0)
    assert world.score.records[parcel.id].actual == 0
    assert parcel.id not in world.on_belt()


def test_a_late_input_is_applied_now_and_counted():
    world = running_world()
    world.advance_to(1.0)
    world.set_diverter(0, True, at=0.5)
    world.advance(0.01)
    assert world.late_inputs == 1 and world.diverters[0].active


def test_an_unknown_station_is_refused_with_the_valid_range():
    world = running_world()
    with pytest.raises(ValueError, match=r"station 9 does not exist \(0..2\)"):
        world.set_diverter(9, True)


def test_a_parcel_id_used_twice_is_refused():
    world = running_world()
    parcel = world.add_parcel()
    with pytest.raises(ValueError, match=f"parcel id {parcel.id} is already in this world"):
        world.add_parcel(parcel)


@settings(max_examples=40, deadline=None)
@given(offset_mm=st.floats(-CAPTURE + 1, CAPTURE - 1), steps=st.integers(1, 40))
def test_a_compare_fires_at_its_position_whatever_the_world_steps(offset_mm, steps):
    """An MCU's compare output (what the simulated MCU arms for a stroke at a count) lands at
    its belt position exactly, however coarsely the world is stepped."""
    world = running_world()
    parcel = world.add_parcel()
    x = world.diverters[1].position_mm + offset_mm
    pos = world.count_when_centre_at(parcel.id, x) / world.config.belt.counts_per_mm
    world.arm_compare("k", 1, True, pos, 0.005)
    for i in range(1, steps + 1):
        world.advance_to(5.0 * i / steps)
    rec = world.score.records[parcel.id]
    assert rec.actual == 1 and world.compares_fired == 1
    assert rec.divert_error_mm == pytest.approx(offset_mm, abs=1.0)
    assert [e.data["on"] for e in world.events if e.kind == "stroke"] == [True, False]


def test_a_compare_disarmed_before_its_position_never_fires_and_after_it_says_so():
    world = running_world()
    parcel = world.add_parcel()
    pos = world.count_when_centre_at(parcel.id, world.diverters[1].position_mm)
    at = world.belt.time_of(pos)
    world.arm_compare("early", 1, True, pos, 0.005)
    assert world.disarm_compare("early", at - 0.01) is True  # queued for its time
    world.arm_compare("late", 2, True, pos, 0.005)
    world.advance_to(at + 0.02)
    assert world.disarm_compare("late", at - 0.01) is False  # the belt got there first
    world.advance_to(5.0)
    assert world.compares_fired == 1
    assert [e.data["station"] for e in world.events if e.kind == "stroke"] == [2, 2]
