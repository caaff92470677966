"""Which parcels a frame hands over to a machine, and from which view: one rule for every
machine that takes parcels from the belt camera (the diverter's ``edge/node/camera_feed.py``,
the arm's ``edge/arm/adapter_camera.py``), so a fix to it reaches both.

Each physical parcel (one track) is handed over once:

* as soon as its label is certain (``vision.tracker.Track.label_certain``: never a read that
  another read contradicted), early, so the brain has time to answer;
* when its track ends without a certain label: its class and pose only (it is not routed).

The body is placed from the track's latest view with the whole parcel in the frame along the
belt (this frame's, or an earlier one at that view's own encoder count and capture time): a
box cut by the frame's edge is the visible part of the parcel, and its middle is not the
parcel's (an arm aimed at it misses the face by half the hidden length). A parcel never seen
whole is not handed over; it is counted (``never_whole``).

*Whole* here is stricter than the tracker's ``wholly_in_view`` (2 px): the box and its oriented
corners must lie ``EDGE_INSET`` of the frame's width (25.6 px at 1,024) inside both edges
along the belt (``whole_in_frame``). The detector does not box a cut parcel up to the frame's
edge: offline on the arm's seed 2 (its camera, the node's pipeline, no arm), views of parcels
cut by the upstream edge by 10 px or more ended up to 21 px inside it (box or corners), one
26 px (box) with its corners 5 px inside; 27 cut views in 120 s passed the 2 px rule, one of
them handed over with its label 133 mm off the parcel's centre. Views of a whole parcel that
the inset refuses come one frame later instead (at 300 mm/s, 38 px a processed frame).

With ``early`` (the arm), each parcel is also handed over as soon as it has been seen whole
in ``early`` frames, without its label and marked not ``final``: a machine that moves over the
belt must know every parcel on it from then on (a carried parcel was dragged into a neighbour
whose track had not ended yet); its final handover (label, or class alone) comes as above.

A label handed over for one parcel is not handed over for another within
``repeat_window_counts`` of belt travel (one symbol seen through two boxes, or two parcels
with one label: whose it is cannot be told); that track's end hands over its class alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vision.detections import Detection
from vision.tracker import wholly_in_view

if TYPE_CHECKING:
    from vision.pipeline import FrameResult, SeenParcel
    from vision.tracker import ParcelReport

log = logging.getLogger("wolfpack.vision.handover")

# a label is handed over for one parcel only within this much belt travel (counts: the view
# and the way to the decision point, at any counts per mm the sim or a board uses)
REPEAT_WINDOW_COUNTS = 20_000

# a box (or its oriented corners) this near the frame's edge along the belt, as a share of the
# frame's width, may be a cut parcel's: the detector's boxes of a cut parcel end up to ~21 px
# inside the edge of a 1,024 px frame (its input is the frame scaled down: its slop scales
# with the frame's width, not in frame px)
EDGE_INSET = 0.025


def whole_in_frame(det: Detection, width: int, inset: float = EDGE_INSET) -> bool:
    """Whether ``det`` shows the whole parcel along the belt: its box and its oriented box's
    corners ``inset`` x ``width`` px inside both edges (the tracker's ``wholly_in_view`` at
    that margin). Why not 2 px: see the module's docstring."""
    return wholly_in_view(det, width, margin=max(2.0, inset * width))


@dataclass(frozen=True)
class Handed:
    """One parcel handed over: the view its body is placed from, at that view's frame."""

    track_id: int
    detection: Detection  # wholly in the frame along the belt
    count: int  # the encoder count of the frame of ``detection``
    t: float  # that frame's capture time
    label: str | None  # certain, or None (its track ended without a certain label)
    class_name: str
    final: bool = True  # False: an early handover (``Handover.early``); the label may follow


class Handover:
    """Per camera, frame by frame (not thread-safe: the camera's worker thread owns it)."""

    def __init__(
        self,
        name: str = "camera",
        repeat_window_counts: int = REPEAT_WINDOW_COUNTS,
        early: int | None = None,
        edge_inset: float = EDGE_INSET,
    ) -> None:
        self.name = name
        self.repeat_window_counts = repeat_window_counts
        self.edge_inset = edge_inset
        # track -> its latest view whole by this rule: (view, encoder count, capture time).
        # The tracker keeps its own (``whole``, at 2 px), which a cut box passes
        self._whole: dict[int, tuple[Detection, int, float]] = {}
        # hand each parcel over early once seen whole in this many frames (None: never);
        # at least the tracker's min_frames, so that its track's end is reported too
        self.early = early
        self._frames: dict[int, int] = {}  # track -> frames it was seen whole in, until early
        self.stats: Counter[str] = Counter()
        self._labelled: set[int] = set()  # tracks handed over with their label
        self._sent: dict[str, int] = {}  # label text -> encoder count when handed over
        self._refused: set[int] = set()  # tracks whose label another parcel carried

    def select(self, result: FrameResult) -> list[Handed]:
        """What this processed frame hands over (its frame must carry an encoder count)."""
        frame = result.frame
        assert frame.encoder_count is not None
        now = frame.encoder_count
        width = frame.size[0]
        self._sent = {
            k: c for k, c in self._sent.items() if abs(now - c) <= self.repeat_window_counts
        }
        out: list[Handed] = []
        for seen in result.parcels:
            if self.whole(seen.detection, width):
                self._whole[seen.track_id] = (seen.detection, now, frame.captured_at)
        for seen in result.parcels:
            if seen.label is None or not seen.label_certain or seen.track_id in self._labelled:
                continue
            if seen.track_id in self._refused:
                continue
            view = self._whole_view(seen, width)
            if view is None:
                continue  # not yet seen whole: handed over once it is
            det, count, t = view
            if seen.label.text in self._sent:
                self._refused.add(seen.track_id)  # its track's end hands over its class alone
                log.warning("%s: label %r seen on a second parcel; not handed over again",
                            self.name, seen.label.text)  # fmt: skip
                continue
            self._labelled.add(seen.track_id)
            self._sent[seen.label.text] = now
            self.stats["labels"] += 1
            out.append(Handed(seen.track_id, det, count, t, seen.label.text, _class(seen)))
        if self.early is not None:
            out += self._early(result)
        for rep in result.finished:
            self._frames.pop(rep.track_id, None)
            view = self._whole_view(rep, width)
            self._whole.pop(rep.track_id, None)
            if rep.track_id in self._labelled:
                self._labelled.discard(rep.track_id)
                continue
            self._refused.discard(rep.track_id)
            if view is None:
                self.stats["never_whole"] += 1  # its body cannot be placed
                continue
            det, count, t = view
            label = rep.label.text if rep.label is not None and rep.label_certain else None
            if label is not None and label in self._sent:
                self.stats["repeated"] += 1
                label = None
            if label is not None:
                self._sent[label] = now
                self.stats["labels"] += 1
            else:
                self.stats["unlabelled"] += 1
                self.stats["uncertain"] += rep.label is not None
            out.append(Handed(rep.track_id, det, count, t, label, rep.class_name))
        if len(self._whole) > 512:  # tracks the tracker dropped unreported (flickers)
            live = {seen.track_id for seen in result.parcels}
            self._whole = {k: v for k, v in self._whole.items() if k in live}
        return out

    def _early(self, result: FrameResult) -> list[Handed]:
        """Parcels seen whole in ``early`` frames now, not handed over yet: their place."""
        assert self.early is not None
        frame = result.frame
        assert frame.encoder_count is not None
        out = []
        for seen in result.parcels:
            n = self._frames.get(seen.track_id, 0)
            if n < 0 or seen.track_id in self._labelled:
                continue  # handed over early already (-1), or with its label
            if not self.whole(seen.detection, frame.size[0]):
                continue
            n += 1
            self._frames[seen.track_id] = n
            if n >= self.early:
                self._frames[seen.track_id] = -1
                self.stats["early"] += 1
                out.append(Handed(seen.track_id, seen.detection, frame.encoder_count,
                                  frame.captured_at, None, _class(seen),
                                  final=False))  # fmt: skip
        if len(self._frames) > 512:  # tracks the tracker dropped unreported (flickers)
            live = {seen.track_id for seen in result.parcels}
            self._frames = {k: n for k, n in self._frames.items() if n < 0 or k in live}
        return out

    def whole(self, det: Detection, width: int) -> bool:
        """This handover's rule for a view of the whole parcel (``whole_in_frame``)."""
        return whole_in_frame(det, width, self.edge_inset)

    def _whole_view(
        self, seen: SeenParcel | ParcelReport, width: int
    ) -> tuple[Detection, int, float] | None:
        """The latest view of ``seen``'s parcel whole by this rule: remembered from the
        frames this handover saw, else the tracker's whole view where it passes the rule (a
        track merged with another keeps the other's), else the report's best view where
        it does (a report's frame count is its best view's)."""
        mine = self._whole.get(seen.track_id)
        if mine is not None:
            return mine
        if (
            seen.whole is not None
            and seen.whole_count is not None
            and self.whole(seen.whole, width)
        ):
            return seen.whole, seen.whole_count, seen.whole_t
        count = getattr(seen, "encoder_count", None)  # a ParcelReport's best view
        if count is not None and self.whole(seen.detection, width):
            return seen.detection, count, getattr(seen, "last_seen", 0.0)
        return None


def _class(seen: SeenParcel) -> str:
    """A live parcel's class: its track's votes over the frames so far, not this frame's
    detection alone, which flips now and then. The class sets what the arm assumes (a
    polybag is taken as 60 mm tall: a box taken for one finds no seal)."""
    return seen.class_name or seen.detection.class_name
