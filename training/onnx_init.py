"""Start training from a shipped ONNX model instead of from scratch.

Why: the shipped detector and classifier took ~2.5 h of CPU to train on the 2D renders; a
fine-tuning run on 2D + 3D renders that starts from them keeps what they know and needs
minutes, not hours, to learn the new images. The state dicts they were exported from are
gone (they lived in /tmp), but the ONNX files hold every weight: the exporter folded each
BatchNorm into the convolution before it (weight scaled, a bias added). So the network is
rebuilt with the same folding (each Conv2d + BatchNorm2d pair becomes a Conv2d with a bias
and an Identity) and the ONNX weights are copied in, convolution by convolution in the
order the graph runs them, which is the order the traced forward pass ran them.
``load_onnx_weights`` checks every shape and then the outputs against onnxruntime, so a
mismatch is an error, never a silently different network.

The rebuilt network has no BatchNorm left: it trains as a plain CNN (fine for fine-tuning at
a small learning rate) and exports to the same ONNX graph as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def fold_batchnorm(model: Any) -> Any:
    """Replace, in every ``nn.Sequential`` of ``model``, each Conv2d directly followed by a
    BatchNorm2d with a Conv2d that has a bias, and the BatchNorm2d with an Identity (the
    layout of an exported, folded graph). Returns ``model``, changed in place."""
    from torch import nn

    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.children())
        for i in range(len(children) - 1):
            conv, bn = children[i], children[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                folded = nn.Conv2d(
                    conv.in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    conv.stride,
                    conv.padding,
                    groups=conv.groups,
                    bias=True,
                )
                module[i] = folded
                module[i + 1] = nn.Identity()
    return model


def is_folded_state(state: dict[str, Any]) -> bool:
    """Whether a state dict was saved from a folded network (no BatchNorm statistics): a
    run that started from an ONNX file keeps its weights so, and ``--init`` of that .pt must
    rebuild the folded network to load them (an unfolded one refuses every key)."""
    return not any(k.endswith("running_mean") for k in state)


def _layers_in_run_order(model: Any, example: Any) -> list[Any]:
    """The Conv2d and Linear modules of ``model`` in the order a forward pass runs them."""
    import torch
    from torch import nn

    order: list[Any] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return order


def load_onnx_weights(
    model: Any,
    onnx_path: Path,
    example: Any,
    outputs: Callable[[Any], list[np.ndarray]],
    atol: float = 1e-3,
) -> Any:
    """Copy the weights of ``onnx_path`` into ``model`` (already folded with
    ``fold_batchnorm``); ``example`` is one input tensor, ``outputs(model_out)`` turns the
    torch model's output into the arrays the ONNX graph gives for the same input, which are
    compared (``atol``). Raises ValueError saying which layer or output differs."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    layers = _layers_in_run_order(model, example)
    if len(nodes) != len(layers):
        raise ValueError(
            f"{onnx_path}: {len(nodes)} Conv/Gemm nodes, but the network runs {len(layers)} "
            "Conv2d/Linear layers: not the network this script builds"
        )
    with torch.no_grad():
        for k, (node, layer) in enumerate(zip(nodes, layers, strict=True)):
            w = weights.get(node.input[1])
            b = weights.get(node.input[2]) if len(node.input) > 2 else None
            if w is None or tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(
                    f"{onnx_path}: layer {k} ({node.name}): weight "
                    f"{None if w is None else w.shape} vs {tuple(layer.weight.shape)}"
                )
            layer.weight.copy_(torch.from_numpy(w.copy()))
            if layer.bias is not None:
                if b is None or tuple(b.shape) != tuple(layer.bias.shape):
                    raise ValueError(f"{onnx_path}: layer {k} ({node.name}): bias missing")
                layer.bias.copy_(torch.from_numpy(b.copy()))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    model.eval()
    with torch.no_grad():
        got = outputs(model(example))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        diff = np.abs(np.asarray(g) - w)
        # a detector's peaks (zero but at a 3x3 maximum) flip where two heat values tie to
        # float error, which torch and onnxruntime round apart with other thread counts: a
        # few such flips are the same weights; any other difference is not
        flips = (diff > atol) & ((np.asarray(g) == 0) != (w == 0))
        err = float(np.where(flips, 0.0, diff).max())
        if err > atol or flips.mean() > 0.01:
            raise ValueError(
                f"{onnx_path}: output {i} differs from onnxruntime's by {err:.2e} "
                f"({int(flips.sum())} peaks of {flips.size} flipped)"
            )
    return model
