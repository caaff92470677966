"""Camera frames rendered from the world: the world's parcels, labels and encoder count."""

from __future__ import annotations

import pytest
import zxingcpp

from sim_hardware.world import CellWorld
from sim_hardware.world.camera import WorldCamera
from tests.sim_hardware.world.helpers import SPEED, small_config


def _world_with(**parcel: object) -> tuple[CellWorld, int]:
    world = CellWorld(small_config(), arrivals=False)
    world.command_belt(True, SPEED, 1e9)
    world.advance_to(0.0)  # the command takes effect
    p = world.add_parcel(
        cls="box", length_mm=450.0, width_mm=350.0, label_format="QRCode", **parcel
    )
    return world, p.id


def _to_camera_centre(world: CellWorld, pid: int, camera: WorldCamera) -> None:
    at = world.belt.time_of(world.count_when_centre_at(pid, camera.centre_mm))
    world.advance_to(at)


def test_a_parcel_under_the_camera_shows_the_worlds_label_and_moves_with_the_belt():
    world, pid = _world_with(label_text="WP0000000042")
    camera = WorldCamera(world, seed=3)
    _to_camera_centre(world, pid, camera)
    frame = camera.frame()
    (truth,) = frame.parcels
    assert truth.parcel_id == pid and truth.cls == "box"
    assert truth.label_text == "WP0000000042" and truth.label_legible
    assert truth.centre[0] == pytest.approx(320.0, abs=1.0)
    assert frame.encoder_count == world.count_at(world.t)
    assert [r.text for r in zxingcpp.read_barcodes(frame.image)] == ["WP0000000042"]
    world.advance(0.05)  # 100 mm at 2 m/s
    later = camera.frame()
    moved = later.parcels[0].centre[0] - truth.centre[0]
    assert moved == pytest.approx(100.0 * camera.px_per_mm, abs=1.0)
    assert later.encoder_count - frame.encoder_count == pytest.approx(100, abs=1)


def test_an_unreadable_label_is_smeared_and_its_truth_says_so():
    world, pid = _world_with(label_text="WP0000000042", label_legible=False)
    camera = WorldCamera(world, seed=3)
    _to_camera_centre(world, pid, camera)
    frame = camera.frame()
    (truth,) = frame.parcels
    assert truth.label_text == "WP0000000042" and not truth.label_legible
    assert zxingcpp.read_barcodes(frame.image) == []


def test_an_empty_belt_gives_a_frame_without_parcels():
    world = CellWorld(small_config(), arrivals=False)
    frame = WorldCamera(world).frame()
    assert frame.parcels == () and frame.image.shape == (480, 640, 3)
