"""Upright crops of a parcel: its oriented box turned so the length runs along x.

The parcel classifier looks at each parcel at the frame's own resolution, where the cues
that tell a polybag from an envelope or a white box (heat seals, flap folds, tape edges, 1-3
px wide) still exist; the detector's 4x-reduced input has averaged them away. The crop keeps
the parcel's aspect ratio and a margin of its surroundings, so its outline stays visible. The
same function makes the training crops and the run-time ones.

A crop is one bilinear warp, from the frame itself or, for parcels that must shrink by more
than 4/3, from the frame halved once with an area filter: bilinear sampling never shrinks by
more than 1.75x, so it does not alias thin lines away, and one shared halving (~0.1 ms)
replaces a per-parcel area resize (~0.5 ms).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision.detections import OrientedBox

CROP_WH = (128, 96)  # width (along the parcel's length), height
MARGIN = 1.15  # the crop covers the box enlarged by this factor on both axes
PAD_VALUE = 114
HALF_BELOW = 0.75  # crop scales under this are taken from the halved frame


def crop_scale(
    box: OrientedBox, size_wh: tuple[int, int] = CROP_WH, margin: float = MARGIN
) -> float:
    """Crop pixels per frame pixel: the enlarged box just fits, aspect kept."""
    cw, ch = size_wh
    return min(cw / (max(box.length, 1.0) * margin), ch / (max(box.width, 1.0) * margin))


def halve(image: np.ndarray) -> np.ndarray:
    """The frame at half size, area-filtered."""
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)


def upright_crops(
    image: np.ndarray,
    boxes: Sequence[OrientedBox],
    size_wh: tuple[int, int] = CROP_WH,
    margin: float = MARGIN,
    half: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One ``size_wh`` BGR crop per box; outside the frame is grey. ``half``: the frame
    already halved by ``halve``, if the caller has it (made here when needed otherwise)."""
    out = []
    for box in boxes:
        scale = crop_scale(box, size_wh, margin)
        src, cx, cy = image, box.cx, box.cy
        if scale < HALF_BELOW:
            if half is None:
                half = halve(image)
            sx, sy = half.shape[1] / image.shape[1], half.shape[0] / image.shape[0]
            src, cx, cy, scale = (
                half,
                (box.cx + 0.5) * sx - 0.5,
                (box.cy + 0.5) * sy - 0.5,
                scale / sx,
            )
        m = cv2.getRotationMatrix2D((cx, cy), box.angle_deg, scale)
        m[:, 2] += (size_wh[0] / 2 - cx, size_wh[1] / 2 - cy)
        out.append(
            cv2.warpAffine(
                src,
                m,
                size_wh,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
            )
        )
    return out


def upright_crop(
    image: np.ndarray,
    box: OrientedBox,
    size_wh: tuple[int, int] = CROP_WH,
    margin: float = MARGIN,
) -> np.ndarray:
    """The crop of one box (see ``upright_crops`` for many from one frame)."""
    return upright_crops(image, [box], size_wh, margin)[0]
