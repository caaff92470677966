"""The belt-scene renderer: reproducible scenes, truthful boxes, real barcodes, moving belt."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.camera.barcodes import FORMATS, label_text, render_symbol
from sim_hardware.camera.belt import BeltCamera
from sim_hardware.camera.randomisation import CLASSES, HELD_OUT, TRAINING
from sim_hardware.camera.scene import FRAME_SIZE, render_scene


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = render_scene(5, TRAINING), render_scene(5, TRAINING), render_scene(6, TRAINING)
    assert np.array_equal(a.image, b.image) and a.parcels == b.parcels
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("preset", [TRAINING, HELD_OUT])
def test_truth_is_inside_the_frame_and_consistent(preset):
    w, h = FRAME_SIZE
    classes = set()
    for seed in range(12):
        scene = render_scene(seed, preset)
        assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
        for p in scene.parcels:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert p.cls == CLASSES[p.class_id]
            assert 0 <= p.angle_deg < 180
            assert p.size_px[0] >= p.size_px[1]
            if p.label_legible:
                assert p.label_module_px >= 2 and p.label_text and p.label_format in FORMATS
            classes.add(p.cls)
    assert classes == set(CLASSES)


def test_parcel_pixels_differ_from_the_empty_belt_inside_the_truth_box():
    scene = render_scene(11, TRAINING)
    assert scene.parcels
    for p in scene.parcels:
        x1, y1, x2, y2 = map(int, p.box)
        patch = scene.image[y1:y2, x1:x2]
        assert patch.std() > 3  # something is drawn there, not a flat belt


@settings(max_examples=40)
@given(st.sampled_from(sorted(FORMATS)), st.integers(1, 4), st.integers(0, 10_000))
def test_symbols_are_real_barcodes(fmt, module, seed):
    text = label_text(np.random.default_rng(seed), fmt)
    sym = render_symbol(fmt, text, module)
    found = zxingcpp.read_barcodes(sym.image, formats=FORMATS[fmt], is_pure=False)
    assert [r.text for r in found] == [text]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown barcode format"):
        render_symbol("EAN13", "123", 2)


def test_belt_camera_moves_parcels_with_the_encoder():
    cam = BeltCamera(seed=3, fps=30, speed_px_s=600, counts_per_px=4)
    frames = list(cam.frames(40))
    assert [f.encoder_count for f in frames] == [round(i * 20 * 4) for i in range(40)]
    assert all(a.time_s < b.time_s for a, b in itertools.pairwise(frames))
    moved = []
    for a, b in itertools.pairwise(frames):
        before = {p.parcel_id: p.centre for p in a.parcels}
        for p in b.parcels:
            if p.parcel_id in before:
                moved.append(p.centre[0] - before[p.parcel_id][0])
                assert p.centre[1] == before[p.parcel_id][1]
    assert moved and all(m == pytest.approx(20.0) for m in moved)
    seen = {p.parcel_id for f in frames for p in f.parcels}
    assert len(seen) >= 2
