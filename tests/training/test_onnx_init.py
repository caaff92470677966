"""Fine-tuning starts from the shipped models: their ONNX weights, loaded into the training
network with its BatchNorms folded, give onnxruntime's outputs, and a network the file does
not fit is refused. Needs torch (the 'train' extra): skipped where it is not installed, as on
a board or a CI run without that extra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch is the 'train' extra: pip install -e '.[train]'")

from training import train_parcel_classifier as tc  # noqa: E402
from training import train_parcel_model as tm  # noqa: E402
from training.onnx_init import (  # noqa: E402
    fold_batchnorm,
    is_folded_state,
    load_onnx_weights,
)

REPO = Path(__file__).resolve().parents[2]
# version 1's detector and classifier: the networks build_model makes (the shipped ones are
# twins of two such networks, training/twin.py: the classifier since version 3, the detector
# since version 4; rebuilt by twin_classifier and twin_detector)
DETECTOR = REPO / "vision/models/baseline-2d/parcels.onnx"
CLASSIFIER = REPO / "vision/models/baseline-2d/parcels-classifier.onnx"


def _softmax(out: torch.Tensor) -> list[np.ndarray]:
    return [torch.softmax(out, 1).numpy()]


def test_version_1s_detector_loads_and_gives_onnxruntimes_outputs():
    torch.manual_seed(0)
    net = fold_batchnorm(tm.build_model())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    # raises if any output differs from onnxruntime's by more than 1e-3
    load_onnx_weights(net, DETECTOR, torch.rand(1, 3, *tm.INPUT_HW), tm._graph_outputs)


def test_a_loaded_classifier_exports_to_the_same_network(tmp_path: Path):
    torch.manual_seed(1)
    w, h = tc.CROP_WH
    net = load_onnx_weights(
        fold_batchnorm(tc.build_model()), CLASSIFIER, torch.rand(2, 3, h, w), _softmax
    )
    out = tmp_path / "again.onnx"
    tc.export(net, out)
    x = np.random.default_rng(2).random((5, 3, h, w), dtype=np.float32)
    a = ort.InferenceSession(str(CLASSIFIER), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    pa = a.run(None, {a.get_inputs()[0].name: x})[0]
    pb = b.run(None, {b.get_inputs()[0].name: x})[0]
    assert np.abs(pa - pb).max() < 1e-5
    assert (pa.argmax(1) == pb.argmax(1)).all()


def test_a_file_of_another_network_is_refused():
    w, h = tc.CROP_WH
    with pytest.raises(ValueError, match="not the network"):
        load_onnx_weights(
            fold_batchnorm(tm.build_model()), CLASSIFIER, torch.rand(1, 3, *tm.INPUT_HW),
            tm._graph_outputs,
        )  # fmt: skip
    with pytest.raises(ValueError, match="not the network"):
        load_onnx_weights(
            fold_batchnorm(tc.build_model()), DETECTOR, torch.rand(1, 3, h, w), _softmax
        )


def test_a_network_wired_otherwise_is_caught_by_the_output_check(tmp_path: Path):
    """Same layers, same shapes, same order, other wiring: only the comparison with
    onnxruntime can tell, and it does (the folded network is never silently different)."""
    from torch import nn

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x)))

    class Sum(Chain):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    torch.manual_seed(3)
    path = tmp_path / "chain.onnx"
    torch.onnx.export(Chain().eval(), (torch.rand(1, 3, 8, 8),), str(path), dynamo=False)
    x = torch.rand(1, 3, 8, 8)
    load_onnx_weights(Chain(), path, x, lambda o: [o.numpy()])
    with pytest.raises(ValueError, match="differs from onnxruntime"):
        load_onnx_weights(Sum(), path, x, lambda o: [o.numpy()])


@pytest.mark.parametrize("module", [tm, tc])
def test_weights_kept_by_a_run_from_onnx_are_known_as_folded(module, tmp_path: Path):
    # a run started from an ONNX file keeps a folded state dict in /tmp; --init of that .pt
    # must rebuild the folded network (the unfolded one refuses its keys)
    folded = fold_batchnorm(module.build_model())
    plain = module.build_model()
    assert is_folded_state(folded.state_dict())
    assert not is_folded_state(plain.state_dict())
    torch.save(folded.state_dict(), tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", map_location="cpu")
    fold_batchnorm(module.build_model()).load_state_dict(state)  # strict: every key fits
    with pytest.raises(RuntimeError):
        module.build_model().load_state_dict(state)
