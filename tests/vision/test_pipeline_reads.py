"""What the pipeline's label reads cost: the reader's cheap helpers give the values they
replace, stage 0 alone reads the labels the belt camera draws, and a parcel cut by the
frame's edge is read with stage 0 only (its label may not be in view yet), and a parcel
wholly in view whose first read failed is read once on a region grown around its box (a
label across its box's side), whose symbol counts only on its own box and near no other."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.vision.test_labels import TEXTS, _detection, parcel_with_label
from vision.detections import Detection
from vision.frames import Frame
from vision.labels import LabelRead, LabelReader, dominant_angle, grey_percentiles
from vision.pipeline import WHOLE_VIEWS, Pipeline
from vision.tracker import Tracker, holds


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))),
    st.lists(st.floats(0.0, 100.0), min_size=1, max_size=3),
)
def test_grey_percentiles_are_numpys(image: np.ndarray, qs: list[float]) -> None:
    """The histogram's percentiles are np.percentile's (linear interpolation), exactly."""
    assert np.allclose(grey_percentiles(image, tuple(qs)), np.percentile(image, qs), atol=1e-9)


def _angle_by_trigonometry(gray: np.ndarray) -> float:
    """dominant_angle as it was written before (arctan2, sin and cos per pixel)."""
    small = gray if max(gray.shape) <= 256 else cv2.resize(gray, None, fx=0.5, fy=0.5)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3).astype(np.float64)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3).astype(np.float64)
    mag, theta = gx * gx + gy * gy, np.arctan2(gy, gx)
    s, c = float((mag * np.sin(4 * theta)).sum()), float((mag * np.cos(4 * theta)).sum())
    return math.degrees(math.atan2(s, c)) / 4


@settings(max_examples=60, deadline=None)
@given(st.floats(-44.0, 44.0), st.integers(2, 12), st.integers(0, 2**16))
def test_dominant_angle_is_the_trigonometric_one(angle: float, gap: int, seed: int) -> None:
    """Bars turned by ``angle`` under noise: the same angle as the per-pixel trigonometry
    gave (to a hundredth of a degree), without it."""
    rng = np.random.default_rng(seed)
    img = np.full((160, 200), 220, np.uint8)
    for x in range(20, 180, gap + 2):
        cv2.line(img, (x, 20), (x, 140), 30, 2)
    m = cv2.getRotationMatrix2D((100, 80), angle, 1.0)
    img = cv2.warpAffine(img, m, (200, 160), borderValue=220)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    want = _angle_by_trigonometry(img)
    got = dominant_angle(img)
    assert abs((got - want + 45) % 90 - 45) < 0.01


@pytest.mark.parametrize("fmt", sorted(TEXTS))
@pytest.mark.parametrize("module", [2, 3])
@pytest.mark.parametrize("angle", [0, 11, 24, 38, 97, 203])
def test_stage_0_alone_reads_the_labels_the_belt_camera_draws(fmt: str, module: int, angle: int):
    """The belt camera draws labels at 2-3 px a module; stage 0 (turned upright by its
    edges, 1.5 times the size) reads them alone, so one cheap attempt reads most parcels and
    a Code 128 is confirmed with the same cheap view. (A PDF417 at 3 px is a region larger
    than ``LARGE_REGION``: read at 1x in stage 0, by the finer turns of stage 1 when upright,
    as before this change.)"""
    image = parcel_with_label(fmt, module, angle)
    det = _detection(image, float(angle) % 180)
    reader = LabelReader()
    got = reader.read(image, det, stage=0)
    if got is None and fmt == "PDF417" and module == 3:
        got = reader.read(image, det, stage=1) or reader.read(image, det, stage=2)
    assert got is not None and got.text == TEXTS[fmt]


class _Reader(LabelReader):
    """The real reader, noting the stage of each whole-parcel read."""

    def __init__(self) -> None:
        super().__init__()
        self.stages_asked: list[int | None] = []
        self.dets: list[Detection] = []

    def read(self, image: np.ndarray, det: Detection, stage: int | None = None) -> LabelRead | None:
        self.stages_asked.append(stage)
        self.dets.append(det)
        return super().read(image, det, stage)


class _Boxes:
    """A detector that boxes the given box in every frame (the frames hold no label)."""

    def __init__(self) -> None:
        self.names = {0: "box"}
        self.box = (0.0, 0.0, 1.0, 1.0)

    def detect(self, image: np.ndarray, times: object) -> list[Detection]:
        return [Detection(0, "box", 0.9, self.box)]


def test_a_parcel_cut_by_the_frame_is_read_with_stage_0_until_it_is_whole() -> None:
    """While the parcel's box reaches the frame's edge its label may be out of view: a
    failed read then says nothing of the view, so the next attempt is stage 0 again; once
    wholly in view the attempts go through the views (``WHOLE_VIEWS``: stage 0, stage 0 on
    a region grown around the box, 1, ...)."""
    detector, reader = _Boxes(), _Reader()
    pipe = Pipeline(detector, reader, tracker=Tracker({0: "box"}, px_per_count=1.0, min_hits=1),  # type: ignore[arg-type]
                    label_reads_per_frame=1, label_attempts_per_parcel=6)  # fmt: skip
    image = np.full((480, 1024, 3), 200, np.uint8)
    for i, box in enumerate([(6.0, 100.0, 200.0, 300.0), (5.0, 100.0, 300.0, 300.0)]):
        detector.box = box  # entering: its back at the frame's edge, growing
        pipe.process(Frame(image, 0.1 * i, i, 100 * i))
    for i in range(2, 6):
        detector.box = (100.0 * i, 60.0, 100.0 * i + 200.0, 260.0)  # wholly in view
        pipe.process(Frame(image, 0.1 * i, i, 100 * i))
    assert reader.stages_asked == [0, 0] + [stage for stage, _ in WHOLE_VIEWS[:4]]
    widths = [d.box[2] - d.box[0] for d in reader.dets[2:]]
    assert widths == pytest.approx([200.0 * grow for _, grow in WHOLE_VIEWS[:4]])
    (track,) = pipe.tracker.tracks
    assert track.label_attempts == 6 and track.label_whole_attempts == 4


def test_the_first_sliver_of_an_entering_parcel_is_not_read() -> None:
    """A parcel whose back is at the frame's upstream edge and of which less than 15 % of
    the frame's length is in view is not read yet (its label is seldom in view); the next
    frame, with more of it in view, is."""
    detector, reader = _Boxes(), _Reader()
    pipe = Pipeline(detector, reader, tracker=Tracker({0: "box"}, px_per_count=1.0, min_hits=1),  # type: ignore[arg-type]
                    label_reads_per_frame=1)  # fmt: skip
    image = np.full((480, 1024, 3), 200, np.uint8)
    detector.box = (3.0, 100.0, 120.0, 300.0)  # 117 px of 1,024 in view, entering
    pipe.process(Frame(image, 0.0, 0, 0))
    assert reader.stages_asked == []
    detector.box = (4.0, 100.0, 330.0, 300.0)  # 326 px in view, still entering
    pipe.process(Frame(image, 0.1, 1, 210))
    assert reader.stages_asked == [0]
    detector.box = (900.0, 100.0, 1020.0, 300.0)  # a short box at the other edge: leaving
    pipe.process(Frame(image, 0.2, 2, 2000))
    assert len(reader.stages_asked) == 2  # (a new track, at the downstream edge: read)


class _Symbol(LabelReader):
    """A reader that finds one symbol at ``at`` when its region holds it (no pixels read)."""

    def __init__(self, at: tuple[float, float]) -> None:
        super().__init__()
        self.at = at

    def read(self, image: np.ndarray, det: Detection, stage: int | None = None) -> LabelRead | None:
        x1, y1, x2, y2 = det.box
        if x1 <= self.at[0] <= x2 and y1 <= self.at[1] <= y2:
            return LabelRead("QRCode", "WP1", "region", self.at, 40.0)
        return None


class _Script:
    """A detector that boxes the boxes of a script, frame by frame."""

    def __init__(self, frames: list[list[tuple[float, float, float, float]]]) -> None:
        self.names = {0: "box"}
        self.frames, self.i = frames, 0

    def detect(self, image: np.ndarray, times: object) -> list[Detection]:
        boxes = self.frames[min(self.i, len(self.frames) - 1)]
        self.i += 1
        return [Detection(0, "box", 0.9, b) for b in boxes]


@settings(max_examples=150, deadline=None)
@given(
    length=st.floats(150, 300),
    gap=st.floats(0, 60),
    neighbour=st.floats(150, 300),
    label=st.tuples(st.floats(-0.6, 1.6), st.floats(-0.3, 1.3)),
    ahead=st.booleans(),
    hidden=st.booleans(),
)
def test_a_grown_region_never_reads_a_neighbours_label(
    length: float,
    gap: float,
    neighbour: float,
    label: tuple[float, float],
    ahead: bool,
    hidden: bool,
) -> None:
    """A parcel wholly in view, its first read failed, its neighbour ahead or behind (0-60
    px apart, boxed or hidden from the detector in the frame of the grown read) and a
    symbol anywhere around it: the parcel's label is the symbol only if the symbol lies on
    its own box, and never when the symbol is on the neighbour's."""
    y1, y2 = 200.0, 400.0
    x1 = 400.0  # in a 1,280 px frame: both parcels wholly in view
    own = (x1, y1, x1 + length, y2)
    other = ((x1 + length + gap, y1, x1 + length + gap + neighbour, y2) if ahead
             else (x1 - gap - neighbour, y1, x1 - gap, y2))  # fmt: skip
    at = (x1 + label[0] * length, y1 + label[1] * (y2 - y1))
    seen = [own, other]
    script = _Script([seen, seen, [own] if hidden else seen])  # still: px_per_count 0
    tracker = Tracker({0: "box"}, px_per_count=0.0, min_hits=1)
    pipe = Pipeline(script, _Symbol((-1e6, -1e6)), tracker=tracker,  # type: ignore[arg-type]
                    label_reads_per_frame=2, label_confirms_per_frame=0)  # fmt: skip
    image = np.zeros((768, 1280, 3), np.uint8)
    pipe.process(Frame(image, 0.0, 0, 0))  # each parcel's first whole read: nothing
    pipe.reader = _Symbol(at)
    pipe.label_reads_per_frame = 1
    mine = next(t for t in tracker.tracks if t.current is not None and t.current.box == own)
    mine.label_attempts = 0  # it goes first: the grown read is its (second whole read)
    for t in tracker.tracks:
        if t is not mine:
            t.label_attempts = 5
    pipe.process(Frame(image, 0.1, 1, 0))
    assert mine.label_whole_attempts == 2
    on_other = holds(Detection(0, "box", 0.9, other), np.array(at), 0.0)
    if mine.label is not None:
        assert not on_other, f"the neighbour's symbol at {at} read as parcel {own}'s"
        assert holds(Detection(0, "box", 0.9, own), np.array(at), tracker.label_margin_px)
    elif (
        not holds(Detection(0, "box", 0.9, other), np.array(at), tracker.label_margin_px)
        and own[0] + 2 <= at[0] <= own[2] - 2
        and y1 + 2 <= at[1] <= y2 - 2
    ):
        pytest.fail(f"a symbol at {at} on the parcel's box alone was not read")
