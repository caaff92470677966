"""Fine-tune the parcel classifier's last layer on a site's own labelled parcels, and export
the model pair the runtime loads.

Why the last layer only: what goes wrong on a new site's images is the class (measured: boxes
called envelopes, polybags called irregular; the detector's boxes stay good), and the last
layer (a 160 -> 4 linear map on the classifier's pooled features) is where the classes are
decided. It trains in seconds on a board's CPU with numpy (no torch), from a few hundred
parcels, and cannot forget how to see: the feature extractor is unchanged. The weights start
at the shipped ones and are pulled back towards them (``anchor``), so a small set moves the
decision only where its examples say so.

Each annotated parcel is cropped as the runtime crops it (``vision.crops``), four times:
as is, mirrored along either axis, and turned end over end (a parcel mirrored is the same
class). Classes are weighted by their inverse frequency, so a site with few polybags still
learns them.

The export is a pair, as shipped: a copy of the detector whose metadata names the new
classifier (``wolfpack_classifier``), and the classifier with its new last layer and its
provenance in the metadata (``wolfpack_finetuned_from``, ``wolfpack_training``). One path
then selects both: ``vision.model: /path/NAME.onnx``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from vision.crops import upright_crops
from vision.dataset.coco import Annotation, Dataset
from vision.decoders import parse_names
from vision.detections import OrientedBox


class FinetuneError(RuntimeError):
    """Fine-tuning cannot run; the message says which file or data and why."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # the board install has onnxruntime, not onnx
        raise FinetuneError(
            "fine-tuning edits the ONNX file and needs the 'onnx' package: "
            "pip install 'wolfpack-edge[finetune]'"
        ) from exc
    return onnx


def oriented_box(corners: tuple[tuple[float, float], ...] | np.ndarray) -> OrientedBox:
    """The oriented box (length >= width, angle in [0, 180)) of 4 corners, or of the
    minimum-area rectangle around any polygon."""
    pts = cv2.boxPoints(cv2.minAreaRect(np.asarray(corners, np.float32)))
    e1, e2 = pts[1] - pts[0], pts[2] - pts[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    along = e1 if l1 >= l2 else e2
    angle = math.degrees(math.atan2(float(along[1]), float(along[0]))) % 180.0
    c = pts.mean(axis=0)
    return OrientedBox(float(c[0]), float(c[1]), max(l1, l2), min(l1, l2), angle)


@dataclass(frozen=True)
class HeadData:
    """Pooled features of the crops and their classes (index into the classifier's names)."""

    features: np.ndarray  # N x F float32
    classes: np.ndarray  # N int
    image_index: np.ndarray  # N: which sample each crop came from (for a held-out split)


@dataclass
class TrainResult:
    steps: int
    samples: int
    train_accuracy_before: float
    train_accuracy_after: float
    val_accuracy_before: float | None
    val_accuracy_after: float | None
    val_samples: int
    per_class: dict[str, int]


class ClassifierHead:
    """The classifier ONNX file, split at its last layer (a Gemm on pooled features)."""

    def __init__(self, path: str | Path) -> None:
        onnx = _onnx()
        self.path = Path(path)
        try:
            self.model = onnx.load(str(self.path))
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise FinetuneError(f"{self.path}: not readable as ONNX: {exc}") from exc
        self.meta = {p.key: p.value for p in self.model.metadata_props}
        if self.meta.get("wolfpack_format") != "parcel-classifier-v1":
            raise FinetuneError(
                f"{self.path}: not a wolfpack parcel classifier (metadata "
                f"wolfpack_format={self.meta.get('wolfpack_format')!r})"
            )
        self.names = parse_names(self.meta)
        self.crop_wh = tuple(json.loads(self.meta.get("crop_wh", "[128, 96]")))
        self.margin = float(self.meta.get("margin", "1.15"))
        gemms = [n for n in self.model.graph.node if n.op_type == "Gemm"]
        if len(gemms) != 1:
            raise FinetuneError(
                f"{self.path}: expected one last linear layer (Gemm), found {len(gemms)}"
            )
        self.gemm = gemms[0]
        inits = {i.name: i for i in self.model.graph.initializer}
        try:
            self._w_init, self._b_init = inits[self.gemm.input[1]], inits[self.gemm.input[2]]
        except (KeyError, IndexError) as exc:
            raise FinetuneError(f"{self.path}: the Gemm's weights are not constants") from exc
        trans_b = next((a.i for a in self.gemm.attribute if a.name == "transB"), 0)
        w = onnx.numpy_helper.to_array(self._w_init).astype(np.float32)
        self.weight = w if trans_b else w.T  # C x F
        self.bias = onnx.numpy_helper.to_array(self._b_init).astype(np.float32)
        self._trans_b = bool(trans_b)
        feat = onnx.ModelProto()
        feat.CopyFrom(self.model)
        feat.graph.output.append(
            onnx.helper.make_tensor_value_info(self.gemm.input[0], onnx.TensorProto.FLOAT, None)
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            feat.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """N x F pooled features of BGR crops, as the runtime feeds them (RGB in [0, 1])."""
        out = []
        for i in range(0, len(crops), 64):
            blob = cv2.dnn.blobFromImages(crops[i : i + 64], 1.0 / 255.0, swapRB=True)
            out.append(self._session.run([self.gemm.input[0]], {self._input: blob})[0])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)

    def collect(self, ds: Dataset, max_crops: int | None = None) -> HeadData:
        """Crop every annotation of ``ds`` whose class the classifier knows (4 views each)."""
        index = {n: i for i, n in self.names.items()}
        unknown = sorted({a.class_name for s in ds.samples for a in s.annotations} - set(index))
        if unknown:
            raise FinetuneError(
                f"{ds.root}: classes {unknown} are not the classifier's {list(index)}"
            )
        feats, classes, where = [], [], []
        for k, s in enumerate(ds.samples):
            path = ds.image_path(s)
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise FinetuneError(f"{path}: image missing or not readable")
            anns: list[Annotation] = [a for a in s.annotations if _usable(a)]
            if not anns:
                continue
            boxes = [oriented_box(a.corners) for a in anns]
            crops = upright_crops(image, boxes, self.crop_wh, self.margin)  # type: ignore[arg-type]
            views = [v for c in crops for v in (c, c[:, ::-1], c[::-1, :], c[::-1, ::-1])]
            feats.append(self.features([np.ascontiguousarray(v) for v in views]))
            classes.extend(index[a.class_name] for a in anns for _ in range(4))
            where.extend([k] * 4 * len(anns))
            if max_crops is not None and len(classes) >= max_crops:
                break
        if not feats:
            raise FinetuneError(f"{ds.root}: no annotated parcels to train on")
        return HeadData(np.concatenate(feats), np.asarray(classes), np.asarray(where))

    def predict(
        self, features: np.ndarray, w: np.ndarray | None = None, b: np.ndarray | None = None
    ) -> np.ndarray:
        w = self.weight if w is None else w
        b = self.bias if b is None else b
        return np.argmax(features @ w.T + b, axis=1)

    def train(
        self,
        data: HeadData,
        steps: int = 300,
        lr: float = 0.01,
        anchor: float = 1e-3,
        val_every: int = 5,
    ) -> TrainResult:
        """Softmax regression from the shipped weights (Adam, full batch); every
        ``val_every``-th image is held out to report accuracy before and after (0: none)."""
        if steps < 1:
            raise FinetuneError("steps must be >= 1")
        held = (data.image_index % val_every == val_every - 1) if val_every else None
        if held is None or held.all() or not held.any():
            held = np.zeros(len(data.classes), bool)
        x, y = data.features[~held], data.classes[~held]
        n, c = len(y), len(self.names)
        counts = np.bincount(y, minlength=c).astype(np.float64)
        cw = np.where(counts > 0, n / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
        sw = cw[y] / n
        w0, b0 = self.weight.astype(np.float64), self.bias.astype(np.float64)
        w, b = w0.copy(), b0.copy()
        onehot = np.eye(c)[y]
        m = [np.zeros_like(w), np.zeros_like(b)]
        v = [np.zeros_like(w), np.zeros_like(b)]
        for t in range(1, steps + 1):
            z = x @ w.T + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot) * sw[:, None]
            grads = [g.T @ x + anchor * (w - w0), g.sum(axis=0)]
            for i, (param, grad) in enumerate(zip((w, b), grads, strict=True)):
                m[i] = 0.9 * m[i] + 0.1 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad**2
                param -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
        before_tr = float(np.mean(self.predict(x) == y))
        self.weight, self.bias = w.astype(np.float32), b.astype(np.float32)
        xv, yv = data.features[held], data.classes[held]
        return TrainResult(
            steps=steps,
            samples=n,
            train_accuracy_before=before_tr,
            train_accuracy_after=float(np.mean(self.predict(x) == y)),
            val_accuracy_before=float(np.mean(self.predict(xv, w0, b0) == yv)) if len(yv) else None,
            val_accuracy_after=float(np.mean(self.predict(xv) == yv)) if len(yv) else None,
            val_samples=len(yv),
            per_class={self.names[i]: int(k) for i, k in enumerate(counts)},
        )

    def export(self, detector: str | Path, out: str | Path, provenance: dict[str, Any]) -> Path:
        """Write ``out`` (the detector, naming its new classifier) and
        ``out-classifier.onnx`` beside it; the detector path is returned."""
        onnx = _onnx()
        out = Path(out)
        if out.suffix != ".onnx":
            raise FinetuneError(f"{out}: the output must be an .onnx file")
        cls_path = out.with_name(f"{out.stem}-classifier.onnx")
        try:
            det = onnx.load(str(detector))
        except Exception as exc:
            raise FinetuneError(f"{detector}: not readable as ONNX: {exc}") from exc
        det_meta = {p.key: p.value for p in det.metadata_props}
        if parse_names(det_meta) != self.names:
            raise FinetuneError(f"{detector}: its class names are not the classifier's")
        w = self.weight if self._trans_b else self.weight.T
        self._w_init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), self._w_init.name))
        self._b_init.CopyFrom(onnx.numpy_helper.from_array(self.bias, self._b_init.name))
        set_metadata(
            self.model,
            {
                "wolfpack_finetuned_from": self.path.name,
                "wolfpack_training": json.dumps(provenance, sort_keys=True),
            },
        )
        set_metadata(det, {"wolfpack_classifier": cls_path.name})
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(self.model, str(cls_path))
        onnx.save(det, str(out))
        return out


def _usable(a: Annotation) -> bool:
    x1, y1, x2, y2 = a.bbox
    return x2 - x1 >= 4 and y2 - y1 >= 4


def set_metadata(model: Any, values: dict[str, str]) -> None:
    """Set ``values`` in an ONNX model's metadata, keeping every other entry."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    for k, v in [*keep, *values.items()]:
        model.metadata_props.add(key=k, value=v)


def classifier_of(detector: str | Path) -> Path:
    """The classifier file a detector names (beside it)."""
    det = Path(detector)
    if not det.is_file():
        raise FinetuneError(f"{det}: no such model file")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(str(det), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise FinetuneError(f"{det}: cannot be loaded: {exc}") from exc
    name = sess.get_modelmeta().custom_metadata_map.get("wolfpack_classifier")
    if not name:
        raise FinetuneError(
            f"{det}: names no classifier (wolfpack_classifier); fine-tuning "
            "works on the shipped model's classifier stage"
        )
    return det.with_name(name)
