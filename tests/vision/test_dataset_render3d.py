"""The 3D renders (training/render3d, MuJoCo on EGL) that give the cross-domain figures: a
scene renders with truth that fits its image, the same seed gives the same scene, and its
COCO set reads back.

MuJoCo picks its GL backend when it is first imported and an unusable one aborts the whole
process (a C abort, not an exception): every render here runs in a child process with
MUJOCO_GL=egl, so a machine without EGL fails these tests, not the test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from training.render3d.scene import CLASSES, SIZE, scene_xml
from vision.dataset.coco import read_coco

REPO = Path(__file__).resolve().parents[2]

_RENDER_ONE = """
import json, sys
import numpy as np
from training.render3d.scene import Renderer3D
image, parcels, camera = Renderer3D().render(int(sys.argv[1]))
np.save(sys.argv[2], image)
print(json.dumps({"camera": camera, "parcels": [
    {"box": list(p.box), "cls": p.cls, "visible_px": p.visible_px,
     "corners": [list(map(float, c)) for c in p.corners]} for p in parcels]}))
"""


def _child(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, (
        f"MuJoCo could not render offscreen here (MUJOCO_GL=egl; scripts/system-deps.sh "
        f"installs EGL): exit {proc.returncode}\n{proc.stderr[-2000:]}"
    )
    return proc


def test_a_scene_renders_with_truth_inside_the_image(tmp_path: Path):
    npy = tmp_path / "image.npy"
    out = json.loads(_child(["-c", _RENDER_ONE, "30000003", str(npy)]).stdout)
    image = np.load(npy)
    camera = out["camera"]
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    assert image.std() > 5  # not a blank frame
    assert 1.0 <= camera["height"] <= 2.0 and 0 <= camera["tilt"] <= 25
    for p in out["parcels"]:
        x1, y1, x2, y2 = p["box"]
        assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]
        assert p["cls"] in CLASSES and p["visible_px"] >= 150
        c = np.asarray(p["corners"])  # the silhouette's minimum-area rectangle: around it
        assert x1 <= c[:, 0].mean() <= x2 and y1 <= c[:, 1].mean() <= y2
        (ax, ay), (bx, by) = c[1] - c[0], c[2] - c[1]
        area = abs(ax * by - ay * bx)
        assert area >= 0.9 * p["visible_px"]


def test_same_seed_same_scene_and_the_set_reads_back(tmp_path: Path):
    a, b = scene_xml(np.random.default_rng(7)), scene_xml(np.random.default_rng(7))
    assert a == b
    _child(["training/render3d/make_dataset.py", "--images", "2", "--first-seed", "30000010",
            "--out", str(tmp_path)])  # fmt: skip
    ds = read_coco(tmp_path)
    assert len(ds.samples) == 2 and ds.classes == CLASSES
    assert all(ds.image_path(s).is_file() for s in ds.samples)
