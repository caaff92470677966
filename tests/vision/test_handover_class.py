"""A parcel handed over while its track is live carries its track's class by the votes of
every frame so far, not the one frame it is handed over in (``Tracker.voted_class``,
``SeenParcel.class_name``). The arm takes a polybag as 60 mm tall: a box that one frame
called a polybag found no seal."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.detections import Detection, OrientedBox
from vision.detector import StageTimes
from vision.frames import Frame
from vision.handover import Handover
from vision.labels import LabelRead
from vision.pipeline import Pipeline
from vision.tracker import Tracker

W, H = 1024, 768
PX_PER_COUNT = 1.28
NAMES = {0: "box", 1: "polybag", 2: "envelope", 3: "irregular"}
BLANK = np.zeros((H, W, 3), np.uint8)


class ScriptedDetector:
    """Stands in for the ONNX detector in this wiring test: the boxes of a script, frame by
    frame (the real detector's classes are tested with the shipped model)."""

    names = NAMES

    def __init__(self, script: list[list[Detection]]) -> None:
        self.script = script
        self.i = 0

    def detect(self, image: np.ndarray, times: StageTimes) -> list[Detection]:
        dets = self.script[self.i]
        self.i += 1
        return dets


def _det(x: float, cid: int, conf: float) -> Detection:
    length, width, cy = 300.0, 200.0, H / 2
    ob = OrientedBox(x + length / 2, cy, length, width, 0.0)
    return Detection(cid, NAMES[cid], conf, (x, cy - width / 2, x + length, cy + width / 2), ob)


def _hand_over(classes: list[tuple[int, float]], check=None) -> list:
    """One parcel through the view, a detection of (class id, confidence) a frame; its QR
    label read (certain at once) in the last frame, so it is handed over live there.
    ``check(result)``: a look at the last frame's result."""
    step = 40.0  # px a frame: the parcel wholly in view (inset 25.6 px) in every frame
    script = [[_det(100 + i * step, cid, conf)] for i, (cid, conf) in enumerate(classes)]
    tracker = Tracker(NAMES, px_per_count=PX_PER_COUNT, min_hits=1)
    pipe = Pipeline(ScriptedDetector(script), tracker=tracker, label_reads_per_frame=0)  # type: ignore[arg-type]
    handover = Handover("test")
    handed = []
    for i in range(len(script)):
        last = i == len(script) - 1
        if last:
            t = tracker.tracks[0]
            t.add_read(LabelRead("QRCode", "WP1", "region", t.current.centre), 0)
        frame = Frame(BLANK, i * 0.1, i, round(i * step / PX_PER_COUNT))
        result = pipe.process(frame, label_reads=0)
        if last and check is not None:
            check(result)
        handed += handover.select(result)
    return handed


@settings(max_examples=60, deadline=None)
@given(
    classes=st.lists(st.tuples(st.integers(0, 3), st.floats(0.3, 1.0)), min_size=2, max_size=6),
)
def test_the_live_handover_gives_the_tracks_voted_class(classes) -> None:
    handed = _hand_over(classes)
    votes: dict[int, float] = {}
    for cid, conf in classes:
        votes[cid] = votes.get(cid, 0.0) + conf
    assert [h.label for h in handed] == ["WP1"]
    assert handed[0].class_name == NAMES[max(votes, key=lambda k: votes[k])]


def test_one_frame_calling_a_box_a_polybag_does_not_make_it_one() -> None:
    def polybag_frame(result) -> None:  # handed over in the one frame that says polybag
        assert result.parcels[0].detection.class_name == "polybag"

    handed = _hand_over([(0, 0.9), (0, 0.85), (0, 0.9), (1, 0.6)], polybag_frame)
    assert [(h.label, h.class_name) for h in handed] == [("WP1", "box")]
