"""Trains the shipped parcel detector on scenes rendered by sim_hardware, and exports it to ONNX.

One reproducible command (CPU is enough: about 13 minutes of rendering 12,000 scenes and 55
of training on 2 shared cores; the budget is wall time, so a busier machine trains fewer
steps; ``--cache`` keeps the rendered scenes for the next run):

    .venv/bin/pip install torch==2.13.0          # the optional 'train' extra, CPU wheel
    nice -n 19 .venv/bin/python training/train_parcel_model.py --cache /tmp/vision-cache

The data: 6,000 scenes with the WIDE ranges (the TRAINING ranges widened to cover the
held-out ones) and 6,000 with the TRAINING ranges, plus flips, zoom and photometric
augmentation on the fly; the exported weights are an exponential moving average.

The model is a tiny CenterNet-style detector: a depthwise-separable backbone, a small feature
pyramid back to stride 4, and two heads. The class heatmap (box, polybag, envelope,
irregular) gives each parcel's centre; the geometry head gives the centre offset, the
axis-aligned box size, and the oriented size and angle (cos 2a, sin 2a) that the label reader
deskews with and the measurement uses. Peak extraction (sigmoid + 3x3 max-pool) is part of
the exported graph, so the runtime only has to pick the top-k peaks.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_hardware.camera.randomisation import CLASSES, HELD_OUT, TRAINING  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from training import twin  # noqa: E402
from training.onnx_init import (  # noqa: E402
    fold_batchnorm,
    is_folded_state,
    load_onnx_weights,
)
from vision.dataset.coco import read_coco  # noqa: E402
from vision.letterbox import letterbox  # noqa: E402

INPUT_HW = (128, 160)
STRIDE = 4
OUT_HW = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)
NUM_CLASSES = len(CLASSES)
# geometry channels: dx, dy, log w, log h (axis-aligned), log length, log width, cos2a, sin2a
GEOMETRY = 8

# The training ranges widened to cover (and slightly exceed) the held-out ranges, so that the
# held-out set tests other seeds inside the trained ranges, not extrapolation: more parcels,
# scale, lighting, casts, blur, noise, label sizes and jitter, overlap and distractors.
WIDE = replace(
    TRAINING,
    parcels_per_frame=(1, 5),
    parcel_scale=(0.7, 1.3),
    brightness=(0.55, 1.45),
    contrast=(0.65, 1.3),
    colour_cast=0.18,
    light_gradient=0.45,
    blur_sigma=(0.0, 1.1),
    motion_blur_px=(0, 3),
    noise_sigma=(0.0, 12.0),
    module_px=(2, 4),
    label_jitter_deg=15.0,
    max_overlap=0.32,
    distractors=(0, 9),
)
PRESETS = {"training": TRAINING, "held-out": HELD_OUT, "wide": WIDE}
# first seed of each training preset (the held-out set starts at 9,000,000)
FIRST_SEED = {"training": 1_000_000, "wide": 2_000_000}


def _render_one(args: tuple[int, str]) -> tuple[np.ndarray, np.ndarray]:
    seed, preset = args
    scene = render_scene(seed, PRESETS[preset])
    image, lb = letterbox(scene.image, INPUT_HW)
    rows = []
    for p in scene.parcels:
        x1, y1, x2, y2 = (np.array(p.box) * lb.scale).tolist()
        x1, x2 = x1 + lb.pad_x, x2 + lb.pad_x
        y1, y2 = y1 + lb.pad_y, y2 + lb.pad_y
        length, width = p.size_px[0] * lb.scale, p.size_px[1] * lb.scale
        rows.append([p.class_id, x1, y1, x2, y2, length, width, p.angle_deg])
    return image, np.array(rows, np.float32).reshape(-1, 8)


def render_set(first_seed: int, count: int, preset: str, workers: int) -> tuple[np.ndarray, list]:
    jobs = [(first_seed + i, preset) for i in range(count)]
    with mp.get_context("fork").Pool(workers) as pool:
        out = pool.map(_render_one, jobs, chunksize=16)
    return np.stack([o[0] for o in out]), [o[1] for o in out]


def _cache_name(preset: str, first: int, count: int) -> str:
    kind = "train" if preset == "training" else preset  # older caches: parcels-train-...
    return f"parcels-{kind}-{first}-{count}.npz"


def load_or_render(
    preset: str, first: int, count: int, cache_dir: Path | None, workers: int
) -> tuple[np.ndarray, list]:
    """``count`` scenes of ``preset`` from seed ``first``, from the cache when there."""
    if count <= 0:
        return np.zeros((0, *INPUT_HW, 3), np.uint8), []
    cache = cache_dir / _cache_name(preset, first, count) if cache_dir else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["images"], [data[f"rows{i}"] for i in range(len(data["images"]))]
    images, rows = np.zeros((0, *INPUT_HW, 3), np.uint8), []
    earlier = _largest_cache(cache_dir, preset, first, count) if cache_dir else None
    if earlier is not None:  # a smaller set from the same seeds: render only the rest
        data = np.load(earlier, allow_pickle=False)
        images = data["images"]
        rows = [data[f"rows{i}"] for i in range(len(images))]
    more, more_rows = render_set(first + len(images), count - len(images), preset, workers)
    images, rows = np.concatenate([images, more]), rows + more_rows
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, **{f"rows{i}": r for i, r in enumerate(rows)})
    return images, rows


def _largest_cache(folder: Path, preset: str, first: int, count: int) -> Path | None:
    best, best_n = None, 0
    kind = "train" if preset == "training" else preset
    for f in folder.glob(f"parcels-{kind}-{first}-*.npz"):
        n = int(f.stem.rsplit("-", 1)[1])
        if best_n < n < count:
            best, best_n = f, n
    return best


def load_coco_sets(dirs: list[Path], cache_dir: Path | None) -> tuple[np.ndarray, list]:
    """Letterboxed images and rows of COCO data sets (the 3D renders of ``render3d/``, or
    any set in the same layout): visible box, and length, width and angle of the oriented
    box (the annotation's corners), in input pixels; cached per set and size."""
    import cv2 as _cv2

    from vision.finetune.head import oriented_box

    images, rows = [np.zeros((0, *INPUT_HW, 3), np.uint8)], []
    for d in dirs:
        ds = read_coco(d)
        index = {c: i for i, c in enumerate(CLASSES)}
        unknown = {a.class_name for s in ds.samples for a in s.annotations} - set(index)
        if unknown:
            raise ValueError(f"{d}: classes {sorted(unknown)} are not the model's {CLASSES}")
        name = f"coco-{Path(d).resolve().name}-{len(ds.samples)}-{INPUT_HW[1]}x{INPUT_HW[0]}.npz"
        cache = cache_dir / name if cache_dir else None
        if cache is not None and cache.is_file():
            data = np.load(cache, allow_pickle=False)
            images.append(data["images"])
            rows += [data[f"rows{i}"] for i in range(len(data["images"]))]
            continue
        ims, rs = [], []
        for s in ds.samples:
            image = _cv2.imread(str(ds.image_path(s)), _cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{ds.image_path(s)}: image missing or not readable")
            lb_image, lb = letterbox(image, INPUT_HW)
            r = []
            for a in s.annotations:
                x1, y1, x2, y2 = a.bbox
                ob = oriented_box(a.corners)
                r.append([
                    index[a.class_name],
                    x1 * lb.scale + lb.pad_x, y1 * lb.scale + lb.pad_y,
                    x2 * lb.scale + lb.pad_x, y2 * lb.scale + lb.pad_y,
                    ob.length * lb.scale, ob.width * lb.scale, ob.angle_deg % 180.0,
                ])  # fmt: skip
            ims.append(lb_image)
            rs.append(np.array(r, np.float32).reshape(-1, 8))
        stacked = np.stack(ims) if ims else np.zeros((0, *INPUT_HW, 3), np.uint8)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, images=stacked, **{f"rows{i}": r for i, r in enumerate(rs)})
        images.append(stacked)
        rows += rs
    return np.concatenate(images), rows


def encode_targets(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian centre heatmaps and per-pixel geometry targets with their weights."""
    oh, ow = OUT_HW
    heat = np.zeros((NUM_CLASSES, oh, ow), np.float32)
    geo = np.zeros((GEOMETRY, oh, ow), np.float32)
    weight = np.zeros((oh, ow), np.float32)
    ys, xs = np.mgrid[0:oh, 0:ow].astype(np.float32)
    for cls, x1, y1, x2, y2, length, width, angle in rows:
        cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        bw, bh = max(1.0, x2 - x1), max(1.0, y2 - y1)
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < ow and 0 <= iy < oh):
            continue
        # the peak (exactly 1: the focal loss's positive) sits on the centre's cell
        sx, sy = max(0.8, bw / STRIDE / 6), max(0.8, bh / STRIDE / 6)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx**2) - ((ys - iy) ** 2) / (2 * sy**2))
        heat[int(cls)] = np.maximum(heat[int(cls)], g)
        a = math.radians(angle)
        geo[:, iy, ix] = [
            cx - ix,
            cy - iy,
            math.log(bw),
            math.log(bh),
            math.log(max(1.0, length)),
            math.log(max(1.0, width)),
            math.cos(2 * a),
            math.sin(2 * a),
        ]
        weight[iy, ix] = 1.0
    return heat, geo, weight


def flip_rows(rows: np.ndarray, horizontal: bool, w: int, h: int) -> np.ndarray:
    out = rows.copy()
    if horizontal:
        out[:, 1], out[:, 3] = w - rows[:, 3], w - rows[:, 1]
    else:
        out[:, 2], out[:, 4] = h - rows[:, 4], h - rows[:, 2]
    out[:, 7] = (180.0 - rows[:, 7]) % 180.0  # a mirror turns the length axis the other way
    return out


def build_model():  # noqa: ANN201 - torch is imported lazily
    import torch
    from torch import nn

    def conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )

    def dws(cin: int, cout: int, s: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, s, 1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU(True),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    class ParcelNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv(3, 16, 3, 2), dws(16, 24, 2))  # stride 4
            self.c3 = nn.Sequential(dws(24, 48, 2), dws(48, 48))  # stride 8
            self.c4 = nn.Sequential(dws(48, 96, 2), dws(96, 96))  # stride 16
            self.c5 = nn.Sequential(dws(96, 160, 2), dws(160, 160), dws(160, 160))  # stride 32
            self.l5 = conv(160, 64, 1)
            self.l4 = conv(96, 64, 1)
            self.l3 = conv(48, 64, 1)
            self.l2 = conv(24, 64, 1)
            self.s4, self.s3, self.s2 = dws(64, 64), dws(64, 64), dws(64, 48)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.heat = nn.Sequential(dws(48, 48), nn.Conv2d(48, NUM_CLASSES, 1))
            self.geo = nn.Sequential(dws(48, 48), nn.Conv2d(48, GEOMETRY, 1))
            self.heat[-1].bias.data.fill_(-2.19)  # prior 0.1: stable focal loss at start

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            c2 = self.stem(x)
            c3 = self.c3(c2)
            c4 = self.c4(c3)
            c5 = self.c5(c4)
            p4 = self.s4(self.l4(c4) + self.up(self.l5(c5)))
            p3 = self.s3(self.l3(c3) + self.up(p4))
            p2 = self.s2(self.l2(c2) + self.up(p3))
            return self.heat(p2), self.geo(p2)

    return ParcelNet()


def focal_loss(logits, target):  # noqa: ANN001, ANN201 - torch tensors
    import torch

    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    n = pos.sum().clamp(min=1)
    return -(pos_loss.sum() + neg_loss.sum()) / n


def geometry_loss(pred, geo, weight):  # noqa: ANN001, ANN201 - torch tensors
    w = weight.unsqueeze(1)
    n = weight.sum().clamp(min=1)
    l1 = (pred - geo).abs() * w
    # offsets, box size, oriented size, angle: angle matters for deskewing, size for mAP
    scale = pred.new_tensor([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]).view(1, -1, 1, 1)
    return (l1 * scale).sum() / n


class Budget:
    """How much of the training budget is spent: wall time, or this process's CPU time
    (``cpu``: on a shared machine a run starved by higher-priority work spends nothing while
    it waits, so its learning-rate schedule and its step count do not depend on the load),
    with an optional wall-clock cap so a starved run still ends."""

    def __init__(self, minutes: float, clock: str = "wall", max_wall_minutes: float = 0) -> None:
        self.seconds = minutes * 60
        self.clock = clock
        self.max_wall = max_wall_minutes * 60
        self.t0_wall, self.t0_cpu = time.time(), time.process_time()

    def wall(self) -> float:
        return time.time() - self.t0_wall

    def spent(self) -> float:
        """Seconds of the budget spent (wall or CPU)."""
        return self.wall() if self.clock == "wall" else time.process_time() - self.t0_cpu

    def fraction(self) -> float:
        """Share of the budget spent: of the CPU (or wall) budget or of the wall-clock cap,
        whichever is further on, so a starved run still decays its learning rate to the end
        of its schedule before the cap stops it (not cut off at a high rate)."""
        share = self.spent() / self.seconds
        if self.max_wall:
            share = max(share, self.wall() / self.max_wall)
        return min(1.0, share)

    def left(self) -> bool:
        return self.fraction() < 1.0


def set_learning_rate(opt, lr: float, step: int, warmup_steps: int, frac: float) -> None:  # noqa: ANN001
    """Linear warm-up over ``warmup_steps``, then cosine decay to 2% over the wall-clock
    budget (``frac``: the share of it spent)."""
    warm = min(1.0, (step + 1) / warmup_steps)
    cos = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    for group in opt.param_groups:
        group["lr"] = lr * warm * cos


def update_ema(ema, model, step: int, cap: float) -> None:  # noqa: ANN001 - torch modules
    """What ships is an exponential moving average of the weights (decay ramps up to ``cap``);
    integer buffers (BatchNorm's counter) are copied."""
    import torch

    with torch.no_grad():
        decay = min(cap, (1 + step) / (10 + step))
        for pe, pm in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
            if pe.dtype.is_floating_point:
                pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
            else:
                pe.copy_(pm)


def export(model, path: Path) -> None:  # noqa: ANN001
    import onnx
    import torch
    from torch import nn

    class Exported(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.pool = nn.MaxPool2d(3, 1, 1)

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            heat, geo = self.net(images)
            heat = torch.sigmoid(heat)
            peaks = heat * (self.pool(heat) == heat).float()
            return peaks, geo

    model.eval()
    dummy = torch.zeros(1, 3, *INPUT_HW)
    torch.onnx.export(
        Exported(model),
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["peaks", "geometry"],
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(str(path))
    meta = {
        "wolfpack_format": "centernet-obb-v1",
        "names": repr(dict(enumerate(CLASSES))),
        "imgsz": json.dumps(list(INPUT_HW)),
        "stride": str(STRIDE),
        "geometry": "dx,dy,log_w,log_h,log_length,log_width,cos2a,sin2a",
        "description": "wolfpack-edge parcel detector (box, polybag, envelope, irregular)",
        # the second stage, a file beside this one (training/train_parcel_classifier.py)
        "wolfpack_classifier": "parcels-classifier.onnx",
    }
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def augment(
    rng: np.random.Generator, img: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A random flip, zoom/shift and photometric change of one letterboxed training image
    and its rows (class, x1, y1, x2, y2, length, width, angle in input pixels): cheap variety
    on top of the rendered scenes, which cost ~100 ms each to render."""
    h, w = INPUT_HW
    mode = int(rng.integers(0, 4))
    if mode == 1:
        img, rows = img[:, ::-1], flip_rows(rows, True, w, h)
    elif mode == 2:
        img, rows = img[::-1], flip_rows(rows, False, w, h)
    elif mode == 3:  # both flips: a half turn
        img = img[::-1, ::-1]
        rows = flip_rows(flip_rows(rows, True, w, h), False, w, h)
    out = np.ascontiguousarray(img).astype(np.float32)
    rows = rows.copy()
    if rng.random() < 0.5:  # zoom and shift: parcel sizes and positions between renders
        s = float(rng.uniform(0.85, 1.2))
        tx = float(rng.uniform(min(0.0, w - w * s), max(0.0, w - w * s)))
        ty = float(rng.uniform(min(0.0, h - h * s), max(0.0, h - h * s)))
        m = np.array([[s, 0, tx], [0, s, ty]], np.float32)
        grey = (114.0, 114.0, 114.0)  # the letterbox padding
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=grey)
        rows[:, [1, 3]] = rows[:, [1, 3]] * s + tx
        rows[:, [2, 4]] = rows[:, [2, 4]] * s + ty
        rows[:, 5:7] *= s
        full = np.maximum(1e-3, (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2]))
        rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, w)
        rows[:, [2, 4]] = rows[:, [2, 4]].clip(0, h)
        kept = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2]) / full
        rows = rows[kept >= 0.4]  # mostly cut off by the new border: not a parcel to report
    # photometric: exposure, contrast, white balance, sensor noise, focus
    gain = rng.uniform(0.9, 1.1, 3) * rng.uniform(0.75, 1.3)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.75, 1.3) + mean
    out *= gain.astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 0.8)))
    if rng.random() < 0.5:
        out += rng.normal(0, rng.uniform(1, 6), out.shape).astype(np.float32)
    return np.clip(out, 0, 255), rows


def _graph_outputs(out) -> list[np.ndarray]:  # noqa: ANN001 - torch tensors
    """What the exported graph gives for the network's (heat, geometry): peaks, geometry."""
    import torch

    heat, geo = out
    h = torch.sigmoid(heat)
    peaks = h * (torch.nn.functional.max_pool2d(h, 3, 1, 1) == h).float()
    return [peaks.numpy(), geo.numpy()]


def _seed_range(d: Path) -> list[int] | None:
    """First and last renderer seed of a COCO set (``seed`` in its images' entries)."""
    seeds = [s.meta["seed"] for s in read_coco(d).samples if "seed" in s.meta]
    return [min(seeds), max(seeds)] if seeds else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=6000, help="rendered 'wide' training images")
    ap.add_argument(
        "--training-images", type=int, default=6000,
        help="rendered images with the narrower TRAINING ranges, added to the wide ones",
    )  # fmt: skip
    ap.add_argument("--minutes", type=float, default=45.0, help="training time budget")
    ap.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="what --minutes counts: wall time, or this process's CPU time (a shared machine)",
    )  # fmt: skip
    ap.add_argument(
        "--max-wall-minutes", type=float, default=0.0,
        help="with --clock cpu: stop after this much wall time all the same (0: no cap)",
    )  # fmt: skip
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--warmup", type=int, default=300,
        help="steps of linear learning-rate warm-up (fewer when fine-tuning with --init)",
    )  # fmt: skip
    ap.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (on 2 shared cores, 2 threads spin against each other: 7x slower)",
    )  # fmt: skip
    ap.add_argument("--workers", type=int, default=2, help="rendering processes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "vision/models/parcels.onnx")
    ap.add_argument("--log", type=Path, default=REPO / "vision/models/parcels.train.json")
    ap.add_argument(
        "--cache", type=Path, help="keep the rendered images here and reuse them (same seed, count)"
    )
    ap.add_argument(
        "--init", type=Path,
        help="start from these weights: a state dict saved by an earlier run (.pt), or a "
        "shipped model (.onnx; its BatchNorms stay folded, see training/onnx_init.py)",
    )  # fmt: skip
    ap.add_argument(
        "--render3d", type=Path, nargs="*", default=[], metavar="DIR",
        help="COCO sets of 3D renders (training/render3d/make_dataset.py) to train on too",
    )  # fmt: skip
    ap.add_argument(
        "--mix3d", type=float, default=0.5,
        help="share of each batch drawn from the --render3d images (when there are any)",
    )  # fmt: skip
    ap.add_argument(
        "--snapshot-minutes", type=float, default=10.0,
        help="export the averaged weights to OUT.snapshot.onnx this often (0: never)",
    )  # fmt: skip
    twin.add_arguments(ap, "detectors")
    args = ap.parse_args()
    twin.check_arguments(ap, args)

    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    t0 = time.time()
    sets = [("wide", args.images), ("training", args.training_images)]
    images, rows = np.zeros((0, *INPUT_HW, 3), np.uint8), []
    for preset, count in sets:
        first = FIRST_SEED[preset] * args.seed
        im, ro = load_or_render(preset, first, count, args.cache, args.workers)
        images, rows = np.concatenate([images, im]), rows + ro
        print(f"{preset}: {len(im)} images from seed {first}", flush=True)
    images3d, rows3d = load_coco_sets(args.render3d, args.cache)
    if args.render3d:
        print(f"3D renders: {len(images3d)} images from {len(args.render3d)} sets", flush=True)
    render_s = time.time() - t0
    print(f"{len(images) + len(images3d)} training images ready in {render_s:.0f} s", flush=True)
    print(f"{sum(len(r) for r in rows) + sum(len(r) for r in rows3d)} parcels", flush=True)

    state = None  # a .pt to start from: folded if its run itself started from an ONNX file
    if args.init is not None and args.init.suffix != ".onnx":
        state = torch.load(args.init, map_location="cpu")
    folded = args.init is not None and (state is None or is_folded_state(state))

    def new_model():  # a torch module
        if args.twin:
            from training.twin import twin_detector

            return twin_detector(*args.twin, args.twin_weight)
        return fold_batchnorm(build_model()) if folded else build_model()

    model = new_model()
    if args.twin:
        twin.start(model, args, state)
    elif folded and state is None:
        load_onnx_weights(model, args.init, torch.rand(1, 3, *INPUT_HW), _graph_outputs)
        print(f"starting from {args.init} (BatchNorm folded)", flush=True)
    elif args.init is not None:
        model.load_state_dict(state)
        print(f"starting from {args.init}", flush=True)
    ema = new_model()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=args.lr, weight_decay=5e-4)
    budget = Budget(args.minutes, args.clock, args.max_wall_minutes)
    rng = np.random.default_rng(args.seed)
    step, history = 0, []
    next_snapshot = args.snapshot_minutes * 60 if args.snapshot_minutes > 0 else float("inf")
    snapshot = args.out.with_suffix(".snapshot.onnx")
    model.train()
    n3d = round(args.batch * args.mix3d) if len(images3d) else 0
    n2d = args.batch - n3d if len(images) else 0
    while budget.left():
        picks = [(images[i], rows[i]) for i in rng.choice(len(images), n2d, replace=False)]
        picks += [(images3d[i], rows3d[i]) for i in rng.choice(len(images3d), n3d, replace=False)]
        xb, hb, gb, wb = [], [], [], []
        for image, image_rows in picks:
            img, r = augment(rng, image, image_rows)
            t = encode_targets(r)
            xb.append(img[:, :, ::-1].transpose(2, 0, 1))
            hb.append(t[0])
            gb.append(t[1])
            wb.append(t[2])
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xb))) / 255.0
        h_t = torch.from_numpy(np.stack(hb))
        g_t = torch.from_numpy(np.stack(gb))
        w_t = torch.from_numpy(np.stack(wb))
        set_learning_rate(opt, args.lr, step, args.warmup, budget.fraction())
        ph, pg = model(x)
        lh = focal_loss(ph, h_t)
        lg = geometry_loss(pg, g_t, w_t)
        loss = lh + lg
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        update_ema(ema, model, step, 0.999)
        if step % 25 == 0:
            history.append(
                {
                    "step": step,
                    "s": round(budget.wall()),
                    "cpu_s": round(time.process_time() - budget.t0_cpu),
                    "heat": lh.item(),
                    "geo": lg.item(),
                }
            )
            print(
                f"step {step} t={budget.wall():.0f}s budget={budget.fraction():.2f} "
                f"heat={lh.item():.3f} "
                f"geo={lg.item():.3f}",
                flush=True,
            )
        if budget.wall() >= next_snapshot:
            export(ema, snapshot)
            ema.eval()  # export leaves it in eval mode; it is never trained
            print(f"snapshot {snapshot} at step {step}", flush=True)
            next_snapshot += args.snapshot_minutes * 60
    train_s = budget.wall()
    train_cpu_s = time.process_time() - budget.t0_cpu
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights = Path(tempfile.gettempdir()) / f"{args.out.stem}.pt"  # to continue from (--init)
    torch.save(ema.state_dict(), weights)
    print(f"weights kept in {weights}", flush=True)
    export(ema, args.out)
    log = {
        "command": "lowprio .venv/bin/python training/train_parcel_model.py "
        + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "seed": args.seed,
        "training_sets": [
            {
                "randomisation": preset,
                "images": count,
                "seeds": [
                    FIRST_SEED[preset] * args.seed,
                    FIRST_SEED[preset] * args.seed + count - 1,
                ],
            }
            for preset, count in sets
            if count > 0
        ],
        "render3d_sets": [
            {"dir": str(d), "images": len(read_coco(d).samples), "seeds": _seed_range(d)}
            for d in args.render3d
        ],
        "batch_share_3d": n3d / args.batch if args.batch else 0.0,
        "threads": args.threads,
        "randomisation_wide": repr(WIDE),
        "augmentation": "flips and half turns, zoom x0.85-1.2 with shift (p 0.5), exposure "
        "x0.75-1.3, contrast x0.75-1.3, per-channel gain +-10%, blur (p 0.3), noise (p 0.5)",
        "weights": "exponential moving average (0.999)",
        "init": str(args.init) if args.init else None,
        "twin": twin.provenance(args),
        "parameters": params,
        "input_hw": list(INPUT_HW),
        "steps": step,
        "batch": args.batch,
        "lr": args.lr,
        "warmup_steps": args.warmup,
        "render_seconds": round(render_s),
        "train_seconds": round(train_s),
        "train_cpu_seconds": round(train_cpu_s),
        "budget": {
            "minutes": args.minutes,
            "clock": args.clock,
            "max_wall_minutes": args.max_wall_minutes,
        },
        "final_loss": history[-1] if history else None,
        "history": history[::4],
    }
    args.log.write_text(json.dumps(log, indent=1) + "\n")
    print(f"exported {args.out} ({args.out.stat().st_size} bytes) after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
