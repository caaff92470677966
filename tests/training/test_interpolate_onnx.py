"""Weight-space interpolation of two ONNX files (training/interpolate_onnx.py): alpha 0 and 1
give the two models back exactly, any alpha gives each weight on the segment between them,
the result runs in onnxruntime and says how it was made, and files of two different
networks are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from training.interpolate_onnx import METADATA_KEY, interpolate, interpolate_files


def _net(seed: int, names: str = "w", channels: int = 3) -> onnx.ModelProto:
    """A conv + relu + gemm network with seeded weights; ``names`` prefixes the initializer
    names (two exports of one network may name them differently)."""
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(size=(channels, 2, 3, 3)).astype(np.float32)
    conv_b = rng.normal(size=(channels,)).astype(np.float32)
    gemm_w = rng.normal(size=(4, channels * 4 * 4)).astype(np.float32)
    shape = np.array([1, channels * 4 * 4], dtype=np.int64)
    nodes = [
        helper.make_node("Conv", ["x", f"{names}0", f"{names}1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", f"{names}_shape"], ["f"]),
        helper.make_node("Gemm", ["f", f"{names}2"], ["y"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(conv_w, f"{names}0"),
        numpy_helper.from_array(conv_b, f"{names}1"),
        numpy_helper.from_array(gemm_w, f"{names}2"),
        numpy_helper.from_array(shape, f"{names}_shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="wolfpack_format", value="test-v1")
    return model


def _weights(m: onnx.ModelProto) -> list[np.ndarray]:
    return [numpy_helper.to_array(t) for t in m.graph.initializer]


def _run(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_the_ends_give_the_two_models_back():
    a, b = _net(0), _net(1, names="other")
    x = np.random.default_rng(2).random((1, 2, 4, 4), dtype=np.float32)
    assert np.array_equal(_run(interpolate(a, b, 0.0), x), _run(a, x))
    assert np.allclose(_run(interpolate(a, b, 1.0), x), _run(b, x), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed_a=st.integers(0, 1000), seed_b=st.integers(0, 1000))
def test_every_weight_lies_on_the_segment_between_the_two(alpha, seed_a, seed_b):
    a, b = _net(seed_a), _net(seed_b, names="b")
    m = interpolate(a, b, alpha)
    for wa, wb, w in zip(_weights(a), _weights(b), _weights(m), strict=True):
        if w.dtype == np.int64:  # the reshape target: equal in both, kept
            assert np.array_equal(w, wa)
            continue
        assert np.allclose(w, (1 - alpha) * wa + alpha * wb, atol=1e-5)
        lo, hi = np.minimum(wa, wb), np.maximum(wa, wb)
        assert (w >= lo - 1e-5).all() and (w <= hi + 1e-5).all()


def test_the_file_keeps_the_first_models_metadata_and_names_its_sources(tmp_path: Path):
    pa, pb, out = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "mid.onnx"
    onnx.save(_net(0), str(pa))
    onnx.save(_net(1), str(pb))
    interpolate_files(pa, pb, 0.4, out)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["wolfpack_format"] == "test-v1"
    info = json.loads(meta[METADATA_KEY])
    assert (info["start"], info["end"], info["alpha"]) == ("a.onnx", "b.onnx", 0.4)
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    assert _run(onnx.load(str(out)), x).shape == (1, 4)


def test_two_different_networks_are_refused():
    with pytest.raises(ValueError, match="vs"):
        interpolate(_net(0, channels=3), _net(1, channels=5), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate(_net(0), _net(1), 1.5)
