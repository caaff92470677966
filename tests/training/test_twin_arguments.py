"""The training scripts' twin options (training/twin.py): what a twin can start from, checked
before anything is rendered or trained. No torch needed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from training import twin


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="train")
    ap.add_argument("--init", type=Path)
    twin.add_arguments(ap, "detectors")
    return ap


def _check(argv: list[str]) -> argparse.Namespace:
    ap = _parser()
    args = ap.parse_args(argv)
    twin.check_arguments(ap, args)
    return args


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--twin", "a.onnx", "b.onnx", "--init", "c.onnx"], "not an ONNX file"),
        (["--freeze-a"], "--freeze-a goes with --twin"),
        (["--twin", "a.onnx"], "expected 2 arguments"),
    ],
)
def test_a_twin_that_cannot_start_is_refused_with_the_reason(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        _check(argv)
    assert exc.value.code == 2
    assert why in capsys.readouterr().err


def test_a_twin_with_a_trained_twins_weights_is_accepted() -> None:
    args = _check(["--twin", "a.onnx", "b.onnx", "--init", "t.pt", "--freeze-a"])
    assert args.twin == [Path("a.onnx"), Path("b.onnx")] and args.init == Path("t.pt")
    assert args.freeze_a and args.twin_weight == 0.5


def test_the_training_log_records_the_twin_or_none() -> None:
    assert twin.provenance(_check([])) is None
    rec = twin.provenance(_check(["--twin", "a.onnx", "b.onnx", "--twin-weight", "0.3"]))
    assert rec == {"a": "a.onnx", "b": "b.onnx", "weight_a": 0.3, "a_frozen": False}
