"""A detector's own confidence threshold rides in its ONNX metadata (``wolfpack_confidence``,
written by training/set_confidence.py): the runtime uses it when the config sets none, a
config's value wins, and a threshold that is not a score is refused with the file's name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from training.set_confidence import set_confidence
from vision.config import DEFAULT_MODEL, VisionConfig
from vision.detector import (
    CONFIDENCE_KEY,
    DEFAULT_CONFIDENCE,
    Detector,
    DetectorSettings,
    ModelError,
)
from vision.finetune.head import set_metadata
from vision.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]


def _copy(tmp_path: Path, value: str | None) -> Path:
    """The shipped detector and classifier, the detector's threshold set to ``value`` (None:
    no threshold in its metadata)."""
    for name in ("parcels.onnx", "parcels-classifier.onnx"):
        shutil.copy(DEFAULT_MODEL.parent / name, tmp_path / name)
    path = tmp_path / "parcels.onnx"
    model = onnx.load(str(path))
    if value is None:
        for i in reversed(range(len(model.metadata_props))):
            if model.metadata_props[i].key == CONFIDENCE_KEY:
                del model.metadata_props[i]
    else:
        set_metadata(model, {CONFIDENCE_KEY: value})  # as is: unchecked, unlike set_confidence
    onnx.save(model, str(path))
    return path


def test_the_models_own_threshold_is_the_default_and_a_setting_wins(tmp_path: Path) -> None:
    path = _copy(tmp_path, None)
    plain = Detector(path, warmup_runs=0, classifier=None)
    assert plain.model_confidence == DEFAULT_CONFIDENCE == plain.settings.confidence
    set_confidence(path, 0.17)
    own = Detector(path, warmup_runs=0, classifier=None)
    assert (
        own.model_confidence == pytest.approx(0.17)
        and own.settings.confidence == own.model_confidence
    )
    given = Detector(
        path, settings=DetectorSettings(confidence=0.4), warmup_runs=0, classifier=None
    )
    assert given.settings.confidence == 0.4 and given.model_confidence == pytest.approx(0.17)
    # set_confidence keeps every other metadata entry (the classifier's name, the format)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["wolfpack_classifier"] == "parcels-classifier.onnx" and "wolfpack_format" in meta


def test_a_config_without_a_threshold_runs_at_the_models_own(tmp_path: Path) -> None:
    path = _copy(tmp_path, "0.23")
    assert Pipeline.from_config(VisionConfig(model=path)).detector.settings.confidence == 0.23
    cfg = VisionConfig.model_validate({"model": str(path), "thresholds": {"confidence": 0.35}})
    assert Pipeline.from_config(cfg).detector.settings.confidence == 0.35


@pytest.mark.parametrize("bad", ["high", "1.5", "0", "nan"])
def test_a_threshold_that_is_not_a_score_is_refused_naming_the_file(
    tmp_path: Path, bad: str
) -> None:
    path = _copy(tmp_path, bad)
    with pytest.raises(ModelError, match=rf"parcels\.onnx: metadata {CONFIDENCE_KEY}="):
        Detector(path, warmup_runs=0, classifier=None)
    # a config's own threshold still runs it: a bad one in the metadata then only warns
    ok = Detector(path, settings=DetectorSettings(confidence=0.3), warmup_runs=0, classifier=None)
    assert ok.settings.confidence == 0.3


def test_the_shipped_detector_carries_its_threshold() -> None:
    meta = {p.key: p.value for p in onnx.load(str(DEFAULT_MODEL)).metadata_props}
    assert 0 < float(meta[CONFIDENCE_KEY]) < 1


def test_set_confidence_refuses_a_value_that_is_not_a_score(tmp_path: Path) -> None:
    path = _copy(tmp_path, None)
    script = REPO / "training" / "set_confidence.py"
    bad = subprocess.run([sys.executable, str(script), str(path), "1.5"],
                         capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr
    ok = subprocess.run([sys.executable, str(script), str(path), "0.25"],
                        capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    show = subprocess.run([sys.executable, str(script), str(path), "--show"],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert f"{CONFIDENCE_KEY} = 0.25" in show.stdout
