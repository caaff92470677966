"""Evaluate a model on a COCO data set (a site's corrected captures, or rendered scenes) and
print the model card's table: mAP@0.5 and AP per class, class-agnostic AP, the confusion at
the runtime's confidence, and label reads on the detected parcels where the set has the
label text (``attributes.label``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.dataset.coco import Dataset
from vision.detections import Detection
from vision.detector import Detector, DetectorSettings, StageTimes
from vision.labels import LabelRead, LabelReader
from vision.metrics import ImageEval, mean_average_precision
from vision.pipeline import CUT_MARGIN_PX, WHOLE_VIEWS, grown_view, inside_frame
from vision.tracker import LABEL_MARGIN_PX, holds, iou_matrix


def pipeline_read(
    reader: LabelReader, image: np.ndarray, det: Detection, others: list[Detection]
) -> tuple[LabelRead | None, bool]:
    """A parcel's label as the pipeline reads it over the frames it is wholly in view
    (``vision.pipeline.WHOLE_VIEWS``), on one image: every stage on its box, then the regions
    grown around it, a grown read kept only on its own box and off every other detection's
    (``Pipeline._own``); a parcel cut by the image's edge gets its box's read alone. Returns
    the read and whether it came from a grown region."""
    got = reader.read(image, det)
    h, w = image.shape[:2]
    if got is not None or not inside_frame(det, w, h, CUT_MARGIN_PX):
        return got, False
    for stage, factor in WHOLE_VIEWS:
        if factor == 1.0:
            continue  # every stage on the box was read above
        g = reader.read(image, grown_view(det, w, h, factor), stage)
        if g is None or g.at is None:
            continue
        at = np.asarray(g.at, np.float64)
        if holds(det, at, LABEL_MARGIN_PX) and not any(
            holds(o, at, LABEL_MARGIN_PX) for o in others if o is not det
        ):
            return g, True
    return None, False


def evaluate_dataset(
    ds: Dataset,
    model: str | Path,
    classifier: str | Path | None = "auto",
    confidence: float | None = None,
    read_labels: bool = True,
) -> dict[str, Any]:
    """The figures of ``model`` on every image of ``ds`` (its classes must be the model's);
    recall, class accuracy, the confusion and label reads at ``confidence``, by default the
    model's own (what the runtime uses when the config sets none)."""
    detector = Detector(
        model,
        settings=DetectorSettings(confidence=0.01, max_detections=100),
        classifier=classifier,
    )
    if confidence is None:
        confidence = detector.model_confidence
    names = [detector.names[i] for i in sorted(detector.names)]
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({a.class_name for s in ds.samples for a in s.annotations} - set(index))
    if unknown:
        raise ValueError(f"{ds.root}: classes {unknown} are not the model's {names}")
    reader = LabelReader() if read_labels else None
    evals: list[ImageEval] = []
    confusion = np.zeros((len(names), len(names) + 1), np.int64)  # last column: missed
    reads: list[bool] = []  # the pipeline's views (``pipeline_read``)
    box_reads: list[bool] = []  # the detected box's alone
    ms: list[float] = []
    parcels = 0
    for s in ds.samples:
        image = cv2.imread(str(ds.image_path(s)), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{ds.image_path(s)}: image missing or not readable")
        st = StageTimes()
        t0 = time.perf_counter()
        dets = detector.detect(image, st)
        ms.append((time.perf_counter() - t0) * 1e3)
        gt = np.array([a.bbox for a in s.annotations], np.float32).reshape(-1, 4)
        gt_cls = np.array([index[a.class_name] for a in s.annotations], np.int64)
        parcels += len(gt)
        evals.append(
            ImageEval(
                gt,
                gt_cls,
                np.array([d.box for d in dets], np.float32).reshape(-1, 4),
                np.array([d.class_id for d in dets]),
                np.array([d.confidence for d in dets], np.float32),
            )
        )
        kept = [d for d in dets if (d.detector_confidence or d.confidence) >= confidence]
        ious = iou_matrix(gt, np.array([d.box for d in kept], np.float32).reshape(-1, 4))
        for gi, a in enumerate(s.annotations):
            j = int(np.argmax(ious[gi])) if ious.shape[1] else -1
            det = kept[j] if j >= 0 and ious[gi, j] >= 0.5 else None
            confusion[gt_cls[gi], det.class_id if det is not None else len(names)] += 1
            if reader is not None and a.label_text is not None:
                got, grown = (
                    (None, False) if det is None else pipeline_read(reader, image, det, kept)
                )
                ok = got is not None and got.text == a.label_text
                reads.append(ok)
                box_reads.append(ok and not grown)
    m, per_class = mean_average_precision(evals, len(names), 0.5)
    agnostic = [
        ImageEval(
            e.gt_boxes, np.zeros_like(e.gt_classes), e.boxes, np.zeros_like(e.classes), e.scores
        )
        for e in evals
    ]
    ap_any, _ = mean_average_precision(agnostic, 1, 0.5)
    matched = confusion[:, :-1]
    return {
        "data": str(ds.root),
        "model": str(model),
        "classifier": detector.classifier.path.name if detector.classifier else None,
        "images": len(ds.samples),
        "parcels": parcels,
        "map50": m,
        "ap50_per_class": {names[c]: v for c, v in per_class.items()},
        "ap50_class_agnostic": ap_any,
        "recall50": float(matched.sum() / max(1, confusion.sum())),
        "class_accuracy": float(np.trace(matched) / max(1, matched.sum())),
        "confusion_at_confidence": confidence,
        "confusion": {
            names[t]: dict(zip([*names, "missed"], map(int, row), strict=True))
            for t, row in enumerate(confusion)
        },
        "label_read_pipeline": {
            "rate": float(np.mean(reads)) if reads else None,
            "labels": len(reads),
            "box_rate": float(np.mean(box_reads)) if box_reads else None,
        },
        "detect_ms_p50": float(np.percentile(ms, 50)) if ms else 0.0,
    }


def report(r: dict[str, Any]) -> str:
    """The model card's table for one data set."""
    names = list(r["confusion"])
    lines = [
        f"data set: {r['data']}: {r['images']} images, {r['parcels']} parcels; model "
        f"{Path(r['model']).name}, classifier {r['classifier'] or 'none'}",
        f"mAP@0.5: {r['map50']:.3f}   "
        + "  ".join(f"{k} {v:.3f}" for k, v in r["ap50_per_class"].items())
        + f"   (class-agnostic AP@0.5 {r['ap50_class_agnostic']:.3f})",
        f"recall@0.5: {r['recall50']:.3f}   class accuracy of the found parcels: "
        f"{r['class_accuracy']:.3f}",
        f"confusion at confidence {r['confusion_at_confidence']} (rows: truth):",
        "  " + " ".join(f"{k:>9s}" for k in ["", *names, "missed"]),
    ]
    for truth, row in r["confusion"].items():
        lines.append("  " + f"{truth:>9s} " + " ".join(f"{v:9d}" for v in row.values()))
    lr = r["label_read_pipeline"]
    if lr["labels"]:
        lines.append(
            f"label read (the pipeline's views: the detected box, then regions grown around "
            f"it): {lr['rate']:.3f} of {lr['labels']} labels with their text in the set; on "
            f"the box alone {lr['box_rate']:.3f}"
        )
    else:
        lines.append("label read: the set has no label texts (attributes.label) to check")
    lines.append(f"detector p50: {r['detect_ms_p50']:.2f} ms per image")
    return "\n".join(lines)
