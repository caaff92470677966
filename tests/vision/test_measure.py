"""Length and width in mm from a homography fitted to reference points."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vision.detections import Detection, OrientedBox
from vision.measure import Calibration, CalibrationError

# a camera looking almost straight down at the belt: mm -> px is a mild perspective map
_R = np.deg2rad(3.0)  # the camera is turned 3 degrees against the belt
MM_TO_PX = np.array(
    [[0.8 * np.cos(_R), -0.8 * np.sin(_R), 40.0], [0.8 * np.sin(_R), 0.8 * np.cos(_R), 30.0],
     [0.00001, 0.00002, 1.0]]
)  # fmt: skip


def _px(points_mm: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(
        np.asarray(points_mm, np.float64).reshape(-1, 1, 2), MM_TO_PX
    ).reshape(-1, 2)


def calibration() -> Calibration:
    mm = np.array([[0, 0], [600, 0], [600, 450], [0, 450], [300, 225], [150, 400]], float)
    return Calibration([tuple(p) for p in _px(mm)], [tuple(p) for p in mm])


def test_reference_points_are_reproduced():
    assert calibration().rms_error_mm < 1e-3


@given(
    st.floats(150, 450), st.floats(120, 330), st.floats(100, 350), st.floats(50, 250),
    st.floats(0, 180),
)  # fmt: skip
def test_a_rectangle_of_known_size_measures_right(cx, cy, length, width, angle):
    width = min(width, length)
    a = np.deg2rad(angle)
    u = np.array([np.cos(a), np.sin(a)]) * length / 2
    v = np.array([-np.sin(a), np.cos(a)]) * width / 2
    c = np.array([cx, cy])
    corners_mm = np.stack([c - u - v, c + u - v, c + u + v, c - u + v])
    px = _px(corners_mm)
    # the detector reports a rotated rectangle in px: fit it to the projected corners
    (pcx, pcy), (pw, ph), pa = cv2.minAreaRect(px.astype(np.float32))
    ob = OrientedBox(pcx, pcy, max(pw, ph), min(pw, ph), pa if pw >= ph else pa + 90)
    det = Detection(0, "box", 0.9, (0, 0, 1, 1), ob)
    size = calibration().measure(det)
    # a perspective turns the rectangle into a trapezoid: a rectangle fit costs a little
    assert size.length_mm == pytest.approx(length, rel=0.03, abs=2)
    assert size.width_mm == pytest.approx(width, rel=0.03, abs=2)


def test_too_few_points_are_refused():
    with pytest.raises(CalibrationError, match="at least 4"):
        Calibration([(0, 0), (1, 0), (0, 1)], [(0, 0), (1, 0), (0, 1)])


def test_collinear_points_are_refused():
    pts = [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(CalibrationError, match="degenerate"):
        Calibration(pts, pts)
