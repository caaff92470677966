"""The arm cell's camera: the diverter's patch renderer, each parcel at its world pose."""

from __future__ import annotations

import time

import pytest

from sim_hardware.arm.camera import ArmRenderer
from sim_hardware.arm.cell import ArmSnapshot
from sim_hardware.world.parcels import Parcel

FOV = 800.0  # mm across 640 px: 0.8 px per mm


def _parcel(pid: int) -> Parcel:
    return Parcel(pid, "box", 300.0, 200.0, 150.0, "Code128", f"{pid:06d}", True, 0.0)


def _snap(t: float, poses: list[tuple[Parcel, float, float, float]]) -> ArmSnapshot:
    return ArmSnapshot(t, int(t * 1000), 0.0, FOV, tuple(poses))


def test_each_parcel_is_drawn_where_the_world_has_it_across_the_belt_and_turned():
    r = ArmRenderer(0.0, FOV, seed=3)
    a, b = _parcel(1), _parcel(2)
    frame = r.render(_snap(0.0, [(a, -150.0, 120.0, 10.0), (b, 200.0, -80.0, -5.0)]))
    truth = {t.parcel_id: t for t in frame.parcels}
    px = 640 / FOV
    assert truth[1].centre == pytest.approx((320 - 150 * px, 240 - 120 * px), abs=3)
    assert truth[2].centre == pytest.approx((320 + 200 * px, 240 + 80 * px), abs=3)
    # yaw counter-clockwise seen from above = clockwise from +x in the image (y down)
    assert truth[1].angle_deg == pytest.approx(180 - 10, abs=2)
    assert truth[2].angle_deg == pytest.approx(5, abs=2)
    assert truth[1].label_text == "000001" and truth[1].label_legible


def test_a_parcel_is_rendered_once_then_moved_and_redrawn_only_when_its_pose_changes():
    r = ArmRenderer(0.0, FOV, seed=3)
    p = _parcel(7)
    r.render(_snap(0.0, [(p, -200.0, 50.0, 4.0)]))
    patch = r._patches[7]
    t0 = time.perf_counter()
    for i in range(1, 11):  # carried 10 mm a frame: the same patch, pasted further on
        frame = r.render(_snap(i * 0.02, [(p, -200.0 + 10 * i, 50.0, 4.0)]))
        assert r._patches[7] is patch
    per_frame_ms = (time.perf_counter() - t0) * 100
    assert frame.parcels[0].centre[0] == pytest.approx(320 + (-100) * 640 / FOV, abs=3)
    assert per_frame_ms < 60  # a few ms on an idle core; the full scene took 65-300 ms
    r.render(_snap(0.3, [(p, -90.0, 50.0, 12.0)]))  # knocked: turned 8 degrees
    assert r._patches[7] is not patch
    assert r._pose[7][1] == 12.0


def test_a_parcel_still_upstream_is_rendered_between_frames_at_its_world_pose():
    """The feed calls ``prepare`` between frames with the cell's own snapshot (u, across,
    yaw per parcel): the arm's snapshot once broke the feed (a 2-tuple was unpacked)."""
    r = ArmRenderer(0.0, FOV, seed=3)
    p = _parcel(9)
    assert r.prepare(_snap(0.0, [(p, -700.0, 60.0, 6.0)])) == 1  # not in view yet
    patch = r._patches[9]
    frame = r.render(_snap(0.5, [(p, -100.0, 60.0, 6.0)]))  # in view, same pose
    assert r._patches[9] is patch
    assert frame.parcels[0].centre[1] == pytest.approx(240 - 60 * 640 / FOV, abs=3)
    assert frame.parcels[0].angle_deg == pytest.approx(180 - 6, abs=2)
