"""Non-maximum suppression on candidates already cut to the top-k (see decoders)."""

from __future__ import annotations

import cv2
import numpy as np

from vision.decoders import Candidates


def nms(c: Candidates, iou: float, max_detections: int, class_agnostic: bool = False) -> np.ndarray:
    """Indices of the candidates kept, best first. Per class unless ``class_agnostic``."""
    if len(c.scores) == 0:
        return np.zeros(0, dtype=np.int64)
    if not c.needs_nms:
        return np.arange(min(len(c.scores), max_detections))
    xywh = np.empty_like(c.boxes)
    xywh[:, :2] = c.boxes[:, :2]
    xywh[:, 2:] = c.boxes[:, 2:] - c.boxes[:, :2]
    boxes, scores = xywh.tolist(), c.scores.tolist()
    if class_agnostic:
        keep = cv2.dnn.NMSBoxes(boxes, scores, 0.0, iou, top_k=max_detections)
    else:
        ids = c.class_ids.astype(np.int32).tolist()
        keep = cv2.dnn.NMSBoxesBatched(boxes, scores, ids, 0.0, iou, top_k=max_detections)
    return np.asarray(keep, dtype=np.int64).reshape(-1)
