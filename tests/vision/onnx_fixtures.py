"""Builds real ONNX files that emit known tensors, in each detector output layout.

The graphs are Constant -> Identity (plus the image input, which a real model would use):
onnxruntime loads and runs them like any export, so the decoders meet real sessions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
    input_hw: tuple[int, int] = (640, 640),
) -> Path:
    nodes, outs = [], []
    for name, value in outputs.items():
        const = f"{name}_const"
        nodes.append(
            helper.make_node(
                "Constant", [], [const], value=numpy_helper.from_array(value.astype(np.float32))
            )
        )
        nodes.append(helper.make_node("Identity", [const], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])
    graph = helper.make_graph(nodes, "fixture", [images], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def names_literal(names: list[str]) -> str:
    """Class names as Ultralytics writes them: a Python dict literal, single quotes."""
    return repr(dict(enumerate(names)))


def yolov8_output(boxes_xyxy: np.ndarray, classes: np.ndarray, scores: np.ndarray, c: int,
                  n: int = 8400, seed: int = 0) -> np.ndarray:  # fmt: skip
    """1 x (4+C) x N: the given boxes at random anchor slots, background scores below 0.05."""
    rng = np.random.default_rng(seed)
    out = np.zeros((4 + c, n), np.float32)
    out[:2] = rng.uniform(0, 640, (2, n))
    out[2:4] = rng.uniform(5, 60, (2, n))
    out[4:] = rng.uniform(0, 0.05, (c, n))
    slots = rng.choice(n, len(boxes_xyxy), replace=False)
    for slot, b, k, s in zip(slots, boxes_xyxy, classes, scores, strict=True):
        out[:4, slot] = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]
        out[4:, slot] = 0.01
        out[4 + int(k), slot] = s
    return out[None]


def yolov5_output(boxes_xyxy: np.ndarray, classes: np.ndarray, scores: np.ndarray, c: int,
                  n: int = 6300, seed: int = 0) -> np.ndarray:  # fmt: skip
    """1 x N x (5+C): objectness carries the score, the class score is 1 for the class."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 5 + c), np.float32)
    out[:, :2] = rng.uniform(0, 640, (n, 2))
    out[:, 2:4] = rng.uniform(5, 60, (n, 2))
    out[:, 4] = rng.uniform(0, 0.05, n)
    out[:, 5:] = rng.uniform(0, 1, (n, c))
    slots = rng.choice(n, len(boxes_xyxy), replace=False)
    for slot, b, k, s in zip(slots, boxes_xyxy, classes, scores, strict=True):
        out[slot, :4] = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]
        out[slot, 4] = s
        out[slot, 5:] = 0.02
        out[slot, 5 + int(k)] = 1.0
    return out[None]


def end2end_output(boxes_xyxy: np.ndarray, classes: np.ndarray, scores: np.ndarray,
                   k: int = 300) -> np.ndarray:  # fmt: skip
    """1 x K x 6: x1, y1, x2, y2, score, class; unused rows are zero."""
    out = np.zeros((k, 6), np.float32)
    for i, (b, c, s) in enumerate(zip(boxes_xyxy, classes, scores, strict=True)):
        out[i] = [*b, s, c]
    return out[None]


def centernet_outputs(
    parcels: list[tuple[int, float, float, float, float, float, float]],
    c: int,
    input_hw: tuple[int, int] = (128, 160),
    stride: int = 4,
) -> dict[str, np.ndarray]:
    """``peaks`` and ``geometry`` of the shipped layout for parcels given as (class, cx, cy,
    length, width, angle_deg, score) in model-input pixels."""
    oh, ow = input_hw[0] // stride, input_hw[1] // stride
    peaks = np.zeros((1, c, oh, ow), np.float32)
    geo = np.zeros((1, 8, oh, ow), np.float32)
    for cls, cx, cy, length, width, angle, score in parcels:
        ix, iy = int(cx / stride), int(cy / stride)
        a = np.deg2rad(angle)
        bw = abs(length * np.cos(a)) + abs(width * np.sin(a))
        bh = abs(length * np.sin(a)) + abs(width * np.cos(a))
        peaks[0, cls, iy, ix] = score
        geo[0, :, iy, ix] = [
            cx / stride - ix, cy / stride - iy, np.log(bw), np.log(bh),
            np.log(length), np.log(width), np.cos(2 * a), np.sin(2 * a),
        ]  # fmt: skip
    return {"peaks": peaks, "geometry": geo}


def colour_classifier(
    path: Path, names: list[str], weights: np.ndarray, crop_wh: tuple[int, int] = (128, 96),
    metadata: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """A real parcel classifier: softmax(mean RGB of the crop @ weights), weights 3 x C.
    It tells parcels apart by colour, so a test knows which class each crop must get."""
    w, h = crop_wh
    nodes = [
        helper.make_node("ReduceMean", ["crops"], ["rgb"], axes=[2, 3], keepdims=0),
        helper.make_node(
            "Constant", [], ["w"], value=numpy_helper.from_array(weights.astype(np.float32))
        ),
        helper.make_node("MatMul", ["rgb", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    crops = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["n", 3, h, w])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(names)])
    graph = helper.make_graph(nodes, "colour-classifier", [crops], [probs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "wolfpack_format": "parcel-classifier-v1",
        "names": names_literal(names),
        "crop_wh": f"[{w}, {h}]",
        "margin": "1.15",
    }
    meta.update(metadata or {})
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
