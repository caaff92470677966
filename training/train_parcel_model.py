"""Trains the shipped parcel detector on scenes rendered by sim_hardware, and exports it to ONNX.

One reproducible command (CPU is enough: about 3 minutes of rendering and 15 of training on
2 shared cores; the budget is wall time, so a busier machine trains fewer steps):

    .venv/bin/pip install torch==2.13.0          # the optional 'train' extra, CPU wheel
    nice -n 10 .venv/bin/python training/train_parcel_model.py

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
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_hardware.camera.randomisation import CLASSES, HELD_OUT, TRAINING  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from vision.letterbox import letterbox  # noqa: E402

INPUT_HW = (128, 160)
STRIDE = 4
OUT_HW = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)
NUM_CLASSES = len(CLASSES)
# geometry channels: dx, dy, log w, log h (axis-aligned), log length, log width, cos2a, sin2a
GEOMETRY = 8


def _render_one(args: tuple[int, str]) -> tuple[np.ndarray, np.ndarray]:
    seed, preset = args
    scene = render_scene(seed, TRAINING if preset == "training" else HELD_OUT)
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


def _largest_cache(folder: Path, first: int, count: int) -> Path | None:
    best, best_n = None, 0
    for f in folder.glob(f"parcels-train-{first}-*.npz"):
        n = int(f.stem.rsplit("-", 1)[1])
        if best_n < n < count:
            best, best_n = f, n
    return best


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
    }
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=2400, help="rendered training images")
    ap.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "vision/models/parcels.onnx")
    ap.add_argument("--log", type=Path, default=REPO / "vision/models/parcels.train.json")
    ap.add_argument(
        "--cache", type=Path, help="keep the rendered images here and reuse them (same seed, count)"
    )
    args = ap.parse_args()

    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    first = 1_000_000 * args.seed
    cache = args.cache / f"parcels-train-{first}-{args.images}.npz" if args.cache else None
    earlier = _largest_cache(args.cache, first, args.images) if args.cache else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        images = data["images"]
        rows = [data[f"rows{i}"] for i in range(len(images))]
    else:
        images, rows = np.zeros((0, *INPUT_HW, 3), np.uint8), []
        if earlier is not None:  # a smaller set from the same seeds: render only the rest
            data = np.load(earlier, allow_pickle=False)
            images = data["images"]
            rows = [data[f"rows{i}"] for i in range(len(images))]
        more, more_rows = render_set(
            first + len(images), args.images - len(images), "training", args.threads
        )
        images, rows = np.concatenate([images, more]), rows + more_rows
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, images=images, **{f"rows{i}": r for i, r in enumerate(rows)})
    render_s = time.time() - t0
    print(f"rendered {len(images)} training images in {render_s:.0f} s", flush=True)
    targets = [encode_targets(r) for r in rows]
    positives = sum(int((t[0] == 1.0).sum()) for t in targets)
    print(f"{sum(len(r) for r in rows)} parcels, {positives} heatmap peaks", flush=True)
    heat = np.stack([t[0] for t in targets])
    geo = np.stack([t[1] for t in targets])
    weight = np.stack([t[2] for t in targets])
    flipped_rows = [
        (
            flip_rows(r, True, INPUT_HW[1], INPUT_HW[0]),
            flip_rows(r, False, INPUT_HW[1], INPUT_HW[0]),
        )
        for r in rows
    ]
    flip_targets = [(encode_targets(a), encode_targets(b)) for a, b in flipped_rows]

    model = build_model()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    budget = args.minutes * 60
    rng = np.random.default_rng(args.seed)
    step, history = 0, []
    t_train = time.time()
    model.train()
    while time.time() - t_train < budget:
        idx = rng.choice(len(images), args.batch, replace=False)
        xb, hb, gb, wb = [], [], [], []
        for i in idx:
            mode = int(rng.integers(0, 3))
            img = images[i]
            if mode == 0:
                t = (heat[i], geo[i], weight[i])
            elif mode == 1:
                img, t = img[:, ::-1], flip_targets[i][0]
            else:
                img, t = img[::-1], flip_targets[i][1]
            xb.append(img[:, :, ::-1].transpose(2, 0, 1))
            hb.append(t[0])
            gb.append(t[1])
            wb.append(t[2])
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xb))).float() / 255.0
        h_t = torch.from_numpy(np.stack(hb))
        g_t = torch.from_numpy(np.stack(gb))
        w_t = torch.from_numpy(np.stack(wb))
        frac = (time.time() - t_train) / budget
        for group in opt.param_groups:  # cosine decay over the time budget
            group["lr"] = 3e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        ph, pg = model(x)
        lh = focal_loss(ph, h_t)
        lg = geometry_loss(pg, g_t, w_t)
        loss = lh + lg
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            history.append(
                {
                    "step": step,
                    "s": round(time.time() - t_train),
                    "heat": lh.item(),
                    "geo": lg.item(),
                }
            )
            print(
                f"step {step} t={time.time() - t_train:.0f}s heat={lh.item():.3f} "
                f"geo={lg.item():.3f}",
                flush=True,
            )
    train_s = time.time() - t_train
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), "/tmp/parcels-last.pt")  # for inspection; not shipped
    export(model, args.out)
    log = {
        "command": "nice -n 10 .venv/bin/python training/train_parcel_model.py "
        + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "seed": args.seed,
        "training_images": len(images),
        "training_seeds": [1_000_000 * args.seed, 1_000_000 * args.seed + args.images - 1],
        "randomisation": "sim_hardware.camera.randomisation.TRAINING",
        "augmentation": "horizontal and vertical flips",
        "parameters": params,
        "input_hw": list(INPUT_HW),
        "steps": step,
        "batch": args.batch,
        "render_seconds": round(render_s),
        "train_seconds": round(train_s),
        "final_loss": history[-1] if history else None,
        "history": history[::4],
    }
    args.log.write_text(json.dumps(log, indent=1) + "\n")
    print(f"exported {args.out} ({args.out.stat().st_size} bytes) after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
