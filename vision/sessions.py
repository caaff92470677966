"""onnxruntime sessions made the project's way, for the detector and its classifier alike."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def session_options(threads: int, spin: bool) -> ort.SessionOptions:
    """``spin``: onnxruntime's pool threads busy-wait after a run for the next one (lower
    latency, but a core burnt between frames that the rest of the node could use)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return opts


def open_session(
    path: Path,
    opts: ort.SessionOptions,
    providers: list[tuple[str, dict[str, str]]],
    error: type[Exception],
) -> ort.InferenceSession:
    """The session for ``path``, or ``error`` naming the file and onnxruntime's reason."""
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=opts,
            providers=[p for p, _ in providers],
            provider_options=[o for _, o in providers],
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise error(f"{path}: onnxruntime cannot load it: {exc}") from exc
