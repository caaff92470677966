"""The twin (training/twin.py) starts as the ensemble of its two halves: exported, its
outputs are weight * A's + (1 - weight) * B's in logits, with the runtime's ONNX inputs,
outputs and metadata. Needs torch (the 'train' extra): skipped where it is not installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch is the 'train' extra: pip install -e '.[train]'")

from training import train_parcel_classifier as tc  # noqa: E402
from training import train_parcel_model as tm  # noqa: E402
from training.twin import twin_classifier, twin_detector  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "vision/models/baseline-2d"


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


def _untrained(net: torch.nn.Module) -> torch.nn.Module:
    """An untrained network with BatchNorm statistics of its own (not the defaults, which
    fold to all-zero biases), as a second, different trained file would have."""
    g = torch.Generator().manual_seed(7)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return net


def _logits(p: np.ndarray) -> np.ndarray:
    """Softmax outputs back to logits, up to a constant per row."""
    lg = np.log(np.clip(p, 1e-12, None))
    return lg - lg.mean(1, keepdims=True)


@pytest.fixture(scope="module")
def other_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second classifier of the same network: untrained, its BatchNorms folded."""
    out = tmp_path_factory.mktemp("twin") / "other-classifier.onnx"
    torch.manual_seed(6)
    tc.export(_untrained(tc.build_model()), out)
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_the_twin_classifier_starts_as_the_ensemble_of_its_halves(
    tmp_path: Path, other_classifier: Path, weight: float
):
    a = V1 / "parcels-classifier.onnx"
    out = tmp_path / "twin.onnx"
    tc.export(twin_classifier(a, other_classifier, weight), out)
    w, h = tc.CROP_WH
    x = np.random.default_rng(3).random((6, 3, h, w), dtype=np.float32)
    pa, pb, pt = (_run(p, x)[0] for p in (a, other_classifier, out))
    assert np.abs(pa - pb).max() > 0.05  # the halves differ, so the mix is tested
    want = weight * _logits(pa) + (1 - weight) * _logits(pb)
    assert np.abs(_logits(pt) - want).max() < 2e-3
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["wolfpack_format"] == "parcel-classifier-v1"
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["crops"]


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_the_twin_detector_at_weight_zero_or_one_is_that_half(tmp_path: Path, weight: float):
    a = V1 / "parcels.onnx"
    b = tmp_path / "untrained.onnx"
    torch.manual_seed(5)
    tm.export(_untrained(tm.build_model()), b)  # another detector: untrained, its BatchNorms folded
    out = tmp_path / "twin.onnx"
    tm.export(twin_detector(a, b, weight), out)
    x = np.random.default_rng(4).random((1, 3, *tm.INPUT_HW), dtype=np.float32)
    want_a, want_b, got = _run(a, x), _run(b, x), _run(out, x)
    assert np.abs(want_a[1] - want_b[1]).max() > 0.05  # the halves differ
    for g, w in zip(got, want_a if weight == 1.0 else want_b, strict=True):
        assert g.shape == w.shape
        assert np.abs(g - w).max() < 1e-3
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["wolfpack_format"] == "centernet-obb-v1"
    assert meta["wolfpack_classifier"] == "parcels-classifier.onnx"
    names = [o.name for o in onnx.load(str(out)).graph.output]
    assert names == ["peaks", "geometry"]
