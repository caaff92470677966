"""The capture request file the CLI writes and the node reads: it round-trips, and anything
else in its place is refused with the file's name, never a crash in the camera thread."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.node.vision_capture import CaptureRequest, CaptureRequestError
from vision.dataset.capture import CaptureSettings, StoreLimits

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=14), inner,
                                                                max_size=5),
    max_leaves=12,
)  # fmt: skip
odd = st.sampled_from([float("inf"), float("-inf"), float("nan")])
fields = st.fixed_dictionaries(
    {"out": st.text(min_size=1, max_size=10)},
    optional={k: json_values | st.integers(-5, 10**9) | st.floats(-1, 2) | odd
              for k in ("max_bytes", "max_images", "jpeg_quality", "low_confidence",
                        "sample_share", "no_read_frames", "min_gap_frames", "until")},
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(fields | json_values)
def test_any_request_is_read_or_refused_with_where(raw):
    try:
        req = CaptureRequest.from_json(raw, "DIR/vision-capture.json")
    except CaptureRequestError as exc:
        assert str(exc).startswith("DIR/vision-capture.json: ")
    else:
        assert req.limits.max_bytes >= 1 and 0 <= req.settings.sample_share <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 10**10), st.integers(1, 10**5), st.integers(1, 100), st.floats(0, 1),
    st.floats(0, 1), st.integers(1, 20), st.integers(0, 20), st.none() | st.floats(0, 2e9),
)  # fmt: skip
def test_round_trip(max_bytes, max_images, quality, low, share, no_read, gap, until):
    req = CaptureRequest(Path("/data/cap"), StoreLimits(max_bytes, max_images, quality),
                         CaptureSettings(low, share, no_read, gap), until)  # fmt: skip
    again = CaptureRequest.from_json(json.loads(json.dumps(req.to_json())), "f")
    assert again == req


def test_tracks_whose_reads_disagree_are_found_in_the_real_tracker():
    from types import SimpleNamespace

    import numpy as np

    from edge.node.vision_capture import conflicted_tracks
    from vision.detections import Detection
    from vision.labels import LabelRead
    from vision.tracker import Track, Tracker

    tracker = Tracker({0: "box"})
    det = Detection(0, "box", 0.9, (0.0, 0.0, 10.0, 10.0))
    sure, torn = (Track(i, np.zeros(4), det, 0.0, 0.0, None) for i in (1, 2))
    sure.add_read(LabelRead("Code128", "A1", "region"), 0)
    sure.add_read(LabelRead("Code128", "A1", "region"), 1)
    torn.add_read(LabelRead("Code128", "A1", "region"), 0)
    torn.add_read(LabelRead("Code128", "A7", "region"), 1)
    tracker.tracks = [sure, torn]
    assert conflicted_tracks(SimpleNamespace(tracker=tracker)) == {2}
