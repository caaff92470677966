"""Each supported output layout, as a real ONNX file run by onnxruntime, gives back known boxes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vision.onnx_fixtures import (
    constant_model,
    end2end_output,
    names_literal,
    yolov5_output,
    yolov8_output,
)
from vision.decoders import UnsupportedModelError, parse_names
from vision.detector import Detector, DetectorSettings

NAMES = ["box", "polybag", "envelope"]
FRAME = np.zeros((480, 640, 3), np.uint8)  # letterboxed into 640x640: 80 px pad top and bottom
PAD_Y = 80.0
# frame-pixel boxes, classes and scores the fake models "detect"
BOXES = np.array([[100, 100, 220, 190], [300, 250, 480, 400], [500, 20, 600, 90]], np.float32)
CLASSES = np.array([0, 2, 1])
SCORES = np.array([0.9, 0.8, 0.7], np.float32)


def _to_input(boxes: np.ndarray) -> np.ndarray:
    return boxes + np.array([0, PAD_Y, 0, PAD_Y], np.float32)


def _check(dets, boxes=BOXES, classes=CLASSES, scores=SCORES) -> None:
    assert len(dets) == len(boxes)
    got = sorted(dets, key=lambda d: -d.confidence)
    for d, b, c, s in zip(got, boxes, classes, scores, strict=True):
        np.testing.assert_allclose(d.box, b, atol=0.01)
        assert d.class_id == c
        assert d.class_name == NAMES[c]
        assert d.confidence == pytest.approx(s, abs=1e-5)


def test_yolov8_layout_recovers_known_boxes_and_nms_drops_the_duplicate(tmp_path: Path):
    boxes = np.vstack([_to_input(BOXES), _to_input(BOXES[:1]) + 3])  # a near-duplicate
    classes, scores = np.append(CLASSES, 0), np.append(SCORES, 0.6)
    out = yolov8_output(boxes, classes, scores, c=3)
    path = constant_model(tmp_path / "v8.onnx", {"output0": out}, {"names": names_literal(NAMES)})
    det = Detector(path, settings=DetectorSettings(confidence=0.25, iou=0.5))
    assert det.layout == "yolov8"
    _check(det.detect(FRAME))


def test_yolov5_layout_recovers_known_boxes(tmp_path: Path):
    out = yolov5_output(_to_input(BOXES), CLASSES, SCORES, c=3)
    path = constant_model(tmp_path / "v5.onnx", {"output0": out}, {"names": names_literal(NAMES)})
    det = Detector(path, settings=DetectorSettings(confidence=0.25))
    assert det.layout == "yolov5"
    _check(det.detect(FRAME))


def test_end_to_end_layout_recovers_known_boxes_without_nms(tmp_path: Path):
    # two overlapping boxes of the same class: an NMS-free model means both are real
    boxes = np.vstack([BOXES, BOXES[:1] + 5])
    classes, scores = np.append(CLASSES, 0), np.append(SCORES, 0.6)
    out = end2end_output(_to_input(boxes), classes, scores)
    meta = {"names": names_literal(NAMES), "end2end": "True"}
    path = constant_model(tmp_path / "e2e.onnx", {"output0": out}, meta)
    det = Detector(path, settings=DetectorSettings(confidence=0.25))
    assert det.layout == "end2end"
    _check(det.detect(FRAME), boxes, classes, scores)


def test_top_k_cut_keeps_only_the_best_candidates(tmp_path: Path):
    out = yolov8_output(_to_input(BOXES), CLASSES, SCORES, c=3)
    path = constant_model(tmp_path / "v8.onnx", {"output0": out}, {"names": names_literal(NAMES)})
    det = Detector(path, settings=DetectorSettings(confidence=0.25, top_k=2))
    _check(det.detect(FRAME), BOXES[:2], CLASSES[:2], SCORES[:2])


@pytest.mark.parametrize(
    "shapes",
    [
        {"output0": (1, 7, 7)},  # square: neither channels-first nor channels-last
        {"output0": (1, 1000)},  # 2D
        {"a": (1, 84, 8400), "b": (1, 32, 160, 160)},  # a segmentation export
    ],
)
def test_unsupported_model_gets_an_error_naming_its_shapes(tmp_path: Path, shapes):
    outputs = {k: np.zeros(v, np.float32) for k, v in shapes.items()}
    path = constant_model(tmp_path / "odd.onnx", outputs)
    with pytest.raises(UnsupportedModelError) as err:
        Detector(path)
    msg = str(err.value)
    for name, shape in shapes.items():
        assert f"{name}: {list(shape)}" in msg
    assert "YOLOv8/YOLO11 [1, 4+C, N]" in msg


def test_names_that_disagree_with_the_output_are_refused(tmp_path: Path):
    out = yolov8_output(_to_input(BOXES), CLASSES, SCORES, c=3)
    meta = {"names": names_literal(["a", "b", "c", "d", "e"])}
    path = constant_model(tmp_path / "v8.onnx", {"output0": out}, meta)
    with pytest.raises(UnsupportedModelError, match="5 class names"):
        Detector(path)


def test_missing_model_file_is_a_clear_error(tmp_path: Path):
    from vision.detector import ModelError

    with pytest.raises(ModelError, match="not found"):
        Detector(tmp_path / "nope.onnx")


@given(
    st.dictionaries(st.integers(0, 999), st.text(min_size=1, max_size=20), min_size=1, max_size=30)
)
def test_names_parse_from_ultralytics_dict_literals(names: dict[int, str]):
    assert parse_names({"names": repr(names)}) == names


@given(st.text(max_size=40))
def test_names_parser_never_raises_on_garbage(raw: str):
    result = parse_names({"names": raw})
    assert result is None or isinstance(result, dict)


_box = st.tuples(st.floats(0, 500), st.floats(0, 380), st.floats(20, 140), st.floats(20, 100)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=25)
@given(
    st.lists(_box, min_size=1, max_size=6),
    st.sampled_from(["yolov5", "yolov8", "end2end"]),
    st.integers(0, 2**16),
)
def test_any_set_of_separate_boxes_round_trips_through_each_layout(boxes, layout, seed):
    b = np.array(boxes, np.float32)
    # keep only boxes that do not overlap each other (NMS would rightly merge those)
    from vision.tracker import iou_matrix

    keep: list[int] = []
    for i in range(len(b)):
        if all(iou_matrix(b[i : i + 1], b[j : j + 1])[0, 0] < 0.3 for j in keep):
            keep.append(i)
    b = b[keep]
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, len(b))
    scores = np.sort(rng.uniform(0.4, 0.99, len(b)))[::-1].astype(np.float32)
    make = {
        "yolov5": lambda: yolov5_output(_to_input(b), classes, scores, c=3, n=2000, seed=seed),
        "yolov8": lambda: yolov8_output(_to_input(b), classes, scores, c=3, n=2000, seed=seed),
        "end2end": lambda: end2end_output(_to_input(b), classes, scores),
    }[layout]
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"names": names_literal(NAMES)}
        path = constant_model(Path(tmp) / "m.onnx", {"output0": make()}, meta)
        det = Detector(path, settings=DetectorSettings(confidence=0.3), warmup_runs=0)
        dets = det.detect(FRAME)
    assert det.layout == layout
    # boxes are clipped to the frame
    expected = b.copy()
    expected[:, 0::2] = expected[:, 0::2].clip(0, 640)
    expected[:, 1::2] = expected[:, 1::2].clip(0, 480)
    _check(dets, expected, classes, scores)
