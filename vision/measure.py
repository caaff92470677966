"""Parcel length and width in millimetres, from a camera calibration.

The calibration is a homography from image pixels to the belt plane, fitted to reference
points (marks on the belt whose positions are known both in the image and in mm). A parcel's
oriented box corners are mapped to the belt plane and its sides measured there. The
homography models the belt plane only: a tall parcel's top is closer to the camera and
appears larger, so heights must be small against the camera distance or corrected for.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.detections import Detection


class CalibrationError(ValueError):
    """The reference points cannot define a homography; the message says why."""


@dataclass(frozen=True)
class Size:
    length_mm: float
    width_mm: float


class Calibration:
    """Pixel -> belt mm mapping fitted to >= 4 reference points."""

    def __init__(
        self, pixels: list[tuple[float, float]], belt_mm: list[tuple[float, float]]
    ) -> None:
        if len(pixels) != len(belt_mm):
            raise CalibrationError(f"{len(pixels)} pixel points but {len(belt_mm)} belt points")
        if len(pixels) < 4:
            raise CalibrationError(
                f"a homography needs at least 4 reference points, got {len(pixels)}"
            )
        src = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        dst = np.asarray(belt_mm, np.float64).reshape(-1, 1, 2)
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
            raise CalibrationError("the reference points are degenerate (three or more on a line?)")
        self.homography = h
        mapped = cv2.perspectiveTransform(src, h)
        self.rms_error_mm = float(np.sqrt(((mapped - dst) ** 2).sum(axis=2).mean()))

    @classmethod
    def from_config(cls, cfg: object) -> Calibration:
        """From a vision.config.CalibrationConfig."""
        points = cfg.reference_points  # type: ignore[attr-defined]
        return cls([p.pixel for p in points], [p.belt_mm for p in points])

    def to_mm(self, points_px: np.ndarray) -> np.ndarray:
        pts = np.asarray(points_px, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.homography).reshape(-1, 2)

    def measure(self, det: Detection) -> Size:
        """Length (longer side) and width of the detection's box on the belt plane."""
        c = self.to_mm(det.corners())
        a = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
        b = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
        return Size(float(max(a, b)), float(min(a, b)))
