"""The handover never places a parcel from a view the frame's edge cut (``vision.handover``).

The detector does not box a cut parcel up to the frame's edge: offline on the arm cell's seed
2 (docs/sim-arm.md, "Seeing"), boxes of parcels cut by the upstream edge ended up to 21 px
inside a 1,024 px frame, one 26 px (its oriented corners 5 px inside), and the tracker's
``wholly_in_view`` (2 px) took 27 such views in 120 s for whole: one was handed over with its
label, its centre 133 mm off the parcel's. These tests drive the real tracker and handover
with a detector that stops short of the edge it is cut by, at either edge.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vision.tracks import frame_result
from vision.detections import Detection, OrientedBox
from vision.frames import Frame
from vision.handover import EDGE_INSET, Handover, whole_in_frame
from vision.labels import LabelRead
from vision.tracker import Tracker

W, H = 1024, 768
PX_PER_COUNT = 1.28  # configs/sim-arm.yaml: 800 mm over 1,024 px, 1 count per mm
INSET_PX = EDGE_INSET * W
BLANK = np.zeros((H, W, 3), np.uint8)


def _det(x1: float, x2: float, ox1: float, ox2: float, cy: float, width: float) -> Detection:
    """A detection boxed [x1, x2] px along the belt, its oriented box [ox1, ox2]."""
    ob = OrientedBox((ox1 + ox2) / 2, cy, ox2 - ox1, width, 0.0)
    return Detection(0, "box", 0.9, (x1, cy - width / 2, x2, cy + width / 2), ob)


def _seen(x1: float, length: float, inset: float, slop: float) -> tuple[Detection, bool] | None:
    """The detector's view of a parcel spanning [x1, x1 + length] px: the visible part, a
    side cut by a frame edge boxed ``inset`` px inside that edge and its oriented corners
    ``slop`` px further in (both under the handover's inset, as measured); a whole parcel
    boxed exactly. With whether the frame's edge cut it."""
    x2 = x1 + length
    a, b = max(x1, 0.0), min(x2, float(W))
    if b - a < 40:
        return None
    cut_up, cut_down = a > x1, b < x2
    bx1, bx2 = (a + inset if cut_up else a), (b - inset if cut_down else b)
    ox1, ox2 = (bx1 + slop if cut_up else a), (bx2 - slop if cut_down else b)
    if bx2 - bx1 < 20:
        return None
    return _det(bx1, bx2, ox1, ox2, H / 2, 0.6 * length), cut_up or cut_down


def _pass_by(handover: Handover, length: float, step: float, x0: float, inset: float,
             slop: float, read_at: int | None) -> tuple[list, dict[int, bool], bool]:  # fmt: skip
    """One parcel carried through the view: what the handover gave, whether the frame at
    each encoder count cut it, and whether the rule ever saw it whole."""
    tracker = Tracker({0: "box"}, px_per_count=PX_PER_COUNT, min_hits=2)
    handed, cut_at, seen_whole = [], {}, False
    for i in range(int((W - x0) / step) + 6):  # until it has left the view
        count = round(i * step / PX_PER_COUNT)
        frame = Frame(BLANK, i * 0.1, i, count)
        seen = _seen(x0 + i * step, length, inset, slop)
        dets = [] if seen is None else [seen[0]]
        if seen is not None:
            cut_at[count] = seen[1]
            seen_whole |= whole_in_frame(seen[0], W)
        finished = tracker.update(frame, dets)
        if read_at is not None and i >= read_at and tracker.tracks and dets:
            t = tracker.tracks[0]
            if t.label is None:  # a QR: certain at its first read, wherever the parcel is
                t.add_read(LabelRead("QRCode", "WP1", "region", t.current.centre), 0)
        handed += handover.select(frame_result(frame, tracker, finished))
    return handed, cut_at, seen_whole


@settings(max_examples=50, deadline=None)
@given(
    length=st.floats(150, 600),  # px: 120-470 mm parcels in an 800 mm view
    step=st.floats(25, 120),  # px a processed frame: 200-900 mm/s at 10 frames/s
    x0=st.floats(-700, -30),  # where its upstream end starts, px (entering the view)
    inset=st.floats(0, INSET_PX - 0.5),  # the detector's box short of the cutting edge
    slop=st.floats(0, 10),  # its oriented corners further in
    read_at=st.one_of(st.none(), st.integers(0, 40)),
)
def test_a_box_cut_by_either_edge_is_never_handed_over_as_whole(
    length, step, x0, inset, slop, read_at
) -> None:
    handover = Handover("test", early=2)
    handed, cut_at, seen_whole = _pass_by(handover, length, step, x0, inset, slop, read_at)
    for h in handed:  # every view handed over, early or final, labelled or not: uncut
        assert cut_at[h.count] is False, (h, cut_at)
        true_centre = x0 + h.count * PX_PER_COUNT + length / 2
        assert abs(h.detection.centre[0] - true_centre) < 1.0
    finals = [h for h in handed if h.final]
    if seen_whole:
        assert len(finals) == 1  # once, never dropped
        assert sum(not h.final for h in handed) <= 1
    else:
        assert handed == [] and handover.stats["never_whole"] == 1


def test_the_old_margin_hands_over_a_cut_view() -> None:
    """The case of the run: with the tracker's 2 px (``edge_inset`` 0) a parcel entering,
    boxed 21 px inside the upstream edge and read at once, is placed from its visible part."""
    handover = Handover("test", early=2, edge_inset=0.0)
    handed, cut_at, _ = _pass_by(handover, 450.0, 38.0, -300.0, 21.0, 0.0, 0)
    assert cut_at[handed[0].count] is True
    strict = Handover("test", early=2)
    handed, cut_at, _ = _pass_by(strict, 450.0, 38.0, -300.0, 21.0, 0.0, 0)
    assert handed and not any(cut_at[h.count] for h in handed)


@given(
    x1=st.floats(-50, W + 50),
    length=st.floats(100, W),
    ox=st.floats(-40, 40),  # the oriented box's reach past (or short of) the box
)
def test_whole_in_frame_is_the_inset_on_the_box_and_its_corners(x1, length, ox) -> None:
    x2 = x1 + length
    det = _det(x1, x2, x1 - ox, x2 + ox, H / 2, 100.0)
    lo, hi = min(x1, x1 - ox), max(x2, x2 + ox)
    assert whole_in_frame(det, W) == (lo > INSET_PX and hi < W - INSET_PX)
