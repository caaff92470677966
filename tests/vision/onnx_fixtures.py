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
