"""What the pipeline would hand on for a tracker's live tracks, for tests that drive the
real tracker with scripted boxes (no detector, no label reader): one frame's result."""

from __future__ import annotations

from vision.detector import StageTimes
from vision.frames import Frame
from vision.pipeline import FrameResult, SeenParcel
from vision.tracker import ParcelReport, Tracker


def frame_result(frame: Frame, tracker: Tracker, finished: list[ParcelReport]) -> FrameResult:
    parcels = [
        SeenParcel(
            t.current, t.id, t.label, None, t.label_certain, t.whole, t.whole_count, t.whole_t,
            tracker.voted_class(t),
        )
        for t in tracker.tracks
        if t.current is not None
    ]  # fmt: skip
    return FrameResult(frame, parcels, finished, StageTimes())
