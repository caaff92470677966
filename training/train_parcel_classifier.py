"""Trains the shipped parcel classifier on upright crops of rendered parcels, and exports it.

The detector (``train_parcel_model.py``) finds parcels well (class-agnostic AP@0.5 0.96 on
held-out renders) but confuses their classes: at its 160x128 input the cues between a
polybag, an envelope and a white box are below a pixel. This second model classifies each
detected parcel from a 128x96 upright crop of the full-resolution frame (``vision/crops.py``),
where those cues are still there. One reproducible command (CPU; rendering is cached):

    .venv/bin/pip install torch==2.13.0          # the optional 'train' extra, CPU wheel
    nice -n 19 .venv/bin/python training/train_parcel_classifier.py --cache /tmp/vision-cache

The data: scenes with the detector's training seeds and ranges (WIDE and TRAINING; the
held-out seeds from 9,000,000 are never used). Each parcel is cropped three times: on its
true box with a detector's kind of errors, and on the box the shipped detector itself
predicts for it, as is and with small errors. The detector's boxes matter: on near-square
and partly hidden parcels its angle and centre are off by tens of degrees and pixels, and a
classifier trained on true boxes only took such tilted boxes for irregular items (held-out
accuracy 99% on true boxes, 91.5% on detected ones). Photometric augmentation and flips on
the fly; a validation set of other seeds (7,000,000+) picks nothing but is printed, so the
held-out evaluation stays untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_hardware.camera.randomisation import CLASSES, TRAINING  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from training import twin  # noqa: E402
from training.onnx_init import (  # noqa: E402
    fold_batchnorm,
    is_folded_state,
    load_onnx_weights,
)
from training.train_parcel_model import (  # noqa: E402
    FIRST_SEED,
    WIDE,
    Budget,
    set_learning_rate,
    update_ema,
)
from vision.crops import CROP_WH, MARGIN, upright_crops  # noqa: E402
from vision.detections import OrientedBox  # noqa: E402

PRESETS = {"training": TRAINING, "wide": WIDE}
VALIDATION_SEED = 7_000_000
DETECTOR_MODEL = REPO / "vision/models/parcels.onnx"
MIN_VISIBLE = 0.3  # parcels mostly hidden by others are still detected: train on them too


def jittered_box(rng: np.random.Generator, box: OrientedBox, spread: float = 1.0) -> OrientedBox:
    """``box`` with errors like a detector's: centre, size, angle (more for near-square
    parcels, whose angle is ill-defined), either end first, length and width swapped."""
    length, width, angle = box.length, box.width, box.angle_deg
    square = width / max(length, 1.0) > 0.8
    angle += rng.normal(0, (20.0 if square else 6.0) * spread)
    if square and rng.random() < 0.3:  # near-square: length and width swap
        length, width, angle = width, length, angle + 90.0
    if rng.random() < 0.5:  # the detector's angle is modulo 180: either end first
        angle += 180.0
    a = math.radians(angle)
    du, dv = rng.normal(0, 0.06 * spread) * length, rng.normal(0, 0.06 * spread) * width
    cx = box.cx + du * math.cos(a) - dv * math.sin(a)
    cy = box.cy + du * math.sin(a) + dv * math.cos(a)
    grow = 0.12 * spread
    return OrientedBox(
        cx,
        cy,
        length * rng.uniform(1 - grow, 1 + grow),
        width * rng.uniform(1 - grow, 1 + grow),
        angle % 360,
    )


_DETECTOR = None


def _detections(image: np.ndarray) -> list:
    """The shipped detector's own boxes on a training scene (its own classes not used): at
    run time the classifier sees these, with their angle and centre errors on near-square
    and partly hidden parcels, not the true boxes."""
    global _DETECTOR
    if _DETECTOR is None:  # one per rendering process, made after the fork
        from vision.detector import Detector, DetectorSettings

        _DETECTOR = Detector(
            DETECTOR_MODEL, threads=1, settings=DetectorSettings(confidence=0.2), classifier=None
        )
    return _DETECTOR.detect(image)


def _render_one(args: tuple[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Crops of one scene: per parcel one of its true box with detector-like errors, and
    two of the detector's box matched to it (as is, and with small errors)."""
    from vision.tracker import iou_matrix

    seed, preset = args
    scene = render_scene(seed, PRESETS[preset])
    rng = np.random.default_rng(seed + 17)
    parcels = [p for p in scene.parcels if p.visible_fraction >= MIN_VISIBLE]
    boxes, classes = [], []
    for p in parcels:
        true = OrientedBox(p.centre[0], p.centre[1], *p.size_px, p.angle_deg)
        boxes.append(jittered_box(rng, true))
        classes.append(p.class_id)
    dets = [d for d in _detections(scene.image) if d.oriented is not None]
    if dets and parcels:
        ious = iou_matrix(
            np.array([p.box for p in parcels], np.float32),
            np.array([d.box for d in dets], np.float32),
        )
        for gi, p in enumerate(parcels):
            j = int(np.argmax(ious[gi]))
            if ious[gi, j] >= 0.5:
                boxes.append(dets[j].oriented)
                boxes.append(jittered_box(rng, dets[j].oriented, spread=0.4))
                classes += [p.class_id, p.class_id]
    crops = upright_crops(scene.image, boxes)
    w, h = CROP_WH
    return np.array(crops, np.uint8).reshape(-1, h, w, 3), np.array(classes, np.int64)


def load_or_render(
    preset: str, first: int, count: int, cache: Path | None, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and classes of ``count`` scenes of ``preset`` from seed ``first``, cached."""
    # 3: warp crops, detector boxes
    name = f"crops3-{preset}-{first}-{count}-{CROP_WH[0]}x{CROP_WH[1]}.npz"
    path = cache / name if cache else None
    if path is not None and path.is_file():
        data = np.load(path)
        return data["crops"], data["classes"]
    jobs = [(first + i, preset) for i in range(count)]
    t0 = time.time()
    crops, classes = [], []
    with mp.get_context("fork").Pool(workers) as pool:
        for i, (c, k) in enumerate(pool.imap(_render_one, jobs, chunksize=8)):
            crops.append(c)
            classes.append(k)
            if (i + 1) % 500 == 0:
                rate = (i + 1) / (time.time() - t0)
                print(
                    f"  {preset}: {i + 1}/{count} scenes, {rate:.1f}/s, "
                    f"{(count - i - 1) / rate:.0f} s left",
                    flush=True,
                )
    out = np.concatenate(crops), np.concatenate(classes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, crops=out[0], classes=out[1])
    return out


def load_coco_crops(
    dirs: list[Path], detector: Path | None, cache: Path | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and classes of COCO data sets (the 3D renders of ``render3d/``): per parcel
    two of its annotated oriented box with detector-like errors (as ``jittered_box``, full
    and small), and, with ``detector``, one of that detector's box matched to it (IoU >= 0.5),
    as at run time. Parcels whose visible box is under 12 px a side are left out."""
    import cv2

    from vision.dataset.coco import read_coco
    from vision.detector import Detector, DetectorSettings
    from vision.finetune.head import oriented_box
    from vision.tracker import iou_matrix

    det = None
    if detector is not None:
        det = Detector(
            detector, threads=1, settings=DetectorSettings(confidence=0.2), classifier=None
        )
    index = {c: i for i, c in enumerate(CLASSES)}
    crops_out, classes_out = [], []
    for d in dirs:
        ds = read_coco(d)
        # the detector's boxes are in the crops: its file's hash is in the cache's name
        tag = hashlib.sha1(detector.read_bytes()).hexdigest()[:8] if detector else "none"
        size = f"{CROP_WH[0]}x{CROP_WH[1]}"
        name = f"crops3d-{Path(d).resolve().name}-{len(ds.samples)}-{tag}-{size}.npz"
        path = cache / name if cache else None
        if path is not None and path.is_file():
            data = np.load(path)
            crops_out.append(data["crops"])
            classes_out.append(data["classes"])
            continue
        rng = np.random.default_rng(seed + 23)
        crops, classes = [], []
        for s in ds.samples:
            image = cv2.imread(str(ds.image_path(s)), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{ds.image_path(s)}: image missing or not readable")
            anns = [
                a for a in s.annotations
                if min(a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]) >= 12
            ]  # fmt: skip
            boxes, ks = [], []
            for a in anns:
                true = oriented_box(a.corners)
                boxes += [jittered_box(rng, true), jittered_box(rng, true, spread=0.4)]
                ks += [index[a.class_name]] * 2
            if det is not None and anns:
                dets = [x for x in det.detect(image) if x.oriented is not None]
                if dets:
                    ious = iou_matrix(
                        np.array([a.bbox for a in anns], np.float32),
                        np.array([x.box for x in dets], np.float32),
                    )
                    for gi, a in enumerate(anns):
                        j = int(np.argmax(ious[gi]))
                        if ious[gi, j] >= 0.5:
                            boxes.append(dets[j].oriented)
                            ks.append(index[a.class_name])
            if boxes:
                crops += upright_crops(image, boxes)
                classes += ks
        w, h = CROP_WH
        out = np.array(crops, np.uint8).reshape(-1, h, w, 3), np.array(classes, np.int64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, crops=out[0], classes=out[1])
        crops_out.append(out[0])
        classes_out.append(out[1])
    if not crops_out:
        return np.zeros((0, CROP_WH[1], CROP_WH[0], 3), np.uint8), np.zeros(0, np.int64)
    return np.concatenate(crops_out), np.concatenate(classes_out)


def build_model():  # noqa: ANN201 - torch is imported lazily
    from torch import nn

    def conv(cin: int, cout: int, s: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
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

    return nn.Sequential(
        conv(3, 24, 2),  # 48 x 64: the first layer still sees the thin lines
        dws(24, 32),
        dws(32, 48, 2),  # 24 x 32
        dws(48, 48),
        dws(48, 96, 2),  # 12 x 16
        dws(96, 96),
        dws(96, 160, 2),  # 6 x 8
        dws(160, 160),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(160, len(CLASSES)),
    )


def augment(rng: np.random.Generator, x):  # noqa: ANN001, ANN201 - torch tensors
    """Flips (a mirrored parcel is the same class), exposure, contrast, white balance, noise."""
    import torch

    n = x.shape[0]
    flip_w = torch.from_numpy(rng.random(n) < 0.5)
    flip_h = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(flip_w.view(-1, 1, 1, 1), x.flip(3), x)
    x = torch.where(flip_h.view(-1, 1, 1, 1), x.flip(2), x)
    gain = torch.from_numpy(
        (rng.uniform(0.9, 1.1, (n, 3)) * rng.uniform(0.75, 1.3, (n, 1))).astype(np.float32)
    ).view(n, 3, 1, 1)
    contrast = torch.from_numpy(rng.uniform(0.75, 1.3, n).astype(np.float32)).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * gain
    sigma = torch.from_numpy(rng.uniform(0, 0.025, n).astype(np.float32)).view(n, 1, 1, 1)
    x = x + torch.randn_like(x) * sigma
    return x.clamp(0, 1)


def to_tensor(crops: np.ndarray):  # noqa: ANN201 - torch tensor
    import torch

    # BGR uint8 N x H x W x 3 -> RGB float N x 3 x H x W in [0, 1], as at run time; stored
    # channels-last, which trains this depthwise network ~1.8x faster on the CPU
    x = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous(memory_format=torch.channels_last)


def confusion(model, crops: np.ndarray, classes: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    model.eval()
    out = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    with torch.no_grad():
        for i in range(0, len(crops), 256):
            pred = model(to_tensor(crops[i : i + 256])).argmax(1).numpy()
            np.add.at(out, (classes[i : i + 256], pred), 1)
    model.train()
    return out


def export(model, path: Path) -> None:  # noqa: ANN001
    import onnx
    import torch
    from torch import nn

    class Exported(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, crops: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(crops), dim=1)

    model.eval()
    model = model.to(memory_format=torch.contiguous_format)
    w, h = CROP_WH
    torch.onnx.export(
        Exported(model),
        (torch.zeros(1, 3, h, w),),
        str(path),
        input_names=["crops"],
        output_names=["probabilities"],
        dynamic_axes={"crops": {0: "n"}, "probabilities": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(str(path))
    meta = {
        "wolfpack_format": "parcel-classifier-v1",
        "names": repr(dict(enumerate(CLASSES))),
        "crop_wh": json.dumps(list(CROP_WH)),
        "margin": str(MARGIN),
        "description": "wolfpack-edge parcel classifier on upright crops (vision/crops.py)",
    }
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=6000, help="rendered 'wide' scenes")
    ap.add_argument("--training-images", type=int, default=4000, help="rendered TRAINING scenes")
    ap.add_argument("--validation-images", type=int, default=400)
    ap.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    ap.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="what --minutes counts: wall time, or this process's CPU time (a shared machine)",
    )  # fmt: skip
    ap.add_argument(
        "--max-wall-minutes", type=float, default=0.0,
        help="with --clock cpu: stop after this much wall time all the same (0: no cap)",
    )  # fmt: skip
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--warmup", type=int, default=200,
        help="steps of linear learning-rate warm-up (fewer when fine-tuning with --init)",
    )  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores: 1)")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "vision/models/parcels-classifier.onnx")
    ap.add_argument(
        "--log", type=Path, default=REPO / "vision/models/parcels-classifier.train.json"
    )
    ap.add_argument("--cache", type=Path, help="keep the rendered crops here and reuse them")
    ap.add_argument("--render-only", action="store_true", help="render (and cache), then stop")
    ap.add_argument(
        "--init", type=Path,
        help="start from these weights: a state dict saved by an earlier run (.pt), or a "
        "shipped classifier (.onnx; its BatchNorms stay folded, see training/onnx_init.py)",
    )  # fmt: skip
    ap.add_argument(
        "--render3d", type=Path, nargs="*", default=[], metavar="DIR",
        help="COCO sets of 3D renders (training/render3d/make_dataset.py) to crop and train on",
    )  # fmt: skip
    ap.add_argument(
        "--validation3d", type=Path, metavar="DIR",
        help="a COCO set of 3D renders whose crops are printed as a second validation",
    )  # fmt: skip
    ap.add_argument(
        "--detector", default=str(DETECTOR_MODEL),
        help="the detector whose boxes on the --render3d images are cropped too (the one the "
        "classifier will run behind), or 'none' (annotated boxes with errors only)",
    )  # fmt: skip
    ap.add_argument(
        "--mix3d", type=float, default=0.5,
        help="share of each batch drawn from the --render3d crops (when there are any)",
    )  # fmt: skip
    twin.add_arguments(ap, "classifiers")
    args = ap.parse_args()
    args.detector = None if args.detector == "none" else Path(args.detector)
    twin.check_arguments(ap, args)

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    sets = [("wide", args.images), ("training", args.training_images)]
    parts = [
        load_or_render(p, FIRST_SEED[p] * args.seed, n, args.cache, args.workers)
        for p, n in sets
        if n > 0
    ]
    w, h = CROP_WH
    crops = np.concatenate([np.zeros((0, h, w, 3), np.uint8), *[c for c, _ in parts]])
    classes = np.concatenate([np.zeros(0, np.int64), *[k for _, k in parts]])
    val_crops, val_classes = load_or_render(
        "wide", VALIDATION_SEED, args.validation_images, args.cache, args.workers
    )
    crops3d, classes3d = load_coco_crops(args.render3d, args.detector, args.cache, args.seed)
    val3d = (
        load_coco_crops([args.validation3d], args.detector, args.cache, args.seed)
        if args.validation3d
        else None
    )
    render_s = time.time() - t0
    counts3d = np.bincount(classes3d, minlength=len(CLASSES)).tolist()
    if len(crops3d):
        print(f"{len(crops3d)} 3D crops {dict(zip(CLASSES, counts3d, strict=True))}", flush=True)
    counts = np.bincount(classes, minlength=len(CLASSES)).tolist()
    print(f"{len(crops)} training crops {dict(zip(CLASSES, counts, strict=True))}, "
          f"{len(val_crops)} validation crops, ready in {render_s:.0f} s", flush=True)  # fmt: skip
    if args.render_only:
        return 0

    state = None  # a .pt to start from: folded if its run itself started from an ONNX file
    if args.init is not None and args.init.suffix != ".onnx":
        state = torch.load(args.init, map_location="cpu")
    folded = args.init is not None and (state is None or is_folded_state(state))

    def new_model():  # a torch module, channels-last
        if args.twin:
            from training.twin import twin_classifier

            net = twin_classifier(*args.twin, args.twin_weight)
        else:
            net = fold_batchnorm(build_model()) if folded else build_model()
        return net.to(memory_format=torch.channels_last)

    model = new_model()
    if args.twin:
        twin.start(model, args, state)
    elif folded and state is None:
        load_onnx_weights(
            model, args.init, torch.rand(2, 3, h, w), lambda o: [torch.softmax(o, 1).numpy()]
        )
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
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    rng = np.random.default_rng(args.seed)
    budget = Budget(args.minutes, args.clock, args.max_wall_minutes)
    step, history = 0, []
    model.train()
    n3d = round(args.batch * args.mix3d) if len(crops3d) else 0
    n2d = args.batch - n3d if len(crops) else 0
    while budget.left():
        i2 = rng.choice(len(crops), n2d, replace=False)
        i3 = rng.choice(len(crops3d), n3d, replace=False)
        x = augment(rng, to_tensor(np.concatenate([crops[i2], crops3d[i3]])))
        y = torch.from_numpy(np.concatenate([classes[i2], classes3d[i3]]))
        set_learning_rate(opt, args.lr, step, args.warmup, budget.fraction())
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        update_ema(ema, model, step, 0.998)
        if step % 50 == 0:
            entry = {
                "step": step,
                "s": round(budget.wall()),
                "cpu_s": round(time.process_time() - budget.t0_cpu),
                "loss": loss.item(),
            }
            if step % 500 == 0:
                cm = confusion(ema, val_crops, val_classes)
                entry["validation_accuracy"] = float(np.trace(cm) / cm.sum())
                if val3d is not None:
                    cm3 = confusion(ema, *val3d)
                    entry["validation3d_accuracy"] = float(np.trace(cm3) / max(1, cm3.sum()))
            history.append(entry)
            print(json.dumps(entry), flush=True)
    train_s = budget.wall()
    train_cpu_s = time.process_time() - budget.t0_cpu
    cm = confusion(ema, val_crops, val_classes)
    accuracy = float(np.trace(cm) / cm.sum())
    print(f"validation accuracy {accuracy:.4f}; confusion (rows truth, columns predicted):")
    print(cm)
    cm3 = confusion(ema, *val3d) if val3d is not None else None
    if cm3 is not None:
        print(f"3D validation accuracy {np.trace(cm3) / max(1, cm3.sum()):.4f}:")
        print(cm3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ema.state_dict(), Path(tempfile.gettempdir()) / f"{args.out.stem}.pt")
    export(ema, args.out)
    log = {
        "command": "lowprio .venv/bin/python training/train_parcel_classifier.py "
        + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "seed": args.seed,
        "training_sets": [
            {
                "randomisation": p,
                "scenes": n,
                "seeds": [FIRST_SEED[p] * args.seed, FIRST_SEED[p] * args.seed + n - 1],
            }
            for p, n in sets
            if n > 0
        ],
        "init": str(args.init) if args.init else None,
        "twin": twin.provenance(args),
        "render3d_sets": [str(d) for d in args.render3d],
        "detector_boxes_from": str(args.detector) if args.detector else None,
        "crops3d": len(crops3d),
        "crops3d_per_class": dict(zip(CLASSES, counts3d, strict=True)),
        "batch_share_3d": n3d / args.batch,
        "threads": args.threads,
        "crops": len(crops),
        "crops_per_class": dict(zip(CLASSES, counts, strict=True)),
        "crop_wh": list(CROP_WH),
        "parameters": params,
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
        "validation": {
            "scenes": args.validation_images,
            "seeds": [VALIDATION_SEED, VALIDATION_SEED + args.validation_images - 1],
            "crops": len(val_crops),
            "accuracy": accuracy,
            "confusion": cm.tolist(),
        },
        "validation3d": None
        if cm3 is None
        else {
            "set": str(args.validation3d),
            "crops": int(cm3.sum()),
            "accuracy": float(np.trace(cm3) / max(1, cm3.sum())),
            "confusion": cm3.tolist(),
        },
        "history": history,
    }
    args.log.write_text(json.dumps(log, indent=1) + "\n")
    print(f"exported {args.out} ({args.out.stat().st_size} bytes) after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
