"""The camera frame stream: a renderer in its own process serves frames of a real-time cell on
a TCP port; each frame's header (time, encoder count) and truth (parcel ids, positions) match
the world's. A tiny client here reads the documented wire format (docs/sim-world.md)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import numpy as np
import pytest

from sim_hardware.world.camera import CameraRenderer, take_snapshot
from sim_hardware.world.camera_feed import HEADER, FrameHeader, SimCameraProcess, encode_frame
from sim_hardware.world.cell import SimCell, SimCellProcess
from tests.sim_hardware.world.helpers import running_world, small_config
from tests.sim_hardware.world.test_cell import _start_belt

CENTRE_MM, FOV_MM = 1_000.0, 800.0
PX_PER_MM = 640 / FOV_MM


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the camera closed the stream")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> tuple[FrameHeader, np.ndarray, list[dict[str, Any]]]:
    """The client side of the wire format: header, BGR pixels, JSON truth."""
    header = FrameHeader.unpack(_read_exact(sock, HEADER.size))
    pixels = _read_exact(sock, header.image_bytes)
    image = np.frombuffer(pixels, np.uint8).reshape(header.height, header.width, header.channels)
    truth = json.loads(_read_exact(sock, header.truth_bytes)) if header.truth_bytes else []
    return header, image, truth


def test_a_frame_round_trips_through_the_wire_format():
    world = running_world()
    world.add_parcel(length_mm=300.0)
    world.advance_to(0.4)
    renderer = CameraRenderer(CENTRE_MM, FOV_MM, seed=1)
    frame = renderer.render(take_snapshot(world, CENTRE_MM, FOV_MM))
    data = encode_frame(frame.image, frame.time_s, frame.encoder_count, 7, b"[]")
    header = FrameHeader.unpack(data[: HEADER.size])
    assert (header.width, header.height, header.channels) == (640, 480, 3)
    assert header.capture_s == frame.time_s and header.encoder_count == frame.encoder_count
    assert header.frame_number == 7 and header.truth_bytes == 2
    assert data[HEADER.size : HEADER.size + header.image_bytes] == frame.image.tobytes()
    with pytest.raises(ValueError, match="magic"):
        FrameHeader.unpack(b"XXXX" + data[4 : HEADER.size])


def _frames(port: int, n: int) -> list[tuple[FrameHeader, np.ndarray, list[dict[str, Any]]]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return [read_frame(sock) for _ in range(n)]


def test_frames_of_a_cell_in_its_own_process_match_the_worlds_time_count_and_parcels(tmp_path):
    config = small_config(arrivals={"min_gap_mm": 150.0})
    with (
        SimCellProcess(config, tmp_path / "mcu", arrivals=False) as cell,
        SimCameraProcess(cell, fps=10.0, centre_mm=CENTRE_MM, fov_mm=FOV_MM) as camera,
    ):
        _start_belt(cell.plc_port)
        ids = [cell.call("world.add_parcel", None).id for _ in range(4)]
        time.sleep(0.35)  # the first parcels reach the camera's field
        frames = _frames(camera.port, 8)
        now = time.monotonic()
        records = cell.get("world.score.records")
        checks = []
        for header, _image, truth in frames:
            belt_mm = cell.call("world.belt.position_at", header.capture_s)
            checks.append((header, belt_mm, truth))
        stats = camera.stats

    numbers = [h.frame_number for h, _, _ in frames]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    seen: set[int] = set()
    for header, belt_mm, truth in checks:
        # the capture time is the system-wide monotonic clock, at most a few renders ago
        assert 0 < now - header.capture_s < 5
        assert header.encoder_count == int(belt_mm * config.belt.counts_per_mm // 1)
        inside = set()
        for pid in ids:
            rec = records[pid]
            centre = belt_mm - rec.induct_travel_mm - rec.parcel.length_mm / 2
            half = (rec.parcel.length_mm + rec.parcel.width_mm) / 2
            if abs(centre - CENTRE_MM) < FOV_MM / 2 - half:  # wholly in view, any pose
                inside.add(pid)
                (t,) = [t for t in truth if t["parcel_id"] == pid]
                x_px = (centre - CENTRE_MM) * PX_PER_MM + 320
                assert t["centre"][0] == pytest.approx(x_px, abs=2.0)
        truth_ids = {t["parcel_id"] for t in truth}
        assert inside <= truth_ids <= set(ids)
        seen |= truth_ids
    assert seen, "no parcel was ever in view"
    assert stats.frames >= 8 and stats.render_ms > 0


def test_an_in_process_cell_feeds_a_camera_and_an_idle_camera_renders_nothing(tmp_path):
    with (
        SimCell(small_config(), tmp_path / "mcu", arrivals=False) as cell,
        SimCameraProcess(cell, fps=20.0) as camera,
    ):
        time.sleep(0.3)
        idle = camera.stats
        assert idle.frames == 0 and idle.streaming_s == 0.0  # nobody watching
        snapshot = cell.camera_snapshot()
        ((header, image, truth),) = _frames(camera.port, 1)
        assert image.shape == (480, 640, 3) and truth == []
        assert header.capture_s >= snapshot.time_s
        assert header.encoder_count == 0  # the belt never started
        stats = camera.stats
    # its rate is over the time it was watched: the idle start does not lower it
    assert 0 < stats.streaming_s < stats.wall_s - 0.25
