"""The 3D renders (training/render3d, MuJoCo on EGL) that give the cross-domain figures: a
scene renders with truth that fits its image, the same seed gives the same scene, and its
COCO set reads back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from training.render3d.make_dataset import make
from training.render3d.scene import CLASSES, SIZE, Renderer3D, scene_xml
from vision.dataset.coco import read_coco


def test_a_scene_renders_with_truth_inside_the_image(tmp_path: Path):
    try:
        image, parcels, camera = Renderer3D().render(30_000_003)
    except Exception as exc:  # no EGL: scripts/system-deps.sh installs it
        pytest.fail(f"MuJoCo cannot render offscreen here (MUJOCO_GL=egl): {exc}")
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    assert image.std() > 5  # not a blank frame
    assert 1.0 <= camera["height"] <= 2.0 and 0 <= camera["tilt"] <= 25
    for p in parcels:
        x1, y1, x2, y2 = p.box
        assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]
        assert p.cls in CLASSES and p.visible_px >= 150
        c = np.asarray(p.corners)  # the silhouette's minimum-area rectangle: around it
        assert x1 <= c[:, 0].mean() <= x2 and y1 <= c[:, 1].mean() <= y2
        (ax, ay), (bx, by) = c[1] - c[0], c[2] - c[1]
        area = abs(ax * by - ay * bx)
        assert area >= 0.9 * p.visible_px


def test_same_seed_same_scene_and_the_set_reads_back(tmp_path: Path):
    a, b = scene_xml(np.random.default_rng(7)), scene_xml(np.random.default_rng(7))
    assert a == b
    stats = make(tmp_path, 2, 30_000_010)
    ds = read_coco(tmp_path)
    assert stats["images"] == 2 and len(ds.samples) == 2 and ds.classes == CLASSES
    assert all(ds.image_path(s).is_file() for s in ds.samples)
