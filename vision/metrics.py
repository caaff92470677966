"""Detection metrics: average precision at an IoU threshold, per class and mean (mAP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.tracker import iou_matrix


@dataclass(frozen=True)
class ImageEval:
    """One image: ground-truth boxes/classes and predicted boxes/classes/scores."""

    gt_boxes: np.ndarray  # G x 4
    gt_classes: np.ndarray  # G
    boxes: np.ndarray  # P x 4
    classes: np.ndarray  # P
    scores: np.ndarray  # P


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve, sampled at 101 recall points (COCO)."""
    if len(recall) == 0:
        return 0.0
    # make precision monotonically decreasing from right to left
    p = np.concatenate([precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    r = np.concatenate([recall, [np.inf]])
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(r, points, side="left")
    return float(np.mean(np.where(idx < len(precision), p[np.minimum(idx, len(p) - 1)], 0.0)))


def mean_average_precision(
    images: Sequence[ImageEval], num_classes: int, iou_threshold: float = 0.5
) -> tuple[float, dict[int, float]]:
    """(mAP over the classes present in the ground truth, AP per class)."""
    per_class: dict[int, float] = {}
    for c in range(num_classes):
        n_gt = 0
        records: list[tuple[float, bool]] = []
        for im in images:
            g = im.gt_boxes[im.gt_classes == c]
            n_gt += len(g)
            mask = im.classes == c
            p, s = im.boxes[mask], im.scores[mask]
            order = np.argsort(-s)
            p, s = p[order], s[order]
            taken = np.zeros(len(g), bool)
            ious = iou_matrix(p, g)
            for i in range(len(p)):
                j = -1
                if len(g):
                    cand = np.where(taken, -1.0, ious[i])
                    j = int(np.argmax(cand))
                    if cand[j] < iou_threshold:
                        j = -1
                if j >= 0:
                    taken[j] = True
                records.append((float(s[i]), j >= 0))
        if n_gt == 0:
            continue
        records.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in records]) if records else np.zeros(0)
        fp = np.cumsum([not r[1] for r in records]) if records else np.zeros(0)
        recall = tp / n_gt
        precision = tp / np.maximum(tp + fp, 1e-9)
        per_class[c] = average_precision(recall, precision)
    m = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return m, per_class
