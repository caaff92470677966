"""Cross-domain figures: a model trained on one family of images, evaluated on another made
by a different method, both ways, and same-domain; with the classifier's last layer
fine-tuned (``vision/finetune/head.py``) on the 3D renders, on the 2D renders, and on both.

The detector is the shipped one throughout (retraining it needs torch and hours; see the
model card); so recall is the shipped detector's on every row, and what the fine-tuning can
move is the class accuracy.

    MUJOCO_GL=egl .venv/bin/python training/render3d/make_dataset.py --images 240 \\
        --first-seed 20000000 --out /tmp/r3train
    MUJOCO_GL=egl .venv/bin/python training/render3d/make_dataset.py --images 120 \\
        --first-seed 30000000 --out /tmp/r3test
    .venv/bin/python training/export_2d_set.py --images 240 --preset training \\
        --first-seed 1000000 --out /tmp/r2train
    .venv/bin/python training/export_2d_set.py --images 120 --out /tmp/r2test
    .venv/bin/python training/cross_domain.py --train3d /tmp/r3train --train2d /tmp/r2train \\
        --test3d /tmp/r3test --test2d /tmp/r2test --out /tmp/xdomain [--json x.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision.config import DEFAULT_MODEL  # noqa: E402
from vision.dataset.coco import read_coco  # noqa: E402
from vision.finetune.evaluate import evaluate_dataset  # noqa: E402
from vision.finetune.head import ClassifierHead, HeadData, classifier_of  # noqa: E402


def _merge(parts: list[HeadData]) -> HeadData:
    offset, idx = 0, []
    for p in parts:
        idx.append(p.image_index + offset)
        offset += int(p.image_index.max()) + 1 if len(p.image_index) else 0
    return HeadData(
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.classes for p in parts]),
        np.concatenate(idx),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    for k in ("train3d", "train2d", "test3d", "test2d", "out"):
        ap.add_argument(f"--{k}", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    feats = {}
    for name in ("train3d", "train2d"):
        head = ClassifierHead(classifier_of(DEFAULT_MODEL))
        feats[name] = head.collect(read_coco(getattr(args, name)))
    models: dict[str, Path] = {"shipped (2D)": Path(DEFAULT_MODEL)}
    for label, parts in (("head on 3D", ["train3d"]), ("head on 2D+3D", ["train2d", "train3d"])):
        head = ClassifierHead(classifier_of(DEFAULT_MODEL))
        r = head.train(_merge([feats[p] for p in parts]), args.steps, args.lr, val_every=0)
        out = args.out / f"{label.replace(' ', '-').replace('+', '')}.onnx"
        head.export(DEFAULT_MODEL, out, {"data": parts, "steps": args.steps, "lr": args.lr,
                                         "per_class": r.per_class})  # fmt: skip
        models[label] = out
    rows = []
    for label, model in models.items():
        for test in ("test2d", "test3d"):
            ev = evaluate_dataset(read_coco(getattr(args, test)), model, read_labels=False)
            rows.append({"model": label, "test": test, "map50": ev["map50"],
                         "recall50": ev["recall50"], "class_accuracy": ev["class_accuracy"],
                         "ap_agnostic": ev["ap50_class_agnostic"]})  # fmt: skip
    print(f"{'model':<16s} {'test set':<9s} {'mAP@0.5':>8s} {'recall@0.5':>10s} "
          f"{'class acc':>9s} {'AP any':>7s}")  # fmt: skip
    for r in rows:
        print(f"{r['model']:<16s} {r['test']:<9s} {r['map50']:8.3f} {r['recall50']:10.3f} "
              f"{r['class_accuracy']:9.3f} {r['ap_agnostic']:7.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
