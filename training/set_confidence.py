"""Writes a detector's own confidence threshold into its ONNX metadata (``wolfpack_confidence``).

A score threshold belongs to the model that made the scores: a retrained detector scores its
boxes otherwise, and a board's config should not have to know by how much. The runtime uses
the model's value when the config sets no ``vision.thresholds.confidence`` (else 0.3), and
``wolfpack vision evaluate`` and ``training/evaluate_parcel_model.py`` measure at it. Choose
it on a validation set, never on the test sets:

    .venv/bin/python training/set_confidence.py vision/models/parcels.onnx 0.2
    .venv/bin/python training/set_confidence.py vision/models/parcels.onnx --show

The file is rewritten in place (through a temporary file beside it); weights and every other
metadata entry are kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vision.detector import CONFIDENCE_KEY as KEY
from vision.finetune.head import set_metadata


def set_confidence(path: Path, value: float) -> None:
    """Rewrite ``path`` with ``KEY`` = ``value`` (0 < value < 1)."""
    if not 0 < value < 1:
        raise ValueError(f"{value} is not a score threshold between 0 and 1")
    model = onnx.load(str(path))
    set_metadata(model, {KEY: f"{value:g}"})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path, help="the detector's ONNX file")
    ap.add_argument("value", type=float, nargs="?", help="the threshold, between 0 and 1")
    ap.add_argument("--show", action="store_true", help="print the model's threshold and stop")
    args = ap.parse_args()
    if not args.model.is_file():
        ap.error(f"{args.model}: no such file")
    if args.show or args.value is None:
        meta = {p.key: p.value for p in onnx.load(str(args.model)).metadata_props}
        print(f"{args.model}: {KEY} = {meta.get(KEY, 'not set (the runtime uses 0.3)')}")
        return 0
    try:
        set_confidence(args.model, args.value)
    except ValueError as exc:
        ap.error(str(exc))
    print(f"{args.model}: {KEY} = {args.value:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
