"""A data set of belt images with parcel annotations, as COCO JSON.

Why COCO (and not YOLO txt files): one file holds the whole set, CVAT ("COCO 1.0") and Label
Studio (its COCO import/export) read and write it, and it keeps what YOLO's format cannot:
the oriented box (as a 4-point ``segmentation`` polygon beside the axis-aligned ``bbox``),
the model's score of a pre-label, the label text a reader decoded (CVAT keeps both as
annotation ``attributes``), and why a frame was captured (extra keys in ``images``, which
tools ignore and keep). A technician corrects the pre-labels in the tool, exports COCO again
over ``annotations.json``, and trains on it.

Layout of a data set directory::

    DIR/annotations.json       COCO: images, annotations, categories
    DIR/images/NNNNNNNN.jpg    the frames, named by capture number

Coordinates are image pixels, x right, y down; ``bbox`` is ``[x, y, w, h]``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ANNOTATIONS = "annotations.json"
IMAGES = "images"


class DatasetError(ValueError):
    """A data set cannot be read or written; the message says which file, where and why."""


@dataclass(frozen=True)
class Annotation:
    """One parcel in one image: class, 4 corners (oriented box, or the axis-aligned one),
    and for a pre-label the model's score and the label text it read."""

    class_name: str
    corners: tuple[tuple[float, float], ...]  # 4 points around the box, px
    score: float | None = None
    label_text: str | None = None
    # the visible axis-aligned box, when it is not the corners' (a parcel cut by the frame's
    # edge, an irregular item smaller than its oriented rectangle); COCO's ``bbox``
    visible: tuple[float, float, float, float] | None = None

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Axis-aligned x1, y1, x2, y2."""
        if self.visible is not None:
            return self.visible
        xs = [p[0] for p in self.corners]
        ys = [p[1] for p in self.corners]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Sample:
    """One image of the set (``file_name`` relative to the set's directory)."""

    file_name: str
    width: int
    height: int
    annotations: tuple[Annotation, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)  # reason, encoder_count, captured_at


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]

    def image_path(self, sample: Sample) -> Path:
        return self.root / sample.file_name


def to_coco(samples: list[Sample] | tuple[Sample, ...], classes: tuple[str, ...]) -> dict:
    """The COCO dictionary of ``samples``; category ids are 1-based in ``classes`` order."""
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for image_id, s in enumerate(samples, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": s.file_name,
                "width": s.width,
                "height": s.height,
                **{k: v for k, v in s.meta.items() if k not in _IMAGE_KEYS},
            }
        )
        for a in s.annotations:
            if a.class_name not in cat_id:
                raise DatasetError(
                    f"{s.file_name}: class {a.class_name!r} is not one of {list(classes)}"
                )
            x1, y1, x2, y2 = a.bbox
            attributes: dict[str, Any] = {}
            if a.score is not None:
                attributes["score"] = round(float(a.score), 4)
            if a.label_text is not None:
                attributes["label"] = a.label_text
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_id[a.class_name],
                    "bbox": [_r(x1), _r(y1), _r(x2 - x1), _r(y2 - y1)],
                    "area": _r(_polygon_area(a.corners)),
                    "segmentation": [[_r(v) for p in a.corners for v in p]],
                    "iscrowd": 0,
                    "attributes": attributes,
                }
            )
    return {
        "info": {"description": "wolfpack-edge parcel images", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "parcel"} for n, i in cat_id.items()],
    }


def write_coco(
    root: Path, samples: list[Sample] | tuple[Sample, ...], classes: tuple[str, ...]
) -> Path:
    """Write ``root/annotations.json`` atomically (a reader never sees half a file)."""
    path = Path(root) / ANNOTATIONS
    tmp = path.with_name(f".{ANNOTATIONS}.tmp")
    tmp.write_text(json.dumps(to_coco(samples, classes), separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return path


def read_coco(root: str | Path) -> Dataset:
    """Read ``root/annotations.json`` (or the COCO file ``root`` itself): what a node wrote,
    or what a labelling tool exported after corrections."""
    root = Path(root)
    path = root if root.is_file() else root / ANNOTATIONS
    if not path.is_file():
        raise DatasetError(
            f"{path}: no COCO annotations file (a data set directory holds "
            f"{ANNOTATIONS} and {IMAGES}/)"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not readable as JSON: {exc}") from exc
    return from_coco(doc, path.parent, str(path))


def from_coco(doc: Any, root: Path, where: str = ANNOTATIONS) -> Dataset:
    """Parse a COCO dictionary; every error names the entry and the field."""
    if not isinstance(doc, dict):
        raise DatasetError(f"{where}: expected a JSON object, found {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(f"{where}: '{key}' must be a list")
    cats: dict[int, str] = {}
    for i, c in enumerate(doc["categories"]):
        cid, name = _get(c, "id", int, f"{where}: categories[{i}]"), c.get("name")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: categories[{i}].name must be a non-empty string")
        cats[cid] = name
    classes = tuple(cats[k] for k in sorted(cats))
    by_image: dict[int, list[Annotation]] = {}
    for i, a in enumerate(doc["annotations"]):
        at = f"{where}: annotations[{i}]"
        image_id = _get(a, "image_id", int, at)
        cid = _get(a, "category_id", int, at)
        if cid not in cats:
            raise DatasetError(f"{at}.category_id {cid} is not a category")
        corners = _corners(a, at)
        visible = _bbox(a.get("bbox"), at) if a.get("segmentation") else None
        attrs = a.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise DatasetError(f"{at}.attributes must be an object")
        score = attrs.get("score")
        label = attrs.get("label")
        by_image.setdefault(image_id, []).append(
            Annotation(
                cats[cid],
                corners,
                float(score) if isinstance(score, int | float) else None,
                str(label) if isinstance(label, str) and label else None,
                visible if visible is not None and not _near(visible, _xyxy(corners)) else None,
            )
        )
    samples = []
    for i, im in enumerate(doc["images"]):
        at = f"{where}: images[{i}]"
        image_id = _get(im, "id", int, at)
        name = im.get("file_name")
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in name:
            raise DatasetError(f"{at}.file_name must be a path inside the data set, found {name!r}")
        samples.append(
            Sample(
                name,
                _get(im, "width", int, at),
                _get(im, "height", int, at),
                tuple(by_image.get(image_id, ())),
                {k: v for k, v in im.items() if k not in _IMAGE_KEYS},
            )
        )
    return Dataset(Path(root), classes, tuple(samples))


_IMAGE_KEYS = ("id", "file_name", "width", "height")


def _get(obj: Any, key: str, kind: type, at: str) -> Any:
    if not isinstance(obj, dict):
        raise DatasetError(f"{at}: expected an object")
    v = obj.get(key)
    if kind is int and isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise DatasetError(f"{at}.{key}: expected {kind.__name__}, found {v!r}")
    return v


def _corners(a: dict, at: str) -> tuple[tuple[float, float], ...]:
    """The oriented box from a 4-point polygon; else the axis-aligned ``bbox``. A polygon a
    tool drew with more points becomes its minimum-area rectangle."""
    seg = a.get("segmentation")
    if isinstance(seg, list) and seg and isinstance(seg[0], list) and len(seg[0]) >= 6:
        pts = seg[0]
        if len(pts) % 2 or not all(isinstance(v, int | float) for v in pts):
            raise DatasetError(f"{at}.segmentation: expected [[x1, y1, x2, y2, ...]]")
        xy = [(float(pts[k]), float(pts[k + 1])) for k in range(0, len(pts), 2)]
        if len(xy) == 4:
            return tuple(xy)
        import cv2

        rect = cv2.minAreaRect(np.asarray(xy, np.float32))
        return tuple((float(x), float(y)) for x, y in cv2.boxPoints(rect))
    x1, y1, x2, y2 = _bbox(a.get("bbox"), at)
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


def _bbox(box: Any, at: str) -> tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` as x1, y1, x2, y2 (rounded as written)."""
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise DatasetError(f"{at}.bbox: expected [x, y, w, h], found {box!r}")
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0 and all(math.isfinite(v) for v in (x, y, w, h))):
        raise DatasetError(f"{at}.bbox: width and height must be > 0, found {box!r}")
    return (x, y, _r(x + w), _r(y + h))


def _xyxy(corners: tuple[tuple[float, float], ...]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    return (_r(min(xs)), _r(min(ys)), _r(max(xs)), _r(max(ys)))


def _near(a: tuple[float, ...], b: tuple[float, ...], tol: float = 0.05) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _polygon_area(pts: tuple[tuple[float, float], ...]) -> float:
    s = 0.0
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def _r(v: float) -> float:
    return round(float(v), 2)
