"""Reads the shipping label on a parcel: Code 128, QR, DataMatrix and PDF417 via zxing-cpp.

zxing-cpp reads 2D codes at any angle but gives up on 1D codes turned more than ~20 degrees,
and a whole frame is slow and cluttered. So the reader works on the parcel's crop, first as
it is (cheap, enough for 2D codes and straight labels), then turned upright: by the dominant
edge direction in the crop (bars dominate it) and by the parcel's own orientation from the
detector. zxing itself tries the 90-degree turns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from vision.detections import Detection

FORMATS = {
    zxingcpp.BarcodeFormat.Code128: "Code128",
    zxingcpp.BarcodeFormat.QRCode: "QRCode",
    zxingcpp.BarcodeFormat.DataMatrix: "DataMatrix",
    zxingcpp.BarcodeFormat.PDF417: "PDF417",
}
_WANTED = zxingcpp.BarcodeFormats(list(FORMATS))


@dataclass(frozen=True)
class LabelRead:
    format: str
    text: str
    attempt: str  # which view decoded it: "crop", "edges" or "parcel"


def dominant_angle(gray: np.ndarray) -> float:
    """The dominant edge direction modulo 90 degrees, in degrees (-45, 45]: the angle that
    turns bars and label edges upright. Magnitude-weighted doubled-doubled angles, so edges
    at 90 degrees to each other reinforce instead of cancel."""
    small = gray if max(gray.shape) <= 256 else cv2.resize(gray, None, fx=0.5, fy=0.5)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    mag = gx * gx + gy * gy
    theta = np.arctan2(gy, gx)
    s = float((mag * np.sin(4 * theta)).sum())
    c = float((mag * np.cos(4 * theta)).sum())
    return math.degrees(math.atan2(s, c)) / 4


def locate_codes(gray: np.ndarray, limit: int = 2) -> list[tuple[int, int, int, int]]:
    """Regions (x, y, w, h) dense with strong edges, largest first: barcodes, where a parcel's
    own edges, tape and wrinkles are thin lines that an opening removes."""
    gx = cv2.Sobel(gray, cv2.CV_16S, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_16S, 0, 1, ksize=3)
    grad = cv2.addWeighted(cv2.convertScaleAbs(gx), 0.5, cv2.convertScaleAbs(gy), 0.5, 0)
    dense = cv2.blur(grad, (7, 7))
    _, mask = cv2.threshold(dense, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    _n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    regions = []
    for i in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:limit]:
        x, y, w, h, area = stats[i]
        if area < 200:
            break
        pad = 8
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(gray.shape[1], x + w + pad), min(gray.shape[0], y + h + pad)
        regions.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return regions


def rotate(gray: np.ndarray, angle_deg: float) -> np.ndarray:
    """Turn the image by ``angle_deg`` (positive = counter-clockwise on screen), growing the
    canvas so that no corner is cut off."""
    h, w = gray.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(gray, m, (nw, nh), flags=cv2.INTER_CUBIC, borderValue=255)


class LabelReader:
    """Reads the label of one detected parcel from the frame it was seen in."""

    def __init__(self, margin: float = 0.06, min_turn_deg: float = 4.0) -> None:
        self.margin = margin
        self.min_turn_deg = min_turn_deg

    def crop(self, image: np.ndarray, det: Detection) -> tuple[np.ndarray, np.ndarray]:
        """The grey crop around the detection (with a margin) and its top-left corner."""
        x1, y1, x2, y2 = det.box
        mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
        h, w = image.shape[:2]
        xa, ya = max(0, int(x1 - mx)), max(0, int(y1 - my))
        xb, yb = min(w, int(x2 + mx + 1)), min(h, int(y2 + my + 1))
        crop = image[ya:yb, xa:xb]
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        return gray, np.array([xa, ya], np.float32)

    def read(self, image: np.ndarray, det: Detection) -> LabelRead | None:
        """The label of ``det`` in ``image``, or None when none can be decoded."""
        gray, origin = self.crop(image, det)
        if gray.size == 0:
            return None
        if det.oriented is not None:
            # blank what lies outside the parcel: a neighbour's label is not this parcel's
            corners = det.oriented.corners()
            centre = corners.mean(axis=0)
            poly = (centre + (corners - centre) * 1.04 - origin).round().astype(np.int32)
            inside = np.zeros_like(gray)
            cv2.fillPoly(inside, [poly], 255)
            fill = np.uint8(np.median(gray[inside > 0])) if inside.any() else np.uint8(255)
            gray = np.where(inside > 0, gray, fill)
        return self.read_crop(gray, None if det.oriented is None else det.oriented.angle_deg)

    def read_crop(
        self, gray: np.ndarray, parcel_angle_deg: float | None = None
    ) -> LabelRead | None:
        regions = locate_codes(gray)
        for x, y, w, h in regions:
            found = self._attempts(gray[y : y + h, x : x + w], parcel_angle_deg)
            if found:
                return found
        if not regions:  # nothing looks like a code: one cheap look at the whole crop
            return self._decode(gray, "crop")
        return self._attempts(gray, parcel_angle_deg)

    def _attempts(self, gray: np.ndarray, parcel_angle_deg: float | None) -> LabelRead | None:
        found = self._decode(gray, "crop")
        if found:
            return found
        tried: list[float] = [0.0]
        edges = dominant_angle(gray)
        views: list[tuple[str, float]] = [("edges", edges)]
        if parcel_angle_deg is not None:
            # a length axis at +a (clockwise) is made horizontal by turning +a counter-clockwise
            a = ((parcel_angle_deg + 45.0) % 90.0) - 45.0
            views.append(("parcel", a))
        for name, angle in views:
            if min(abs(angle - t) for t in tried) < self.min_turn_deg:
                continue
            tried.append(angle)
            found = self._decode(rotate(gray, angle), name)
            if found:
                return found
        if gray.size > 200 * 200:  # upscaling is for a located code region, not a whole parcel
            return None
        # small modules blurred by the optics: zxing finds them once they are twice the size
        big = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        found = self._decode(rotate(big, edges), "edges x2")
        if found or gray.size > 160 * 160:  # the last try is for the smallest regions only
            return found
        return self._decode(big, "x2", zxingcpp.Binarizer.GlobalHistogram)

    @staticmethod
    def _decode(
        gray: np.ndarray,
        attempt: str,
        binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
    ) -> LabelRead | None:
        """The decoded symbol nearest the middle of ``gray`` (the parcel's centre)."""
        results = zxingcpp.read_barcodes(gray, formats=_WANTED, binarizer=binarizer)
        found = [r for r in results if r.valid and r.format in FORMATS]
        if not found:
            return None
        h, w = gray.shape[:2]

        def off_centre(r: zxingcpp.Barcode) -> float:
            p = r.position
            xs = (p.top_left.x, p.top_right.x, p.bottom_right.x, p.bottom_left.x)
            ys = (p.top_left.y, p.top_right.y, p.bottom_right.y, p.bottom_left.y)
            return (sum(xs) / 4 - w / 2) ** 2 + (sum(ys) / 4 - h / 2) ** 2

        best = min(found, key=off_centre)
        return LabelRead(FORMATS[best.format], best.text, attempt)
