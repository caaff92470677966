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
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.vision.handover")

# a label is handed over for one parcel only within this much belt travel (counts: the view
# and the way to the decision point, at any counts per mm the sim or a board uses)
REPEAT_WINDOW_COUNTS = 20_000


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
    ) -> None:
        self.name = name
        self.repeat_window_counts = repeat_window_counts
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
            if seen.label is None or not seen.label_certain or seen.track_id in self._labelled:
                continue
            if seen.track_id in self._refused:
                continue
            if wholly_in_view(seen.detection, width):
                det, count, t = seen.detection, now, frame.captured_at
            elif seen.whole is not None and seen.whole_count is not None:
                det, count, t = seen.whole, seen.whole_count, seen.whole_t
            else:
                continue  # not yet seen whole: handed over once it is
            if seen.label.text in self._sent:
                self._refused.add(seen.track_id)  # its track's end hands over its class alone
                log.warning("%s: label %r seen on a second parcel; not handed over again",
                            self.name, seen.label.text)  # fmt: skip
                continue
            self._labelled.add(seen.track_id)
            self._sent[seen.label.text] = now
            self.stats["labels"] += 1
            out.append(
                Handed(seen.track_id, det, count, t, seen.label.text, seen.detection.class_name)
            )
        if self.early is not None:
            out += self._early(result)
        for rep in result.finished:
            self._frames.pop(rep.track_id, None)
            if rep.track_id in self._labelled:
                self._labelled.discard(rep.track_id)
                continue
            self._refused.discard(rep.track_id)
            if rep.whole is not None and rep.whole_count is not None:
                det, count, t = rep.whole, rep.whole_count, rep.whole_t
            elif rep.encoder_count is not None and wholly_in_view(rep.detection, width):
                det, count, t = rep.detection, rep.encoder_count, rep.last_seen
            else:
                self.stats["never_whole"] += 1  # its body cannot be placed
                continue
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
            if not wholly_in_view(seen.detection, frame.size[0]):
                continue
            n += 1
            self._frames[seen.track_id] = n
            if n >= self.early:
                self._frames[seen.track_id] = -1
                self.stats["early"] += 1
                out.append(Handed(seen.track_id, seen.detection, frame.encoder_count,
                                  frame.captured_at, None, seen.detection.class_name,
                                  final=False))  # fmt: skip
        if len(self._frames) > 512:  # tracks the tracker dropped unreported (flickers)
            live = {seen.track_id for seen in result.parcels}
            self._frames = {k: n for k, n in self._frames.items() if n < 0 or k in live}
        return out
