"""Render 3D belt scenes (``scene.py``) into a COCO data set that ``wolfpack vision train``
and ``wolfpack vision evaluate`` read. One command:

    MUJOCO_GL=egl nice -n 19 .venv/bin/python training/render3d/make_dataset.py \\
        --images 200 --first-seed 30000000 --out /tmp/render3d-test

Seeds from 20,000,000 are for training, from 30,000,000 for held-out tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from training.render3d.scene import CLASSES, Renderer3D  # noqa: E402
from vision.dataset.coco import Annotation, Sample, write_coco  # noqa: E402


def make(out: Path, images: int, first_seed: int) -> dict[str, float]:
    (out / "images").mkdir(parents=True, exist_ok=True)
    renderer = Renderer3D()
    samples = []
    times = []
    for seed in range(first_seed, first_seed + images):
        t0 = time.perf_counter()
        image, parcels, camera = renderer.render(seed)
        times.append(time.perf_counter() - t0)
        name = f"images/{seed}.jpg"
        cv2.imwrite(str(out / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        anns = tuple(Annotation(p.cls, p.corners, None, None, p.box) for p in parcels)
        samples.append(Sample(name, image.shape[1], image.shape[0], anns,
                              {"seed": seed, "renderer": "mujoco-egl", **camera}))  # fmt: skip
        if len(samples) % 10 == 0:  # a usable set even if the run is cut short
            write_coco(out, samples, CLASSES)
    write_coco(out, samples, CLASSES)
    times.sort()
    return {"images": images, "ms_p50": 1e3 * times[len(times) // 2],
            "ms_mean": 1e3 * sum(times) / len(times)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=30_000_000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    r = make(args.out, args.images, args.first_seed)
    print(
        f"{args.out}: {r['images']} images, render {r['ms_p50']:.0f} ms p50 "
        f"({r['ms_mean']:.0f} ms mean) per image, scene build and sensor included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
