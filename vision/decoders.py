"""Turn a detector's raw output tensors into candidate boxes, whatever model family made them.

Supported output layouts (chosen from the output shapes and the model's metadata):

- ``yolov5``: one output ``1 x N x (5+C)``: cx, cy, w, h, objectness, C class scores.
- ``yolov8`` (also YOLO11): one output ``1 x (4+C) x N``: cx, cy, w, h, C class scores.
- ``end2end`` (YOLO26, YOLOv10, NMS-free exports): one output ``1 x K x 6``: x1, y1, x2, y2,
  score, class id, already de-duplicated.
- ``centernet-obb`` (the shipped parcel model): ``peaks 1 x C x H x W`` (class heatmaps with
  non-peaks zeroed in the graph) and ``geometry 1 x 8 x H x W``.

Every decoder drops candidates under the confidence threshold and keeps only the ``top_k``
best before NMS: NMS on thousands of raw candidates costs far more than the model.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

Dim = int | str | None


class UnsupportedModelError(ValueError):
    """The model's outputs fit none of the supported layouts."""


@dataclass(frozen=True)
class Candidates:
    """Boxes in model-input pixels (x1, y1, x2, y2), before NMS when ``needs_nms``."""

    boxes: np.ndarray  # K x 4 float32
    scores: np.ndarray  # K float32
    class_ids: np.ndarray  # K int
    oriented: np.ndarray | None  # K x 5: cx, cy, length, width, angle_deg (input px)
    needs_nms: bool


def _top(scores: np.ndarray, conf: float, top_k: int) -> np.ndarray:
    """Indices of scores >= conf, at most top_k of them, best first."""
    idx = np.flatnonzero(scores >= conf)
    if len(idx) > top_k:
        idx = idx[np.argpartition(scores[idx], -top_k)[-top_k:]]
    return idx[np.argsort(-scores[idx])]


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    out[:, :2] = b[:, :2] - b[:, 2:4] / 2
    out[:, 2:] = b[:, :2] + b[:, 2:4] / 2
    return out


class Decoder:
    layout = "?"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def decode(self, outputs: list[np.ndarray], conf: float, top_k: int) -> Candidates:
        raise NotImplementedError


class YoloV5Decoder(Decoder):
    layout = "yolov5"

    def decode(self, outputs: list[np.ndarray], conf: float, top_k: int) -> Candidates:
        out = outputs[0][0]  # N x (5+C)
        obj = out[:, 4]
        keep = np.flatnonzero(obj >= conf)  # objectness bounds the score: a cheap first cut
        cls_scores = out[keep, 5:]
        class_ids = cls_scores.argmax(axis=1)
        scores = obj[keep] * cls_scores[np.arange(len(keep)), class_ids]
        sel = _top(scores, conf, top_k)
        rows = keep[sel]
        return Candidates(
            _xywh_to_xyxy(out[rows, :4].astype(np.float32)),
            scores[sel].astype(np.float32),
            class_ids[sel],
            None,
            True,
        )


class YoloV8Decoder(Decoder):
    layout = "yolov8"

    def decode(self, outputs: list[np.ndarray], conf: float, top_k: int) -> Candidates:
        out = outputs[0][0]  # (4+C) x N
        cls_scores = out[4:]
        class_ids = cls_scores.argmax(axis=0)
        scores = np.take_along_axis(cls_scores, class_ids[None], axis=0)[0]
        sel = _top(scores, conf, top_k)
        return Candidates(
            _xywh_to_xyxy(out[:4, sel].T.astype(np.float32)),
            scores[sel].astype(np.float32),
            class_ids[sel],
            None,
            True,
        )


class EndToEndDecoder(Decoder):
    layout = "end2end"

    def decode(self, outputs: list[np.ndarray], conf: float, top_k: int) -> Candidates:
        out = outputs[0][0]  # K x 6
        sel = _top(out[:, 4], conf, top_k)
        return Candidates(
            out[sel, :4].astype(np.float32),
            out[sel, 4].astype(np.float32),
            out[sel, 5].astype(np.int64),
            None,
            False,
        )


class CenterNetDecoder(Decoder):
    """The shipped model: peaks are already local maxima; geometry gives boxes and angles."""

    layout = "centernet-obb"

    def __init__(self, num_classes: int, stride: int) -> None:
        super().__init__(num_classes)
        self.stride = stride

    def decode(self, outputs: list[np.ndarray], conf: float, top_k: int) -> Candidates:
        peaks, geo = outputs[0][0], outputs[1][0]
        _c, h, w = peaks.shape
        flat = peaks.reshape(-1)
        sel = _top(flat, conf, top_k)
        cls, rem = np.divmod(sel, h * w)
        ys, xs = np.divmod(rem, w)
        g = geo[:, ys, xs]  # 8 x K
        s = self.stride
        cx = (xs + g[0]) * s
        cy = (ys + g[1]) * s
        bw, bh = np.exp(g[2]), np.exp(g[3])
        length, width = np.exp(g[4]), np.exp(g[5])
        angle = (np.degrees(np.arctan2(g[7], g[6])) / 2) % 180.0
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        oriented = np.stack([cx, cy, length, width, angle], 1)
        return Candidates(
            boxes.astype(np.float32),
            flat[sel].astype(np.float32),
            cls.astype(np.int64),
            oriented.astype(np.float32),
            True,  # one parcel can peak in two class maps: a class-agnostic NMS merges them
        )


def parse_names(metadata: dict[str, str]) -> dict[int, str] | None:
    """Class names from model metadata: Ultralytics stores a Python dict literal, not JSON."""
    raw = metadata.get("names")
    if not raw:
        return None
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        try:
            value = json.loads(raw)
        except ValueError:
            return None
    if isinstance(value, dict):
        return {int(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {i: str(v) for i, v in enumerate(value)}
    return None


def _is_int(d: Dim) -> bool:
    return isinstance(d, int) and d > 0


def choose_decoder(
    output_shapes: list[tuple[str, list[Dim]]], metadata: dict[str, str]
) -> tuple[Decoder, dict[int, str]]:
    """Pick the decoder for these outputs; raise UnsupportedModelError naming what was found."""
    names = parse_names(metadata)
    shapes = [s for _, s in output_shapes]
    fmt = metadata.get("wolfpack_format", "")
    if fmt.startswith("centernet-obb") and len(shapes) == 2 and len(shapes[0]) == 4:
        c = shapes[0][1] if _is_int(shapes[0][1]) else len(names or {})
        stride = int(metadata.get("stride", "4"))
        return CenterNetDecoder(int(c), stride), names or _default_names(int(c))
    if len(shapes) == 1 and len(shapes[0]) == 3:
        _, a, b = shapes[0]
        end2end = metadata.get("end2end", "").strip().lower() == "true"
        if b == 6 and (end2end or (_is_int(a) and a <= 1000)):
            n = len(names) if names else 0
            return EndToEndDecoder(n), names or {}
        if _is_int(a) and a >= 5 and (not _is_int(b) or b > a):
            c = int(a) - 4
            if names is None or len(names) == c:
                return YoloV8Decoder(c), names or _default_names(c)
        if _is_int(b) and b >= 6 and (not _is_int(a) or a > b):
            c = int(b) - 5
            if names is None or len(names) == c:
                return YoloV5Decoder(c), names or _default_names(c)
    found = ", ".join(f"{n}: {list(s)}" for n, s in output_shapes)
    n_names = f"{len(names)} class names" if names else "no class names"
    raise UnsupportedModelError(
        f"the model's outputs ({found}; metadata has {n_names}) fit no supported layout. "
        "Expected one of: YOLOv5 [1, N, 5+C]; YOLOv8/YOLO11 [1, 4+C, N]; end-to-end "
        "(YOLO26/YOLOv10) [1, K, 6] with K <= 1000 or metadata end2end=True; or the "
        "wolfpack CenterNet layout (peaks [1, C, H, W] and geometry [1, 8, H, W]). Export "
        "YOLO models with 'yolo export format=onnx' and no extra post-processing."
    )


def _default_names(c: int) -> dict[int, str]:
    return {i: f"class{i}" for i in range(c)}
