"""Evaluates a parcel detector and the label reader on a held-out rendered set.

The held-out set uses other seeds (from 9,000,000; training uses 1,000,000 onwards) and the
HELD_OUT randomisation ranges (more parcels, other lighting, blur, noise, scale, label sizes
and jitter). It reports:

- mAP@0.5 (COCO-style 101-point AP, averaged over the four classes) and AP per class;
- label-read rate on legible labels (module >= 2 px, not covered), by the reader alone on the
  true parcel box and orientation, and end to end on the detected parcel; both per 30-degree
  bucket of label rotation;
- measurement error in mm under a simulated calibration (1.25 mm per px, a homography from
  4 reference points) for boxes and envelopes;
- detector latency on these 640x480 frames.

    .venv/bin/python training/evaluate_parcel_model.py [--images 300] [--json out.json]

Cross-domain: ``--coco DIR ...`` also evaluates on COCO sets made by another method, e.g.
the 3D renders of ``training/render3d/make_dataset.py`` (``--images 0`` for those alone);
``training/cross_domain.py`` gives the whole matrix (trained on each family, tested on each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim_hardware.camera.randomisation import CLASSES, HELD_OUT  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from vision.config import DEFAULT_MODEL  # noqa: E402
from vision.detections import Detection, OrientedBox  # noqa: E402
from vision.detector import Detector, DetectorSettings, StageTimes  # noqa: E402
from vision.labels import LabelReader  # noqa: E402
from vision.measure import Calibration  # noqa: E402
from vision.metrics import ImageEval, mean_average_precision  # noqa: E402
from vision.tracker import iou_matrix  # noqa: E402

HELD_OUT_FIRST_SEED = 9_000_000
MM_PER_PX = 1.25


def _bucket(angle: float) -> str:
    lo = int(angle // 30) * 30
    return f"{lo:03d}-{lo + 30:03d}"


def evaluate(
    model: Path = DEFAULT_MODEL,
    images: int = 300,
    first_seed: int = HELD_OUT_FIRST_SEED,
    confidence: float = 0.3,
    classifier: str | Path | None = "auto",
) -> dict[str, Any]:
    detector = Detector(
        model,
        settings=DetectorSettings(confidence=0.01, max_detections=100),
        classifier=classifier,
    )
    reader = LabelReader()
    w, h = 640, 480
    corners_px = [(0, 0), (w, 0), (w, h), (0, h)]
    calib = Calibration(corners_px, [(x * MM_PER_PX, y * MM_PER_PX) for x, y in corners_px])
    evals: list[ImageEval] = []
    reader_ok: dict[str, list[bool]] = {}
    pipeline_ok: dict[str, list[bool]] = {}
    read_ms: list[float] = []
    size_err: list[float] = []
    size_rel: list[float] = []
    times: dict[str, list[float]] = {"preprocess": [], "inference": [], "nms": [], "classify": []}
    confusion = np.zeros((len(CLASSES), len(CLASSES) + 1), np.int64)  # last column: missed
    for seed in range(first_seed, first_seed + images):
        scene = render_scene(seed, HELD_OUT)
        st = StageTimes()
        dets = detector.detect(scene.image, st)
        times["preprocess"].append(st.preprocess)
        times["inference"].append(st.inference)
        times["nms"].append(st.nms)
        times["classify"].append(st.extra.get("classify", 0.0))
        gt = np.array([p.box for p in scene.parcels], np.float32).reshape(-1, 4)
        evals.append(
            ImageEval(
                gt,
                np.array([p.class_id for p in scene.parcels]),
                np.array([d.box for d in dets], np.float32).reshape(-1, 4),
                np.array([d.class_id for d in dets]),
                np.array([d.confidence for d in dets], np.float32),
            )
        )
        # what the pipeline keeps: the threshold is on the detector's score, before the
        # classifier scales it by the class probability
        kept = [d for d in dets if (d.detector_confidence or d.confidence) >= confidence]
        ious = iou_matrix(gt, np.array([d.box for d in kept], np.float32).reshape(-1, 4))
        for gi, p in enumerate(scene.parcels):
            match = int(np.argmax(ious[gi])) if ious.shape[1] else -1
            det = kept[match] if match >= 0 and ious[gi, match] >= 0.5 else None
            confusion[p.class_id, det.class_id if det is not None else len(CLASSES)] += 1
            if det is not None and det.oriented is not None and p.cls in ("box", "envelope"):
                if p.visible_fraction > 0.98:
                    size = calib.measure(det)
                    true_l, true_w = p.size_px[0] * MM_PER_PX, p.size_px[1] * MM_PER_PX
                    for got, want in ((size.length_mm, true_l), (size.width_mm, true_w)):
                        size_err.append(abs(got - want))
                        size_rel.append(abs(got - want) / want)
            if not p.label_legible:
                continue
            bucket = _bucket(p.label_angle_deg or 0.0)
            truth = Detection(
                p.class_id,
                p.cls,
                1.0,
                p.box,
                OrientedBox(p.centre[0], p.centre[1], *p.size_px, p.angle_deg),
            )
            t0 = time.perf_counter()
            got = reader.read(scene.image, truth)
            read_ms.append((time.perf_counter() - t0) * 1e3)
            reader_ok.setdefault(bucket, []).append(got is not None and got.text == p.label_text)
            via = reader.read(scene.image, det) if det is not None else None
            pipeline_ok.setdefault(bucket, []).append(via is not None and via.text == p.label_text)
    m, per_class = mean_average_precision(evals, len(CLASSES), 0.5)
    agnostic = [
        ImageEval(e.gt_boxes, np.zeros_like(e.gt_classes), e.boxes,
                  np.zeros_like(e.classes), e.scores)
        for e in evals
    ]  # fmt: skip
    ap_any, _ = mean_average_precision(agnostic, 1, 0.5)

    def rate(d: dict[str, list[bool]]) -> dict[str, Any]:
        allv = [v for vs in d.values() for v in vs]
        return {
            "rate": float(np.mean(allv)) if allv else 0.0,
            "labels": len(allv),
            "by_rotation": {k: [int(sum(v)), len(v)] for k, v in sorted(d.items())},
        }

    return {
        "model": str(model),
        "images": images,
        "seeds": [first_seed, first_seed + images - 1],
        "randomisation": "HELD_OUT",
        "parcels": int(sum(len(e.gt_boxes) for e in evals)),
        "map50": m,
        "ap50_per_class": {CLASSES[c]: v for c, v in per_class.items()},
        "ap50_class_agnostic": ap_any,
        "classifier": detector.classifier.path.name if detector.classifier else None,
        "confusion_at_confidence": confidence,
        "confusion": {
            CLASSES[t]: dict(zip([*CLASSES, "missed"], map(int, row), strict=True))
            for t, row in enumerate(confusion)
        },
        "label_read_reader": rate(reader_ok),
        "label_read_pipeline": rate(pipeline_ok),
        "label_read_ms": {
            "p50": float(np.percentile(read_ms, 50)) if read_ms else 0.0,
            "p99": float(np.percentile(read_ms, 99)) if read_ms else 0.0,
        },
        "size_error_mm": {
            "median": float(np.median(size_err)) if size_err else None,
            "p90": float(np.percentile(size_err, 90)) if size_err else None,
            "median_relative": float(np.median(size_rel)) if size_rel else None,
            "samples": len(size_err),
        },
        "detector_ms_p50": {k: float(np.percentile(v, 50)) for k, v in times.items()},
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"held-out set: {r['images']} images, {r['parcels']} parcels, seeds "
        f"{r['seeds'][0]}..{r['seeds'][1]}, ranges {r['randomisation']}",
        f"mAP@0.5: {r['map50']:.3f}   "
        + "  ".join(f"{k} {v:.3f}" for k, v in r["ap50_per_class"].items())
        + f"   (class-agnostic AP@0.5 {r['ap50_class_agnostic']:.3f}; classifier: "
        f"{r['classifier'] or 'none'})",
        f"confusion at confidence {r['confusion_at_confidence']} (rows: truth):",
        "  " + " ".join(f"{k:>9s}" for k in ["", *CLASSES, "missed"]),
    ]
    for truth, row in r["confusion"].items():
        lines.append("  " + f"{truth:>9s} " + " ".join(f"{v:9d}" for v in row.values()))
    for key, name in (("label_read_reader", "reader on true box"), ("label_read_pipeline",
                      "reader on detected box")):  # fmt: skip
        lr = r[key]
        buckets = " ".join(f"{k}:{a}/{b}" for k, (a, b) in lr["by_rotation"].items())
        lines.append(f"label read ({name}): {lr['rate']:.3f} of {lr['labels']} legible; {buckets}")
    lines.append(
        f"label read time: p50 {r['label_read_ms']['p50']:.1f} ms, p99 "
        f"{r['label_read_ms']['p99']:.1f} ms per parcel"
    )
    se = r["size_error_mm"]
    if se["samples"]:
        lines.append(
            f"size error (boxes, envelopes): median {se['median']:.1f} mm, p90 {se['p90']:.1f} mm, "
            f"median {100 * se['median_relative']:.1f}% ({se['samples']} sides)"
        )
    d = r["detector_ms_p50"]
    lines.append(
        f"detector p50: preprocess {d['preprocess']:.2f} ms, inference {d['inference']:.2f} ms, "
        f"nms {d['nms']:.2f} ms, classify {d['classify']:.2f} ms"
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--first-seed", type=int, default=HELD_OUT_FIRST_SEED)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument(
        "--classifier", default="auto",
        help="'auto' (the one the model names), 'none' (the detector's classes), or a file",
    )  # fmt: skip
    ap.add_argument(
        "--coco", type=Path, nargs="*", default=[], metavar="DIR",
        help="COCO data sets (other renderers, a site's corrected captures) to evaluate too",
    )  # fmt: skip
    args = ap.parse_args()
    choice = None if args.classifier == "none" else args.classifier
    out: dict[str, Any] = {}
    if args.images > 0:
        r = evaluate(args.model, args.images, args.first_seed, classifier=choice)
        print(report(r))
        out = r
    if args.coco:
        from vision.dataset.coco import read_coco
        from vision.finetune.evaluate import evaluate_dataset
        from vision.finetune.evaluate import report as coco_report

        out["coco"] = []
        for d in args.coco:
            rc = evaluate_dataset(read_coco(d), args.model, choice, read_labels=True)
            print()
            print(coco_report(rc))
            out["coco"].append(rc)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
