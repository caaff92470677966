"""`wolfpack vision detect|bench` on rendered images, the simulator and bad models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.main import main
from sim_hardware.camera.randomisation import CLASSES, HELD_OUT
from sim_hardware.camera.scene import render_scene
from tests.vision.onnx_fixtures import constant_model

REPO = Path(__file__).resolve().parents[2]


def _scene_png(tmp_path: Path, seed: int) -> tuple[Path, object]:
    scene = render_scene(seed, HELD_OUT)
    path = tmp_path / f"scene{seed}.png"
    cv2.imwrite(str(path), scene.image)
    return path, scene


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_detect_prints_one_json_line_and_saves_the_annotated_image(tmp_path, capsys):
    png, scene = _scene_png(tmp_path, 9_200_001)
    out = tmp_path / "annotated.jpg"
    assert main(["vision", "detect", str(png), "--json", "--out", str(out)]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["image"] == str(png) and line["width"] == 640 and line["height"] == 480
    assert abs(len(line["parcels"]) - len(scene.parcels)) <= 1  # a detector, not an oracle
    for p in line["parcels"]:
        assert p["class"] in CLASSES and 0 < p["confidence"] <= 1
        assert len(p["box"]) == 4 and all(len(c) == 2 for c in p["box"])
        assert p["size_mm"] is None  # no calibration given
    texts = {p["label"]["text"] for p in line["parcels"] if p["label"]}
    assert texts <= {p.label_text for p in scene.parcels}  # never a label that is not there
    assert texts & {p.label_text for p in scene.parcels if p.label_legible}
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (480, 640, 3)
    assert line["annotated"] == str(out)


def test_detect_with_a_calibrated_config_reports_sizes(tmp_path, capsys):
    png, _ = _scene_png(tmp_path, 9_200_002)
    cfg = REPO / "configs/examples/vision-cell.yaml"
    args = ["vision", "detect", str(png), "--json", "--no-save", "--config", str(cfg)]
    assert main(args) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["parcels"] and all(p["size_mm"]["length"] > 0 for p in line["parcels"])
    assert line["annotated"] is None


def test_several_images_give_one_line_and_one_file_each(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, _ = _scene_png(tmp_path, 9_200_003)
    b, _ = _scene_png(tmp_path, 9_200_004)
    assert main(["vision", "detect", str(a), str(b), "--json", "--out", "out.jpg"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["image"] for line in lines] == [str(a), str(b)]
    assert (tmp_path / "out-0000.jpg").is_file() and (tmp_path / "out-0001.jpg").is_file()


def test_the_simulator_is_a_source(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["vision", "detect", "--source", "sim:3", "--frames", "3", "--json"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["frame"] for line in lines] == [0, 1, 2]
    assert all(isinstance(line["encoder_count"], int) for line in lines)
    assert lines[2]["encoder_count"] > lines[0]["encoder_count"]


def test_human_output_lists_parcels(tmp_path, capsys):
    png, _ = _scene_png(tmp_path, 9_200_005)
    assert main(["vision", "detect", str(png), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "parcel(s)" in out and any(c in out for c in CLASSES)


def test_an_unsupported_model_fails_with_its_shapes(tmp_path, capsys):
    png, _ = _scene_png(tmp_path, 9_200_006)
    bad = constant_model(tmp_path / "bad.onnx", {"out": np.zeros((1, 9, 9), np.float32)})
    assert main(["vision", "detect", str(png), "--model", str(bad), "--no-save"]) == 1
    assert "out: [1, 9, 9]" in capsys.readouterr().err


def test_images_and_source_together_are_a_usage_error(tmp_path, capsys):
    assert main(["vision", "detect"]) == 2
    assert "IMAGE" in capsys.readouterr().err


def test_a_missing_image_is_an_error(tmp_path, capsys):
    assert main(["vision", "detect", str(tmp_path / "nope.png")]) == 1
    assert "nope.png" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_bench_prints_stage_timings(capsys):
    assert main(["vision", "bench", "--frames", "12"]) == 0
    out = capsys.readouterr().out
    for stage in ("preprocess", "inference", "nms", "tracking", "label read", "whole pipeline"):
        assert stage in out


def test_classifier_none_and_a_missing_classifier_file(tmp_path, capsys):
    png, _ = _scene_png(tmp_path, 9_200_007)
    assert main(["vision", "detect", str(png), "--json", "--no-save", "--classifier", "none"]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert "classify" not in line["timings_ms"]  # the detector's own classes
    assert all(p["detector_confidence"] is None for p in line["parcels"])
    assert main(["vision", "detect", str(png), "--json", "--no-save"]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["timings_ms"]["classify"] > 0  # the shipped model's second stage ran
    assert line["parcels"]
    assert all(p["confidence"] <= p["detector_confidence"] for p in line["parcels"])
    missing = tmp_path / "gone.onnx"
    assert main(["vision", "detect", str(png), "--no-save", "--classifier", str(missing)]) == 1
    assert f"{missing}: classifier file not found" in capsys.readouterr().err


def test_detect_writes_no_image_unless_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png, _ = _scene_png(tmp_path, 9_200_006)
    before = set(tmp_path.iterdir())
    assert main(["vision", "detect", str(png), "--json"]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["annotated"] is None and set(tmp_path.iterdir()) == before
    out_dir = tmp_path / "annotated"
    assert main(["vision", "detect", str(png), "--json", "--annotate-dir", str(out_dir)]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    written = out_dir / f"{png.stem}.annotated.jpg"
    assert line["annotated"] == str(written) and cv2.imread(str(written)) is not None
