"""Weight-space interpolation of two ONNX files of one network (WiSE-FT).

Why: the mixed (2D + 3D) models were fine-tuned from version 1, so both lie on one
fine-tuning path in weight space. Fine-tuning on the new family made the 3D figures better
and the 2D ones worse, and three runs with more CPU did not close the 2D gap. Averaging
the weights of the start and the fine-tuned end, ``(1 - alpha) * start + alpha * end``
("robust fine-tuning of zero-shot models", Wortsman et al. 2022), often keeps most of the
gain on the new data and most of what the start knew, for no training at all: on a machine
where a CPU-minute is scarce, it is the cheapest candidate to measure first.

Weights are matched by position, not by name (two exports of one network may name their
initializers differently): the node lists must have the same operators in the same order,
and each initializer a node reads must have the same shape in both files. Float
initializers are interpolated; any other (integer shapes, axes) must be equal. The output
keeps the first file's graph and metadata and adds ``wolfpack_interpolation`` (both sources
and alpha), so a shipped file says how it was made.

    .venv/bin/python training/interpolate_onnx.py --start A.onnx --end B.onnx --alpha 0.5 \
        --out OUT.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

METADATA_KEY = "wolfpack_interpolation"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _paired_initializers(a: Any, b: Any) -> list[tuple[str, str]]:
    """(name in a, name in b) for every initializer a node reads, in node order; raises
    ValueError naming the first node where the two graphs differ."""
    if len(a.graph.node) != len(b.graph.node):
        raise ValueError(f"{len(a.graph.node)} nodes vs {len(b.graph.node)}: not one network")
    inits_a = {t.name: t for t in a.graph.initializer}
    inits_b = {t.name: t for t in b.graph.initializer}
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for k, (na, nb) in enumerate(zip(a.graph.node, b.graph.node, strict=True)):
        if na.op_type != nb.op_type or len(na.input) != len(nb.input):
            raise ValueError(f"node {k}: {na.op_type} vs {nb.op_type}: not one network")
        for ia, ib in zip(na.input, nb.input, strict=True):
            if (ia in inits_a) != (ib in inits_b):
                raise ValueError(f"node {k} ({na.op_type}): a weight in one file only")
            if ia in inits_a and ia not in seen:
                ta, tb = inits_a[ia], inits_b[ib]
                if list(ta.dims) != list(tb.dims) or ta.data_type != tb.data_type:
                    raise ValueError(
                        f"node {k} ({na.op_type}): {ia} {list(ta.dims)} vs {ib} {list(tb.dims)}"
                    )
                pairs.append((ia, ib))
                seen.add(ia)
    return pairs


def interpolate(start: Any, end: Any, alpha: float) -> Any:
    """A copy of the ONNX model ``start`` whose float weights are
    ``(1 - alpha) * start + alpha * end``; ``alpha`` in [0, 1] (0: start, 1: end)."""
    from onnx import numpy_helper

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} outside [0, 1]")
    out = type(start)()
    out.CopyFrom(start)
    inits_end = {t.name: t for t in end.graph.initializer}
    index = {t.name: i for i, t in enumerate(out.graph.initializer)}
    for name_a, name_b in _paired_initializers(start, end):
        wa = numpy_helper.to_array(out.graph.initializer[index[name_a]])
        wb = numpy_helper.to_array(inits_end[name_b])
        if np.issubdtype(wa.dtype, np.floating):
            w = ((1.0 - alpha) * wa.astype(np.float64) + alpha * wb.astype(np.float64)).astype(
                wa.dtype
            )
        elif np.array_equal(wa, wb):
            w = wa
        else:
            raise ValueError(f"{name_a}: non-float weights differ; cannot interpolate them")
        out.graph.initializer[index[name_a]].CopyFrom(numpy_helper.from_array(w, name_a))
    return out


def interpolate_files(start: Path, end: Path, alpha: float, out: Path) -> dict[str, Any]:
    """``interpolate`` on two files, written to ``out`` with the sources in its metadata;
    returns that metadata."""
    import onnx

    model = interpolate(onnx.load(str(start)), onnx.load(str(end)), alpha)
    info = {
        "start": start.name,
        "start_sha256": _sha(start),
        "end": end.name,
        "end_sha256": _sha(end),
        "alpha": alpha,
    }
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for p in kept:
        model.metadata_props.add(key=p.key, value=p.value)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(info))
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", type=Path, required=True, help="the model fine-tuning began from")
    ap.add_argument("--end", type=Path, required=True, help="the fine-tuned model")
    ap.add_argument("--alpha", type=float, required=True, help="0: start, 1: end")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    info = interpolate_files(args.start, args.end, args.alpha, args.out)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
