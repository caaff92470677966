"""Write scenes of the 2D renderer (``sim_hardware/camera``) as a COCO data set, so that the
same commands (``wolfpack vision evaluate``, ``train``) and ``training/cross_domain.py`` run
on both families of images. The truth is the renderer's: visible box, oriented box of fully
visible parcels, label text of legible labels.

    .venv/bin/python training/export_2d_set.py --images 200 --out /tmp/render2d-test
        # held-out seeds (9,000,000+) and ranges, as the model card's evaluation
    .venv/bin/python training/export_2d_set.py --preset training --first-seed 1000000 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_hardware.camera.randomisation import CLASSES, HELD_OUT, TRAINING  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from vision.dataset.coco import Annotation, Sample, write_coco  # noqa: E402
from vision.detections import OrientedBox  # noqa: E402

PRESETS = {"held_out": HELD_OUT, "training": TRAINING}


def make(out: Path, images: int, first_seed: int, preset: str) -> int:
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for seed in range(first_seed, first_seed + images):
        scene = render_scene(seed, PRESETS[preset])
        name = f"images/{seed}.png"  # lossless: the 2D renders as the evaluation sees them
        cv2.imwrite(str(out / name), scene.image)
        anns = []
        for p in scene.parcels:
            if p.visible_fraction > 0.98:
                corners = OrientedBox(p.centre[0], p.centre[1], *p.size_px, p.angle_deg).corners()
            else:
                x1, y1, x2, y2 = p.box
                corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
            anns.append(Annotation(
                p.cls, tuple((float(x), float(y)) for x, y in corners), None,
                p.label_text if p.label_legible else None, tuple(float(v) for v in p.box),
            ))  # fmt: skip
        h, w = scene.image.shape[:2]
        samples.append(Sample(name, w, h, tuple(anns), {"seed": seed, "renderer": "2d-" + preset}))
    write_coco(out, samples, CLASSES)
    return len(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=9_000_000)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="held_out")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    n = make(args.out, args.images, args.first_seed, args.preset)
    print(f"{args.out}: {n} images of the 2D renderer ({args.preset} ranges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
