"""Upright crops: the parcel's length lies along x, centred, with its margin, at any pose."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.crops import CROP_WH, MARGIN, PAD_VALUE, crop_scale, upright_crop
from vision.detections import OrientedBox


def _frame_with(box: OrientedBox) -> np.ndarray:
    """A dark frame with the box drawn white, its +length end marked red."""
    img = np.zeros((480, 640, 3), np.uint8)
    cv2.fillPoly(img, [box.corners().round().astype(np.int32)], (255, 255, 255))
    a = np.deg2rad(box.angle_deg)
    tip = (box.cx + np.cos(a) * box.length * 0.3, box.cy + np.sin(a) * box.length * 0.3)
    radius = int(min(box.width / 6, box.length / 10))  # inside the box
    cv2.circle(img, (round(tip[0]), round(tip[1])), radius, (0, 0, 255), -1)
    return img


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0, 360),
    st.floats(80, 300),
    st.floats(0.45, 0.95),
    st.floats(200, 440),
    st.floats(160, 320),
)
def test_any_pose_comes_out_upright_and_centred(angle, length, aspect, cx, cy):
    box = OrientedBox(cx, cy, length, length * aspect, angle)
    crop = upright_crop(_frame_with(box), box)
    w, h = CROP_WH
    assert crop.shape == (h, w, 3)
    white = (crop > 200).all(axis=2)
    red = (crop[:, :, 2] > 150) & (crop[:, :, 0] < 100)
    # the parcel fills the crop up to the margin on the limiting axis, centred
    ys, xs = np.nonzero(white | red)
    assert abs(xs.mean() - w / 2) < 4 and abs(ys.mean() - h / 2) < 4
    s = crop_scale(box)
    tol = 3 + 1.5 * s  # the drawn polygon's edge pixels, and interpolation when enlarged
    assert abs((xs.max() - xs.min() + 1) - length * s) <= tol
    assert abs((ys.max() - ys.min() + 1) - length * aspect * s) <= tol
    # the +length end is on the right: the crop is turned, not mirrored or sideways
    ry, rx = np.nonzero(red)
    assert len(rx) and rx.mean() > w * 0.6 and abs(ry.mean() - h / 2) < h * 0.15


def test_the_margin_shows_the_surroundings():
    box = OrientedBox(320, 240, 200, 120, 0)
    crop = upright_crop(_frame_with(box), box)
    white = (crop > 200).all(axis=2)
    cols = np.nonzero(white.any(axis=0))[0]
    # at MARGIN 1.15 the box spans 1/1.15 of the limiting axis, the rest is the dark belt
    assert crop_scale(box) * 200 * MARGIN <= CROP_WH[0] + 1e-6
    assert cols.min() > 2 and cols.max() < CROP_WH[0] - 3
    assert (crop[:, :2] < 30).all()


def test_a_parcel_at_the_frame_edge_is_padded_grey():
    box = OrientedBox(10, 240, 200, 120, 0)  # mostly outside the frame on the left
    crop = upright_crop(np.full((480, 640, 3), 255, np.uint8), box)
    assert (crop[:, :20] == PAD_VALUE).all()
    assert (crop[:, -20:] == 255).all()


def test_a_box_outside_the_frame_is_all_grey():
    crop = upright_crop(np.zeros((480, 640, 3), np.uint8), OrientedBox(2000, 2000, 100, 80, 30))
    assert crop.shape == (CROP_WH[1], CROP_WH[0], 3)
    assert (crop == PAD_VALUE).all()


def test_small_parcels_are_enlarged_to_the_crop_size():
    box = OrientedBox(320, 240, 40, 30, 45)
    crop = upright_crop(_frame_with(box), box)
    assert crop_scale(box) > 1
    assert (crop > 200).all(axis=2).sum() > 0.4 * CROP_WH[0] * CROP_WH[1]
