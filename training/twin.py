"""A network twice as wide, made of two trained ones side by side (issue 16, session 11).

Why: version 1 (2D renders only) and session 9's mixed models (2D + 3D) are each good at
one thing: version 1's detector keeps the 2D boxes and label reads, the mixed one finds 3D
parcels; version 1's classifier keeps the 2D classes, the mixed one the 3D classes. Moving
one's weights toward the other's (``interpolate_onnx.py``) traded one family for the other
almost linearly (session 10). Training a wider network from scratch on both families is
hours of CPU that the shared machine does not have. So the wider network starts as the two
trained ones side by side, channels concatenated, every cross connection zero, and one head
that mixes them; at ``weight_a`` = w its outputs are exactly w * A + (1 - w) * B in logits
(an ensemble). Training it further can then use the cross connections: it is a network of
twice the channels with a known good starting point, not an average of two fixed ones.

Both halves keep their graphs' layout (BatchNorm folded, ``onnx_init.py``), so the twin
exports to the same ONNX inputs, outputs and metadata as either: the runtime needs no change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _load(build: Any, path: Path, example: Any, outputs: Any) -> Any:
    """The network ``build()`` makes, folded, with the weights of the ONNX file ``path``."""
    from training.onnx_init import fold_batchnorm, load_onnx_weights

    net = fold_batchnorm(build())
    load_onnx_weights(net, path, example, outputs)
    return net


def _block_diagonal_dws(a: Any, b: Any) -> Any:
    """One folded depthwise-separable block of a's + b's channels, a and b on its diagonal."""
    import torch
    from torch import nn

    da, pa, db, pb = a[0], a[3], b[0], b[3]
    cin, cout = da.in_channels + db.in_channels, pa.out_channels + pb.out_channels
    out = nn.Sequential(
        nn.Conv2d(cin, cin, 3, da.stride, 1, groups=cin, bias=True),
        nn.Identity(),
        nn.ReLU(True),
        nn.Conv2d(cin, cout, 1, bias=True),
        nn.Identity(),
        nn.ReLU(True),
    )
    with torch.no_grad():
        out[0].weight.copy_(torch.cat([da.weight, db.weight]))
        out[0].bias.copy_(torch.cat([da.bias, db.bias]))
        w = torch.zeros_like(out[3].weight)
        w[: pa.out_channels, : pa.in_channels] = pa.weight
        w[pa.out_channels :, pa.in_channels :] = pb.weight
        out[3].weight.copy_(w)
        out[3].bias.copy_(torch.cat([pa.bias, pb.bias]))
    return out


def _mixed_conv(a: Any, b: Any, weight_a: float) -> Any:
    """A 1x1 convolution on a's + b's channels giving weight_a * a + (1 - weight_a) * b."""
    import torch
    from torch import nn

    out = nn.Conv2d(a.in_channels + b.in_channels, a.out_channels, 1, bias=True)
    with torch.no_grad():
        out.weight.copy_(torch.cat([weight_a * a.weight, (1 - weight_a) * b.weight], 1))
        out.bias.copy_(weight_a * a.bias + (1 - weight_a) * b.bias)
    return out


def twin_classifier(a_path: Path, b_path: Path, weight_a: float = 0.5) -> Any:
    """The classifier of ``train_parcel_classifier.build_model`` twice over (features of
    both concatenated), one linear head: logits = weight_a * A's + (1 - weight_a) * B's."""
    import torch
    from torch import nn

    from training.train_parcel_classifier import build_model
    from vision.crops import CROP_WH

    w, h = CROP_WH
    example = torch.rand(2, 3, h, w)

    def probs(o: Any) -> list[np.ndarray]:
        return [torch.softmax(o, 1).numpy()]

    a = _load(build_model, a_path, example, probs)
    b = _load(build_model, b_path, example, probs)

    class TwinClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = a[:-1], b[:-1]  # up to the dropout: 160 features each
            la, lb = a[-1], b[-1]
            self.head = nn.Linear(la.in_features + lb.in_features, la.out_features)
            with torch.no_grad():
                w = torch.cat([weight_a * la.weight, (1 - weight_a) * lb.weight], 1)
                self.head.weight.copy_(w)
                self.head.bias.copy_(weight_a * la.bias + (1 - weight_a) * lb.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([self.a(x), self.b(x)], 1))

    return TwinClassifier()


def twin_detector(a_path: Path, b_path: Path, weight_a: float = 0.5) -> Any:
    """The detector of ``train_parcel_model.build_model`` twice over up to its stride-4
    features, then heads on both halves' features: each head's first block holds A's and
    B's on its diagonal, its last 1x1 convolution mixes them, so heat logits and geometry
    start as weight_a * A's + (1 - weight_a) * B's."""
    import torch
    from torch import nn

    from training.train_parcel_model import INPUT_HW, _graph_outputs, build_model

    example = torch.rand(1, 3, *INPUT_HW)
    a = _load(build_model, a_path, example, _graph_outputs)
    b = _load(build_model, b_path, example, _graph_outputs)

    def features(net: Any, x: torch.Tensor) -> torch.Tensor:
        c2 = net.stem(x)
        c3 = net.c3(c2)
        c4 = net.c4(c3)
        c5 = net.c5(c4)
        p4 = net.s4(net.l4(c4) + net.up(net.l5(c5)))
        p3 = net.s3(net.l3(c3) + net.up(p4))
        return net.s2(net.l2(c2) + net.up(p3))

    class TwinDetector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = a, b  # their own heads stay unused (not in the graph)
            self.heat = nn.Sequential(
                _block_diagonal_dws(a.heat[0], b.heat[0]),
                _mixed_conv(a.heat[1], b.heat[1], weight_a),
            )
            self.geo = nn.Sequential(
                _block_diagonal_dws(a.geo[0], b.geo[0]),
                _mixed_conv(a.geo[1], b.geo[1], weight_a),
            )
            del self.a.heat, self.a.geo, self.b.heat, self.b.geo

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = torch.cat([features(self.a, x), features(self.b, x)], 1)
            return self.heat(f), self.geo(f)

    return TwinDetector()


def add_arguments(ap: Any, kind: str) -> None:
    """The training scripts' --twin, --twin-weight and --freeze-a (``kind``: what A and B
    are, "classifiers" or "detectors")."""
    ap.add_argument(
        "--twin", type=Path, nargs=2, metavar=("A", "B"),
        help=f"train a network twice as wide: these two {kind} (.onnx) side by side, "
        "starting as their ensemble (training/twin.py); --init TWIN.pt continues a trained one",
    )  # fmt: skip
    ap.add_argument(
        "--twin-weight", type=float, default=0.5, help="A's share of the twin's first outputs"
    )
    ap.add_argument(
        "--freeze-a", action="store_true",
        help="with --twin: keep A's half fixed (its features stay what they were trained to be)",
    )  # fmt: skip


def check_arguments(ap: Any, args: Any) -> None:
    """Refuse what a twin cannot start from: an ONNX file has no twin's weights."""
    if args.twin and args.init and args.init.suffix == ".onnx":
        ap.error("--twin continues from a trained twin's .pt only (--init), not an ONNX file")
    if args.freeze_a and not args.twin:
        ap.error("--freeze-a goes with --twin")


def start(model: Any, args: Any, state: Any) -> None:
    """A new twin ``model``: continue from ``state`` (a trained twin's, or None), A's half
    frozen with --freeze-a."""
    print(f"twin of {args.twin[0]} and {args.twin[1]} ({args.twin_weight})", flush=True)
    if state is not None:
        model.load_state_dict(state)
        print(f"continuing from {args.init}", flush=True)
    if args.freeze_a:
        for p in model.a.parameters():
            p.requires_grad_(False)


def provenance(args: Any) -> dict[str, Any] | None:
    """The training log's record of the twin a run trained (None: not a twin)."""
    if not args.twin:
        return None
    return {"a": str(args.twin[0]), "b": str(args.twin[1]), "weight_a": args.twin_weight,
            "a_frozen": args.freeze_a}  # fmt: skip


def main() -> int:
    """Write the twin of two ONNX files (no training): ``--kind classifier|detector``."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kind", choices=["classifier", "detector"], required=True)
    ap.add_argument("--a", type=Path, required=True, help="first ONNX file")
    ap.add_argument("--b", type=Path, required=True, help="second ONNX file")
    ap.add_argument("--weight-a", type=float, default=0.5, help="A's share of the outputs")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.kind == "classifier":
        from training.train_parcel_classifier import export

        export(twin_classifier(args.a, args.b, args.weight_a), args.out)
    else:
        from training.train_parcel_model import export

        export(twin_detector(args.a, args.b, args.weight_a), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
