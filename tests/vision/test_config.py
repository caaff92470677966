"""The `vision:` board-config section: defaults, validation, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_board_config
from vision.config import DEFAULT_MODEL, VisionConfig

REPO = Path(__file__).resolve().parents[2]


def test_example_config_with_vision_validates():
    cfg = load_board_config(REPO / "configs/examples/vision-cell.yaml")
    v = cfg.vision
    assert v is not None and v.calibration is not None
    assert len(v.calibration.reference_points) >= 4
    assert [p.name for p in v.providers][-1] == "cpu"


def test_defaults_use_the_shipped_model_on_cpu():
    v = VisionConfig()
    assert v.model_path == DEFAULT_MODEL
    assert v.provider_list() == [("CPUExecutionProvider", {})]


def test_provider_options_are_passed_as_strings():
    v = VisionConfig.model_validate(
        {"providers": [{"name": "tensorrt", "options": {"trt_fp16_enable": True}}, {"name": "cpu"}]}
    )
    assert v.provider_list()[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": "True"})


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "board.yaml"
    p.write_text("node: {id: cell-1, site: s}\n" + text)
    return p


def test_misspelt_key_in_vision_is_located(tmp_path: Path):
    p = _write(tmp_path, "vision:\n  thresholds:\n    confidense: 0.4\n")
    with pytest.raises(ConfigError) as err:
        load_board_config(p)
    text = err.value.render()
    assert "board.yaml:4:5" in text and "confidence" in text


def test_collinear_reference_points_are_refused(tmp_path: Path):
    pts = "\n".join(
        f"      - {{pixel: [{i * 10}, {i * 10}], belt_mm: [{i}, {i}]}}" for i in range(4)
    )
    p = _write(tmp_path, f"vision:\n  calibration:\n    reference_points:\n{pts}\n")
    with pytest.raises(ConfigError, match="one line"):
        load_board_config(p)


def test_unknown_provider_is_refused(tmp_path: Path):
    p = _write(tmp_path, "vision:\n  providers: [{name: openvino}]\n")
    with pytest.raises(ConfigError, match="cpu"):
        load_board_config(p)
