"""Reads the shipping label on a parcel: Code 128, QR, DataMatrix and PDF417 via zxing-cpp.

zxing-cpp reads 2D codes at any angle but gives up on 1D codes turned more than ~20 degrees,
and a whole frame is slow and cluttered. So the reader works on the parcel's crop, and there
on the few regions dense in strong edges (the code, not the parcel's outline, tape or
wrinkles), the view that reads most first:

- stage 0, each located region turned upright by its dominant edge direction and enlarged
  1.5 times (cubic): on the simulated belt camera's labels (1024 x 768, 2-3 px modules) this
  one view read every region any view read (291 of 291), and on held-out 640 x 480 renders
  129 of 132; a large region (large modules) is read as it is and turned upright at 1x;
- stage 1, the first region: as it is (2D codes at any angle, 1D codes near a quarter turn),
  turned upright by its edges and by the parcel's orientation from the detector at 1x (1D
  and stacked codes), then twice the size turned by its edges, then as it is at twice the
  size with both of zxing's binarisers (the smallest regions); a large region is turned
  2.5 degrees either side of its edge angle instead (tall PDF417);
- stage 2, the same for the second region, then the whole crop as it is (a code the locator
  missed);
- stage 3, the whole crop turned upright by its edges and enlarged twice (cubic): a small
  code the locator missed or merged with the parcel's or a neighbour's edges (on 2D renders
  of parcels that touch or overlap, 11 of the 1,320 read labels read in this view alone).

A region without dark-on-light contrast (p95 - p5 of its grey levels under ``min_contrast``)
is no printed code and is skipped. ``read(..., stage=k)`` runs one stage, so a pipeline can
spread the views of one parcel over frames; ``stage=None`` runs them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
# codes that zxing reads only near upright (2D codes are found at any angle)
_LINEAR = zxingcpp.BarcodeFormats([zxingcpp.BarcodeFormat.Code128, zxingcpp.BarcodeFormat.PDF417])
# a region larger than this (px) holds large modules: read at 1x (enlarging it cost ~10 ms)
LARGE_REGION = 200 * 200
# stage 3 enlarges the whole crop this many times, to at most this many pixels (~7 ms a view
# at 500 x 500)
WHOLE_SCALE = 2.0
WHOLE_PIXELS = 640 * 640


@dataclass(frozen=True)
class LabelRead:
    format: str
    text: str
    # which view decoded it: "region", "edges", "parcel", "edges x2", "x2", "x2 global",
    # "edges fine", "crop", "whole x2"
    attempt: str
    # where the symbol lies in the frame (px, the middle of its corners as zxing found them,
    # mapped back from the turned or enlarged view that decoded it): a label is a thing on
    # one parcel, so the tracker keeps it where the belt carries it
    at: tuple[float, float] | None = None
    span: float = 0.0  # the symbol's larger extent in the frame, px: reads this near are one symbol


def dominant_angle(gray: np.ndarray) -> float:
    """The dominant edge direction modulo 90 degrees, in degrees (-45, 45]: the angle that
    turns bars and label edges upright. Magnitude-weighted doubled-doubled angles, so edges
    at 90 degrees to each other reinforce instead of cancel. Without trigonometry per pixel:
    with g = gx + i gy, |g|^2 e^(4i theta) = (g^2)^2 / |g|^2, and g^2 = (gx^2 - gy^2) + i 2 gx gy
    (the same sums as arctan2, sin and cos gave, at a seventh of the cost)."""
    small = gray if max(gray.shape) <= 256 else cv2.resize(gray, None, fx=0.5, fy=0.5)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    gx2, gy2 = cv2.multiply(gx, gx), cv2.multiply(gy, gy)
    re2, im2 = cv2.subtract(gx2, gy2), cv2.multiply(gx, gy, scale=2.0)  # g^2
    mag = cv2.add(gx2, gy2)
    np.maximum(mag, 1e-12, out=mag)  # a flat pixel adds 0 either way
    s = float(cv2.divide(cv2.multiply(re2, im2, scale=2.0), mag).sum())
    c = float(cv2.divide(cv2.subtract(cv2.multiply(re2, re2), cv2.multiply(im2, im2)), mag).sum())
    return math.degrees(math.atan2(s, c)) / 4


def grey_percentiles(gray: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(gray, qs)`` (its linear interpolation, the same values) for a uint8
    image, from its histogram: no sort (np.percentile took ~17 % of a label read)."""
    counts = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    n = int(counts[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(pos)
        lo = int(np.searchsorted(counts, k, side="right"))
        hi = int(np.searchsorted(counts, min(k + 1, n - 1), side="right"))
        out.append(lo + (pos - k) * (hi - lo))
    return out


def locate_codes(
    gray: np.ndarray, limit: int = 2, search: np.ndarray | None = None
) -> list[tuple[int, int, int, int]]:
    """Regions (x, y, w, h) dense with strong edges, strongest first: barcodes, where a
    parcel's own edges, tape and wrinkles are thin lines that an opening removes. Edges are
    looked for only where ``search`` (a 0/255 mask, if given) is set. Works at half size:
    a region is about density, and a quarter of the pixels costs a quarter of the time."""
    h, w = gray.shape[:2]
    small = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(small, cv2.CV_16S, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_16S, 0, 1, ksize=3)
    grad = cv2.addWeighted(cv2.convertScaleAbs(gx), 0.5, cv2.convertScaleAbs(gy), 0.5, 0)
    if search is not None:
        grad = cv2.bitwise_and(grad, cv2.resize(search, grad.shape[::-1], cv2.INTER_NEAREST))
    dense = cv2.blur(grad, (4, 4))
    _, mask = cv2.threshold(dense, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = np.ones((4, 4), np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    area = stats[:, cv2.CC_STAT_AREA]
    strength = np.bincount(labels.ravel(), weights=dense.ravel(), minlength=n) / np.maximum(area, 1)
    strength[area < 50] = -1
    regions = []
    for i in 1 + np.argsort(-strength[1:])[:limit]:
        if strength[i] < 0:
            break
        x, y, rw, rh = (2 * int(v) for v in stats[i, :4])
        pad = 8
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(w, x + rw + pad), min(h, y + rh + pad)
        regions.append((x0, y0, x1 - x0, y1 - y0))
    return regions


def turn_matrix(
    shape: tuple[int, ...], angle_deg: float, scale: float = 1.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """The affine map (2 x 3) that turns an image of ``shape`` by ``angle_deg`` (positive =
    counter-clockwise on screen) and scales it, and the size (w, h) of the canvas that holds
    it with no corner cut off."""
    h, w = shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return m, (nw, nh)


def moved(found: LabelRead | None, dx: float, dy: float) -> LabelRead | None:
    """A read in a part of an image (a crop, a region) placed in that image's pixels."""
    if found is None or found.at is None:
        return found
    return replace(found, at=(found.at[0] + dx, found.at[1] + dy))


def mapped_back(found: LabelRead | None, m: np.ndarray) -> LabelRead | None:
    """A read in a view made by the affine map ``m`` (``turn_matrix``), with its symbol's place
    and extent in the pixels the view was made from."""
    if found is None or found.at is None:
        return found
    x, y = cv2.invertAffineTransform(m) @ np.array([found.at[0], found.at[1], 1.0])
    scale = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))
    return replace(found, at=(float(x), float(y)), span=found.span / scale)


class LabelReader:
    """Reads the label of one detected parcel from the frame it was seen in."""

    stages = 4

    def __init__(
        self, margin: float = 0.06, min_turn_deg: float = 4.0, min_contrast: float = 70.0
    ) -> None:
        self.margin = margin
        self.min_turn_deg = min_turn_deg
        # printed codes are dark on light: on the held-out renders (brightness x0.6-1.4,
        # contrast x0.7-1.25) every decoded region had p95 - p5 >= 114 grey levels
        self.min_contrast = min_contrast

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

    def read(self, image: np.ndarray, det: Detection, stage: int | None = None) -> LabelRead | None:
        """The label of ``det`` in ``image``, or None when none can be decoded; ``stage``
        (0 to ``stages - 1``) runs only that stage's views, None all of them."""
        gray, origin = self.crop(image, det)
        if gray.size == 0:
            return None
        search = None
        if det.oriented is not None:
            # blank what lies outside the parcel: a neighbour's label is not this parcel's
            corners = det.oriented.corners()
            centre = corners.mean(axis=0)
            poly = (centre + (corners - centre) * 1.04 - origin).round().astype(np.int32)
            inside = np.zeros_like(gray)
            cv2.fillPoly(inside, [poly], 255)
            if inside.any():
                fill = np.uint8(grey_percentiles(gray[inside > 0][::3], (50.0,))[0])
                gray = np.where(inside > 0, gray, fill)
                # codes are looked for away from the outline: the parcel's edges against the
                # belt are dense in edges too
                k = 2 * int(max(3, 0.05 * min(det.oriented.length, det.oriented.width))) + 1
                search = cv2.erode(inside, np.ones((k, k), np.uint8))
        angle = None if det.oriented is None else det.oriented.angle_deg
        return moved(self.read_crop(gray, angle, search, stage), *map(float, origin))

    def read_at(
        self,
        image: np.ndarray,
        point: np.ndarray,
        span: float,
        parcel_angle_deg: float | None = None,
        stage: int | None = None,
    ) -> LabelRead | None:
        """The symbol at ``point`` (where a read found it, carried by the belt since), from
        a crop around that symbol alone (``span``: its larger extent). A read to
        confirm a label costs one region's decode, not a search of the whole parcel: so
        every frame can afford to confirm, and a Code 128 read once is read again before
        the parcel leaves the view."""
        half = max(0.8 * span, 48.0)
        h, w = image.shape[:2]
        xa, ya = max(0, int(point[0] - half)), max(0, int(point[1] - half))
        xb, yb = min(w, int(point[0] + half + 1)), min(h, int(point[1] + half + 1))
        if xa >= xb or ya >= yb:
            return None
        crop = image[ya:yb, xa:xb]
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        return moved(self.read_crop(gray, parcel_angle_deg, None, stage), xa, ya)

    def read_crop(
        self,
        gray: np.ndarray,
        parcel_angle_deg: float | None = None,
        search: np.ndarray | None = None,
        stage: int | None = None,
    ) -> LabelRead | None:
        """The label in a grey crop; ``search`` (0/255) marks where codes may lie."""
        regions, corners = [], []
        for x, y, w, h in locate_codes(gray, search=search):
            region = gray[y : y + h, x : x + w]
            lo, hi = grey_percentiles(region[::2, ::2], (5.0, 95.0))
            if hi - lo >= self.min_contrast:
                regions.append(region)
                corners.append((x, y))
        angles: dict[int, float] = {}  # each region's edge angle, found once

        def edges(k: int) -> float:
            if k not in angles:
                angles[k] = dominant_angle(regions[k])
            return angles[k]

        if stage in (None, 0):
            for k, region in enumerate(regions):
                if region.size > LARGE_REGION:
                    found = self._decode(region, "region") or self._upright(
                        region, parcel_angle_deg, edges(k)
                    )
                else:  # 2-3 px modules blurred by the optics: read best a little enlarged
                    found = self._turned(region, edges(k), 1.5, "edges x1.5", cv2.INTER_CUBIC)
                if found:
                    return moved(found, *corners[k])
        for k in (0, 1):
            if stage in (None, k + 1) and len(regions) > k:
                found = self._other_views(regions[k], parcel_angle_deg, edges(k))
                if found:
                    return moved(found, *corners[k])
        if stage in (None, 2):
            found = self._decode(gray, "crop")  # unturned: zxing's position is the crop's
            if found or stage == 2:
                return found
        if stage in (None, 3):
            return self._whole_enlarged(gray)
        return None

    def _whole_enlarged(self, gray: np.ndarray) -> LabelRead | None:
        """Stage 3: the whole crop turned upright by its edges and enlarged (cubic), for a
        code the locator missed or cut (a region merged with the parcel's or a neighbour's
        edges) whose modules are too small to read at 1x. On 2D renders this view read 10 of
        the 18 boxed labels that stages 0-2 and the grown regions missed, ~7 ms a view."""
        scale = min(WHOLE_SCALE, math.sqrt(WHOLE_PIXELS / max(1, gray.size)))
        if scale <= 1.0:
            return None  # a crop this large has large modules: the other stages had them
        return self._turned(gray, dominant_angle(gray), scale, "whole x2", cv2.INTER_CUBIC)

    def _other_views(
        self, region: np.ndarray, parcel_angle_deg: float | None, edges: float
    ) -> LabelRead | None:
        """A region's views besides stage 0's: as it is and turned upright at 1x (a small
        region; a large one had them in stage 0), then enlarged (``_enlarged``)."""
        if region.size <= LARGE_REGION:
            found = self._decode(region, "region") or self._upright(region, parcel_angle_deg, edges)
            if found:
                return found
        return self._enlarged(region, edges)

    def _upright(
        self, gray: np.ndarray, parcel_angle_deg: float | None, edges: float
    ) -> LabelRead | None:
        tried: list[float] = [0.0]
        views: list[tuple[str, float]] = [("edges", edges)]
        if parcel_angle_deg is not None:
            # a length axis at +a (clockwise) is made horizontal by turning +a counter-clockwise
            a = ((parcel_angle_deg + 45.0) % 90.0) - 45.0
            views.append(("parcel", a))
        for name, angle in views:
            if min(abs(angle - t) for t in tried) < self.min_turn_deg:
                continue
            tried.append(angle)
            found = self._turned(gray, angle, 1.0, name, formats=_LINEAR)
            if found:
                return found
        return None

    def _enlarged(self, gray: np.ndarray, edges: float) -> LabelRead | None:
        if gray.size > LARGE_REGION:
            # a large region holds large modules: no need to enlarge it (that costs ~10 ms),
            # but tall 1D and stacked codes (PDF417) need the angle within a degree or two
            for turn in (-2.5, 2.5):
                found = self._turned(gray, edges + turn, 1.0, "edges fine", formats=_LINEAR)
                if found:
                    return found
            return None
        # small modules blurred by the optics: zxing finds them once they are twice the size
        found = self._turned(gray, edges, 2.0, "edges x2", cv2.INTER_CUBIC)
        if found or gray.size > 160 * 160:  # the last try is for the smallest regions only
            return found
        # upright at 2x: a 2 px DataMatrix turned ~30 degrees reads here and not turned
        # (held-out: +1 of 388); then the global binariser, for uneven light
        m, size = turn_matrix(gray.shape, 0.0, 2.0)
        big = cv2.warpAffine(gray, m, size, flags=cv2.INTER_CUBIC, borderValue=255)
        found = self._decode(big, "x2") or self._decode(
            big, "x2 global", binarizer=zxingcpp.Binarizer.GlobalHistogram
        )
        return mapped_back(found, m)

    def _turned(
        self,
        gray: np.ndarray,
        angle_deg: float,
        scale: float,
        attempt: str,
        interpolation: int = cv2.INTER_LINEAR,
        formats: zxingcpp.BarcodeFormats = _WANTED,
    ) -> LabelRead | None:
        """``gray`` decoded turned by ``angle_deg`` and scaled (``turn_matrix``), the symbol's
        place and extent given in ``gray``'s pixels, not the view's."""
        m, size = turn_matrix(gray.shape, angle_deg, scale)
        view = cv2.warpAffine(gray, m, size, flags=interpolation, borderValue=255)
        return mapped_back(self._decode(view, attempt, formats), m)

    @staticmethod
    def _decode(
        gray: np.ndarray,
        attempt: str,
        formats: zxingcpp.BarcodeFormats = _WANTED,
        binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
    ) -> LabelRead | None:
        """The decoded symbol nearest the middle of ``gray`` (the parcel's centre)."""
        results = zxingcpp.read_barcodes(
            gray, formats=formats, binarizer=binarizer, try_invert=False, try_downscale=False
        )
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
        p = best.position
        xs = (p.top_left.x, p.top_right.x, p.bottom_right.x, p.bottom_left.x)
        ys = (p.top_left.y, p.top_right.y, p.bottom_right.y, p.bottom_left.y)
        span = float(max(max(xs) - min(xs), max(ys) - min(ys)))
        return LabelRead(FORMATS[best.format], best.text, attempt, (sum(xs) / 4, sum(ys) / 4), span)
