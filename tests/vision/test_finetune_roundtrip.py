"""A site's fine-tuning round trip through the CLI: capture frames of the simulator's camera,
train the classifier's last layer on them, export, load, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.cli.main import main
from vision.dataset.coco import read_coco, write_coco
from vision.detector import Detector
from vision.finetune.head import ClassifierHead, FinetuneError, classifier_of

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("box", "polybag", "envelope", "irregular")


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames the capture policy kept from the simulator's belt camera, labelled with the
    simulator's truth (what a technician's corrections in CVAT give)."""
    data = tmp_path_factory.mktemp("capture") / "set"
    args = ["vision", "capture", "--source", "sim:11:5", "--frames", "30", "--out", str(data),
            "--truth", "--share", "1", "--min-gap", "2", "--max-mb", "20"]  # fmt: skip
    assert main(args) == 0
    return data


def test_capture_writes_a_coco_set_with_reasons(captured: Path):
    ds = read_coco(captured)
    assert ds.classes == CLASSES
    assert 5 <= len(ds.samples) <= 36
    assert all(s.meta["reason"] in ("sampled", "no_read", "low_confidence", "label_conflict")
               for s in ds.samples)  # fmt: skip
    assert sum(len(s.annotations) for s in ds.samples) >= 8
    assert all(ds.image_path(s).is_file() for s in ds.samples)
    status = json.loads((captured / "capture-status.json").read_text())
    assert status["images"] == len(ds.samples) and status["failed"] == 0


def test_train_export_load_evaluate(captured: Path, tmp_path: Path, capsys):
    out = tmp_path / "models" / "site.onnx"
    capsys.readouterr()
    assert main(["vision", "train", "--data", str(captured), "--out", str(out), "--steps", "60",
                 "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples"] > 0 and result["steps"] == 60
    cls_path = out.with_name("site-classifier.onnx")
    assert out.is_file() and cls_path.is_file()
    meta = {p.key: p.value for p in onnx.load(str(cls_path)).metadata_props}
    assert meta["wolfpack_format"] == "parcel-classifier-v1"
    assert meta["wolfpack_finetuned_from"] == "parcels-classifier.onnx"
    assert json.loads(meta["wolfpack_training"])["steps"] == 60
    det = Detector(out)  # one path loads both, as vision.model does on the board
    assert det.classifier is not None and det.classifier.path == cls_path
    assert main(["vision", "evaluate", "--data", str(captured), "--model", str(out)]) == 0
    table = capsys.readouterr().out
    # at the model's own threshold, which the fine-tuned detector keeps from the shipped one
    own = {p.key: p.value for p in onnx.load(str(out)).metadata_props}["wolfpack_confidence"]
    assert "mAP@0.5:" in table and f"confusion at confidence {float(own)}" in table
    assert "classifier site-classifier.onnx" in table
    assert main(["vision", "evaluate", "--data", str(captured), "--model", str(out), "--json",
                 "--no-labels"]) == 0  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert r["recall50"] >= 0.8 and r["class_accuracy"] >= 0.8


def test_training_moves_the_classes_where_the_labels_say(captured: Path, tmp_path: Path):
    """A site whose 'polybags' are to be sorted as irregular items: after training, the
    classifier calls them so; a real change, which the untrained head does not make."""
    ds = read_coco(captured)
    relabelled = [
        s.__class__(s.file_name, s.width, s.height, tuple(
            a.__class__("irregular" if a.class_name == "polybag" else a.class_name,
                        a.corners, a.score, a.label_text, a.visible)
            for a in s.annotations), s.meta)
        for s in ds.samples
    ]  # fmt: skip
    site = tmp_path / "site"
    (site / "images").mkdir(parents=True)
    for s in ds.samples:
        (site / s.file_name).write_bytes(ds.image_path(s).read_bytes())
    write_coco(site, relabelled, CLASSES)
    head = ClassifierHead(classifier_of(REPO / "vision/models/parcels.onnx"))
    data = head.collect(read_coco(site))
    polybag_rows = head.collect(ds).classes == CLASSES.index("polybag")  # same crops, in order
    assert polybag_rows.sum() >= 8
    before = np.mean(head.predict(data.features[polybag_rows]) == CLASSES.index("irregular"))
    result = head.train(data, steps=300, lr=0.02, val_every=0)
    after = np.mean(head.predict(data.features[polybag_rows]) == CLASSES.index("irregular"))
    assert after > before + 0.2 and after >= 0.8, (before, after, result)


def test_errors_are_one_line(tmp_path: Path, capsys):
    assert (
        main(["vision", "train", "--data", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 1
    )
    assert "no COCO annotations file" in capsys.readouterr().err
    with pytest.raises(FinetuneError, match="names no classifier"):
        bare = tmp_path / "bare.onnx"
        m = onnx.load(str(REPO / "vision/models/parcels.onnx"))
        keep = [(p.key, p.value) for p in m.metadata_props if p.key != "wolfpack_classifier"]
        del m.metadata_props[:]
        for k, v in keep:
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, str(bare))
        classifier_of(bare)
    assert main(["vision", "capture", "--source", "sim:1", "--out", str(tmp_path / "x"),
                 "--share", "3"]) == 1  # fmt: skip
    assert "sample_share" in capsys.readouterr().err
