"""The two-stage model: a detector that names its classifier, which then gives each class."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.onnx_fixtures import (
    centernet_outputs,
    colour_classifier,
    constant_model,
    names_literal,
    yolov8_output,
)
from vision.config import VisionConfig
from vision.detections import OrientedBox
from vision.detector import Detector, DetectorSettings, ModelError
from vision.pipeline import Pipeline

NAMES = ["box", "polybag", "envelope", "irregular"]
# mean R -> envelope, mean B -> polybag (crops are RGB in [0, 1])
WEIGHTS = np.array([[0, 0, 12, 0], [0, 0, 0, 0], [0, 12, 0, 0]], np.float32)
# two parcels in frame pixels (the 640x480 frame is letterboxed into 160x128: scale 1/4,
# 4 px of padding top and bottom); both "box" for the detector
RED = OrientedBox(200, 200, 160, 100, 30)
BLUE = OrientedBox(460, 300, 180, 120, 100)


def _frame() -> np.ndarray:
    img = np.full((480, 640, 3), 40, np.uint8)
    cv2.fillPoly(img, [RED.corners().round().astype(np.int32)], (0, 0, 255))
    cv2.fillPoly(img, [BLUE.corners().round().astype(np.int32)], (255, 0, 0))
    return img


def _detector_file(folder: Path, classifier: str | None = "colours.onnx") -> Path:
    parcels = [
        (0, b.cx / 4, b.cy / 4 + 4, b.length / 4, b.width / 4, b.angle_deg, s)
        for b, s in ((RED, 0.9), (BLUE, 0.8))
    ]
    meta = {
        "wolfpack_format": "centernet-obb-v1",
        "names": names_literal(NAMES),
        "stride": "4",
    }
    if classifier:
        meta["wolfpack_classifier"] = classifier
    return constant_model(
        folder / "det.onnx", centernet_outputs(parcels, 4), meta, input_hw=(128, 160)
    )


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    colour_classifier(tmp_path / "colours.onnx", NAMES, WEIGHTS)
    return _detector_file(tmp_path)


def test_the_named_classifier_gives_each_parcel_its_class(pair: Path):
    det = Detector(pair, settings=DetectorSettings(confidence=0.3))
    assert det.classifier is not None and det.classifier.path.name == "colours.onnx"
    dets = {d.class_name: d for d in det.detect(_frame())}
    assert set(dets) == {"envelope", "polybag"}  # not the detector's "box"
    red, blue = dets["envelope"], dets["polybag"]
    assert red.oriented.cx == pytest.approx(RED.cx, abs=1) and blue.oriented.cx == pytest.approx(
        BLUE.cx, abs=1
    )
    # score = detector score x classifier probability: below the detector's own, above 0.5x
    p_red = np.exp(12) / (np.exp(12) + 3)  # mean R of the crop < 1, so really a bit lower
    assert 0.9 * 0.5 < red.confidence < 0.9 * p_red + 1e-6
    assert 0.8 * 0.5 < blue.confidence < 0.8
    assert (red.detector_confidence, blue.detector_confidence) == pytest.approx((0.9, 0.8))


def test_classify_time_is_its_own_stage(pair: Path):
    from vision.detector import StageTimes

    det = Detector(pair, settings=DetectorSettings(confidence=0.3))
    t = StageTimes()
    det.detect(_frame(), t)
    assert t.extra["classify"] > 0


def test_without_the_classifier_the_detector_classes_stand(pair: Path):
    det = Detector(pair, settings=DetectorSettings(confidence=0.3), classifier=None)
    assert det.classifier is None
    dets = det.detect(_frame())
    assert [d.class_name for d in dets] == ["box", "box"]
    assert [round(d.confidence, 3) for d in dets] == [0.9, 0.8]


def test_config_none_turns_it_off_and_a_path_picks_another(pair: Path, tmp_path: Path):
    off = Pipeline.from_config(VisionConfig(model=pair, classifier="none"))
    assert off.detector.classifier is None
    other = colour_classifier(tmp_path / "other.onnx", NAMES, WEIGHTS[:, ::-1].copy())
    on = Pipeline.from_config(VisionConfig(model=pair, classifier=other))
    assert on.detector.classifier is not None and on.detector.classifier.path == other
    assert Pipeline.from_config(VisionConfig(model=pair)).detector.classifier is not None


def test_a_missing_named_classifier_is_an_error_saying_where_and_what_to_do(tmp_path: Path):
    path = _detector_file(tmp_path, classifier="gone.onnx")
    with pytest.raises(ModelError) as err:
        Detector(path)
    msg = str(err.value)
    assert "gone.onnx" in msg and str(tmp_path) in msg and "classifier: none" in msg


def test_a_file_that_is_not_a_classifier_is_refused(tmp_path: Path):
    colour_classifier(tmp_path / "colours.onnx", NAMES, WEIGHTS, metadata={"wolfpack_format": "x"})
    with pytest.raises(ModelError, match=r"not a parcel classifier.*'x'"):
        Detector(_detector_file(tmp_path))


def test_classes_that_differ_from_the_detector_are_refused(tmp_path: Path):
    colour_classifier(tmp_path / "colours.onnx", ["a", "b", "c", "d"], WEIGHTS)
    with pytest.raises(ModelError, match="differ from the detector"):
        Detector(_detector_file(tmp_path))


def test_a_classifier_needs_oriented_boxes(tmp_path: Path):
    out = yolov8_output(np.array([[10, 10, 90, 90]], np.float32), np.array([0]),
                        np.array([0.9], np.float32), c=4)  # fmt: skip
    yolo = constant_model(tmp_path / "yolo.onnx", {"output0": out}, {"names": names_literal(NAMES)})
    clf = colour_classifier(tmp_path / "colours.onnx", NAMES, WEIGHTS)
    assert Detector(yolo).classifier is None  # "auto": a YOLO export names none
    with pytest.raises(ModelError, match="oriented boxes"):
        Detector(yolo, classifier=clf)


def test_the_shipped_model_names_its_shipped_classifier(tmp_path: Path):
    from vision.config import DEFAULT_MODEL

    det = Detector(DEFAULT_MODEL)
    assert det.classifier is not None
    assert det.classifier.path.name == "parcels-classifier.onnx"
    assert det.classifier.names == det.names
    assert det.classifier.path.stat().st_size < 2_000_000
    # copied alone, the detector says what is missing instead of running half a model
    shutil.copy(DEFAULT_MODEL, tmp_path / DEFAULT_MODEL.name)
    with pytest.raises(ModelError, match=r"parcels-classifier\.onnx"):
        Detector(tmp_path / DEFAULT_MODEL.name)


def test_with_a_classifier_the_detector_input_is_the_same_from_the_halved_frame(pair: Path):
    frame = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with_clf = Detector(pair)
    alone = Detector(pair, classifier=None)
    (a, lb_a), (b, lb_b) = with_clf.prepare(frame), alone.prepare(frame)
    assert lb_a == lb_b
    assert np.abs(a - b).max() <= 1.01 / 255  # uint8 rounding of the halved frame
    # the boxes come back in frame pixels either way
    da, db = with_clf.detect(_frame()), alone.detect(_frame())
    np.testing.assert_allclose(sorted(d.box for d in da), sorted(d.box for d in db), atol=1e-4)


def test_a_classifier_that_cannot_run_on_its_crops_or_lacks_classes_is_refused(tmp_path):
    # metadata that says 64x48 on a model whose input is 128x96
    colour_classifier(tmp_path / "colours.onnx", NAMES, WEIGHTS, metadata={"crop_wh": "[64, 48]"})
    with pytest.raises(ModelError, match="cannot run on 64x48 crops"):
        Detector(_detector_file(tmp_path))
    colour_classifier(tmp_path / "colours.onnx", NAMES, WEIGHTS[:, :3].copy(), metadata={})
    with pytest.raises(ModelError, match=r"gives \[1, 3\] per crop, expected \[1, 4\]"):
        Detector(_detector_file(tmp_path))
