"""Draws detections on a frame for people to look at."""

from __future__ import annotations

import cv2
import numpy as np

from vision.detections import Detection
from vision.labels import LabelRead
from vision.measure import Size

COLOURS = [(0, 200, 255), (255, 120, 0), (80, 220, 80), (220, 80, 220), (0, 80, 255)]


def annotate(
    image: np.ndarray,
    items: list[tuple[Detection, LabelRead | None, Size | None]],
) -> np.ndarray:
    """A copy of ``image`` with each detection's box, class, confidence, label and size."""
    out = image.copy()
    for det, label, size in items:
        colour = COLOURS[det.class_id % len(COLOURS)]
        pts = det.corners().round().astype(np.int32)
        cv2.polylines(out, [pts], True, colour, 2, cv2.LINE_AA)
        lines = [f"{det.class_name} {det.confidence:.2f}"]
        if size is not None:
            lines.append(f"{size.length_mm:.0f}x{size.width_mm:.0f} mm")
        if label is not None:
            lines.append(f"{label.format}: {label.text}")
        x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
        for i, text in enumerate(lines):
            org = (max(0, x), max(12, y + 14 + 16 * i))
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out
