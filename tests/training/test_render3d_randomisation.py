"""The 3D renders' domain randomisation (training/render3d/scene.py), without rendering: the
camera looks at the belt where the parcels are, from any direction; every parcel's geoms are
named for it (what the segmentation truth relies on) and the distractors for none; the
sensor's effects keep the frame's size and are the same for the same seed."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from training.render3d.scene import CLASSES, SIZE, _sensor, scene_xml


def _vec(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1))
def test_the_camera_sees_the_parcels_from_any_direction(seed):
    xml, classes, camera = scene_xml(np.random.default_rng(seed))
    root = ET.fromstring(xml)
    assert 1 <= len(classes) <= 6 and set(classes) <= set(CLASSES)
    assert 0 <= camera["yaw"] < 360 and 1.0 <= camera["height"] <= 2.0
    cam = root.find(".//camera")
    pos, axes = _vec(cam.get("pos")), _vec(cam.get("xyaxes"))
    x, y = axes[:3], axes[3:]
    assert abs(np.linalg.norm(x) - 1) < 1e-3 and abs(np.linalg.norm(y) - 1) < 1e-3
    assert abs(x @ y) < 1e-3
    look = -np.cross(x, y)  # a MuJoCo camera looks along its -z
    assert look[2] < -math.cos(math.radians(26))  # down, tilted 25 degrees at most
    hit = pos + look * (pos[2] / -look[2])  # where the optical axis meets the belt
    assert np.hypot(*hit[:2]) < 0.2 * camera["height"]
    # the view's half-diagonal on the belt at this height: every parcel starts inside it
    half_h = camera["height"] * math.tan(math.radians(camera["fovy"] / 2))
    reach = half_h * math.hypot(1, SIZE[0] / SIZE[1]) * 1.3
    bodies = [b for b in root.iter("body") if b.get("name", "").startswith("p")]
    assert len(bodies) == len(classes)
    for i, body in enumerate(bodies):
        assert body.get("name") == f"p{i}"
        assert np.hypot(*_vec(body.get("pos"))[:2]) < reach
        assert all(g.get("name").startswith(f"p{i}_") for g in body.iter("geom"))
    others = [g for g in root.find("worldbody").findall("geom") if g.get("name") != "belt"]
    assert all(g.get("name").startswith("d") for g in others)  # distractors: no parcel's


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1))
def test_the_sensor_keeps_the_frame_and_repeats_for_a_seed(seed):
    grey = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    a = _sensor(np.random.default_rng(seed), grey)
    b = _sensor(np.random.default_rng(seed), grey)
    assert a.shape == grey.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert 25 < a.mean() < 230  # exposure, gamma and vignetting vary it, never to black/white
