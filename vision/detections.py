"""What a detector reports for one object, in frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OrientedBox:
    """A rotated rectangle: centre, length >= width along the length axis, angle in degrees
    clockwise from +x (image y points down), in [0, 180)."""

    cx: float
    cy: float
    length: float
    width: float
    angle_deg: float

    def corners(self) -> np.ndarray:
        """4 x 2 corner points in order around the rectangle."""
        a = np.deg2rad(self.angle_deg)
        u = np.array([np.cos(a), np.sin(a)]) * self.length / 2
        v = np.array([-np.sin(a), np.cos(a)]) * self.width / 2
        c = np.array([self.cx, self.cy])
        return np.stack([c - u - v, c + u - v, c + u + v, c - u + v]).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    class_id: int
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, axis-aligned, frame px
    oriented: OrientedBox | None = None  # when the model predicts orientation
    # with a classifier stage: the detector's own score, which the confidence threshold
    # applies to (``confidence`` is then that score times the class probability)
    detector_confidence: float | None = None

    def corners(self) -> np.ndarray:
        """The 4 corners: of the oriented box if known, else of the axis-aligned box."""
        if self.oriented is not None:
            return self.oriented.corners()
        x1, y1, x2, y2 = self.box
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2
