"""The per-frame vision pipeline: detect, track, read labels, measure.

Label reads are spread over frames: a parcel stays in view for many frames, so each frame
spends at most ``label_reads_per_frame`` read attempts, on the parcels whose label is not yet
certain (unread, or a Code 128 read once), those fully in view first, fewest attempts first.
That keeps the frame time flat while each parcel still
gets its label read long before it leaves the view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from vision.config import VisionConfig
from vision.detections import Detection
from vision.detector import Detector, DetectorSettings, StageTimes
from vision.frames import Frame
from vision.labels import LabelRead, LabelReader
from vision.measure import Calibration, Size
from vision.tracker import ParcelReport, Track, Tracker, holds


@dataclass(frozen=True)
class SeenParcel:
    """One detection in one frame, with what is known about it so far."""

    detection: Detection
    track_id: int
    label: LabelRead | None
    size: Size | None
    label_certain: bool = False  # the label may route (read alike twice, or self-checking)
    whole: Detection | None = None  # the track's latest view wholly in the frame along the belt
    whole_count: int | None = None  # its frame's encoder count
    whole_t: float = 0.0  # and capture time
    # the track's class by its confidence-weighted votes over every frame so far (None: the
    # detection's own); one frame's class flips now and then where the votes do not
    class_name: str | None = None


@dataclass
class FrameResult:
    frame: Frame
    parcels: list[SeenParcel]
    finished: list[ParcelReport]  # parcels whose tracks ended at this frame: report them
    times: StageTimes
    label_reads: list[float] = field(default_factory=list)  # ms of each read attempt

    @property
    def total_ms(self) -> float:
        t = self.times
        return t.preprocess + t.inference + t.nms + sum(t.extra.values())


class Pipeline:
    def __init__(
        self,
        detector: Detector,
        reader: LabelReader | None = None,
        calibration: Calibration | None = None,
        tracker: Tracker | None = None,
        label_reads_per_frame: int = 2,
        label_attempts_per_parcel: int = 8,
        label_confirms_per_frame: int = 2,
    ) -> None:
        self.detector = detector
        self.reader = reader or LabelReader()
        self.calibration = calibration
        self.tracker = tracker or Tracker(detector.names)
        self.label_reads_per_frame = label_reads_per_frame
        self.label_attempts_per_parcel = label_attempts_per_parcel
        # reads of a label's region alone, to confirm a Code 128 read once (beside the
        # budget of whole-parcel reads: a confirmation costs a region's decode)
        self.label_confirms_per_frame = label_confirms_per_frame
        # measure each parcel seen (``SeenParcel.size``) every frame: the CLI prints it; a
        # node's camera places and measures the parcels it hands over itself, once each, so
        # its worker turns this off (~0.5 ms a frame it did not use)
        self.measure_sizes = True

    @classmethod
    def from_config(cls, cfg: VisionConfig) -> Pipeline:
        th = cfg.thresholds
        detector = Detector(
            cfg.model_path,
            providers=cfg.provider_list(),
            threads=cfg.threads,
            settings=DetectorSettings(th.confidence, th.iou, th.top_k, th.max_detections),
            classifier=cfg.classifier_choice,
        )
        tr = cfg.tracker
        tracker = Tracker(
            detector.names,
            belt_direction=tr.belt_direction,
            px_per_count=tr.px_per_count,
            max_missed_frames=tr.max_missed_frames,
            min_hits=tr.min_frames,
        )
        calibration = Calibration.from_config(cfg.calibration) if cfg.calibration else None
        return cls(
            detector,
            LabelReader(),
            calibration,
            tracker,
            tr.label_reads_per_frame,
            tr.label_attempts_per_parcel,
        )

    def reset(self) -> None:
        """Forget every track (the next frame is unrelated to the last)."""
        self.tracker.reset()

    def process(self, frame: Frame, label_reads: int | None = None) -> FrameResult:
        """Detect, track, read up to ``label_reads`` labels (default: the configured share)."""
        times = StageTimes()
        classify = None
        if getattr(self.detector, "classifier", None) is None:  # its own classes (or a stand-in)
            detections = self.detector.detect(frame.image, times)
        else:
            detections, half = self.detector.locate(frame.image, times)
            times.extra["classify"] = 0.0

            def classify(dets: list[Detection]) -> list[Detection]:
                # only the parcels whose class is not settled (the tracker says which)
                start = time.perf_counter()
                out = self.detector.classify(frame.image, dets, half)
                times.extra["classify"] += (time.perf_counter() - start) * 1e3
                return out

        t0 = time.perf_counter()
        finished = self.tracker.update(frame, detections, classify)
        t1 = time.perf_counter()
        times.extra["tracking"] = (t1 - t0) * 1e3 - times.extra.get("classify", 0.0)
        budget = self.label_reads_per_frame if label_reads is None else label_reads
        reads = self._read_labels(frame, budget)
        self.tracker.refuse_shared_labels(frame)
        t2 = time.perf_counter()
        times.extra["label_read"] = (t2 - t1) * 1e3
        parcels = []
        for t in self.tracker.tracks:
            if t.current is None:
                continue
            measure = self.calibration is not None and self.measure_sizes
            size = self.calibration.measure(t.current) if measure else None  # type: ignore[union-attr]
            parcels.append(SeenParcel(t.current, t.id, t.label, size, t.label_certain,
                                      t.whole, t.whole_count, t.whole_t,
                                      self.tracker.voted_class(t)))  # fmt: skip
        times.extra["measure"] = (time.perf_counter() - t2) * 1e3
        return FrameResult(frame, parcels, finished, times, reads)

    def _read_labels(self, frame: Frame, budget: int) -> list[float]:
        w, h = frame.size
        spent = self._confirm_labels(frame)
        todo = [
            t
            for t in self.tracker.tracks
            if t.current is not None
            and not t.label_certain
            and not t.label_conflict
            and t.label_attempts < self.label_attempts_per_parcel
            and not self._sliver(t.current, w, h)
        ]  # a region's read that failed leaves the track here: the whole parcel's may not
        # parcels wholly in view first (a parcel cut by the frame's edge may show its whole
        # label too: a fast belt leaves each parcel wholly in view for two or three frames
        # only), unread before those to confirm, fewest attempts first
        todo.sort(key=lambda t: (not inside_frame(t.current, w, h), t.label is not None,  # type: ignore[arg-type]
                                 t.label_attempts))  # fmt: skip
        for t in todo[:budget]:
            start = time.perf_counter()
            # the reader's views are spread over the parcel's attempts: the view that reads
            # most first, the others on the next frames, so no frame pays for all of them; a
            # read to confirm uses the view that decoded the first. A parcel cut by the
            # frame's edge is read with stage 0 only: its label may not be in view yet, and
            # a failure then says nothing of the view (offline, seed 1: 327 of 392 failed
            # reads were of parcels still entering; the dearer stages 1-2 cost ~2x stage 0)
            cut = not inside_frame(t.current, w, h, CUT_MARGIN_PX)  # type: ignore[arg-type]
            det, grown = t.current, False
            if t.label_stage is not None:
                stage = t.label_stage
            elif cut:
                stage = 0
            else:
                stage, grow = WHOLE_VIEWS[t.label_whole_attempts % len(WHOLE_VIEWS)]
                grown = grow != 1.0
                det = grown_view(t.current, w, h, grow) if grown else t.current  # type: ignore[arg-type]
            read = self.reader.read(frame.image, det, stage)  # type: ignore[arg-type]
            if grown and read is not None and not self._own(t, read):
                read = None  # a symbol off its box, or on another parcel's: not its label
            t.add_read(read, stage)
            t.label_attempts += 1
            t.label_whole_attempts += not cut
            spent.append((time.perf_counter() - start) * 1e3)
        return spent

    def _own(self, t: Track, read: LabelRead) -> bool:
        """Whether a symbol read on a region grown around ``t``'s box lies on that box (as
        the tracker holds a label to its box, ``label_margin_px``) and near no other track's
        (its box seen in this frame, or where it is carried while unseen): a grown region
        reaches the neighbours, whose labels are never this parcel's."""
        if read.at is None or t.current is None:
            return False
        at = np.asarray(read.at, np.float64)
        m = self.tracker.label_margin_px
        if not holds(t.current, at, m):
            return False
        for o in self.tracker.tracks:
            if o is t:
                continue
            if o.current is not None and holds(o.current, at, m):
                return False
            x1, y1, x2, y2 = o.box
            if o.current is None and x1 - m <= at[0] <= x2 + m and y1 - m <= at[1] <= y2 + m:
                return False
        return True

    def _sliver(self, d: Detection, w: int, h: int) -> bool:
        """Whether ``d`` is the first sliver of a parcel entering the view: its back at the
        frame's upstream edge and less than ``ENTERING_MIN_SHARE`` of the frame's length
        along the belt in view. Its label is seldom in view yet (offline, seed 1: 4 of 113
        such reads under 150 px decoded, 174 of 189 under 200 px failed; ~1 ms a frame):
        it is read on the next frame, when more of it has entered."""
        d_x, d_y = self.tracker.direction
        x1, y1, x2, y2 = d.box
        m = CUT_MARGIN_PX
        if abs(d_x) >= abs(d_y):
            back = x1 <= m if d_x > 0 else x2 >= w - m
            return back and (x2 - x1) < ENTERING_MIN_SHARE * w
        back = y1 <= m if d_y > 0 else y2 >= h - m
        return back and (y2 - y1) < ENTERING_MIN_SHARE * h

    def _confirm_labels(self, frame: Frame) -> list[float]:
        """Read again, where it was read, the label of each track whose label is not yet
        certain (a Code 128 read once) and whose symbol is in this frame, those read longest
        ago first, at most ``label_confirms_per_frame``; with the reader's stage that decoded
        it. Two reads of two frames must agree, at one place, as before (``Track.add_read``)."""
        w, h = frame.size
        limit = 2 * self.label_attempts_per_parcel
        todo = [t for t in self.tracker.tracks if _confirmable(t, w, h)
                and t.label_attempts < limit]  # fmt: skip
        d = self.tracker.direction  # furthest along the belt (the first to leave) first
        todo.sort(key=lambda t: -float(t.label_at[0] * d[0] + t.label_at[1] * d[1]))  # type: ignore[index]
        spent = []
        for t in todo[: self.label_confirms_per_frame]:
            start = time.perf_counter()
            assert t.label is not None and t.label_at is not None and t.current is not None
            angle = t.current.oriented.angle_deg if t.current.oriented is not None else None
            read = self.reader.read_at(frame.image, t.label_at, t.label.span, angle,
                                       t.label_stage)  # fmt: skip
            t.add_read(read, t.label_stage if t.label_stage is not None else 0)
            t.label_attempts += 1
            spent.append((time.perf_counter() - start) * 1e3)
        return spent

    def flush(self) -> list[ParcelReport]:
        return self.tracker.flush()


def _confirmable(t: Track, w: int, h: int) -> bool:
    """A track seen now whose label was read once, is not certain yet and not contradicted,
    and whose symbol (carried by the belt) lies in the frame."""
    if t.current is None or t.label is None or t.label_at is None:
        return False
    if t.label_certain or t.label_conflict:
        return False
    x, y = float(t.label_at[0]), float(t.label_at[1])
    return 0.0 <= x < w and 0.0 <= y < h


# a box this near the frame's edge may be of a parcel cut by it: the detector's box of a
# parcel still entering ends up to ~25 px inside the edge
CUT_MARGIN_PX = 24.0
# an entering parcel with less than this share of the frame's length in view is not read yet
ENTERING_MIN_SHARE = 0.15


# the views of a parcel wholly in view, attempt by attempt: (reader stage, the region read
# around its box, times the box's length and width). The detector boxes an irregular item
# or a bag without a lobe or its back now and then, and the reader blanks what lies off the
# box: a label across its side then never reads (offline: seed 1's parcel 205 reads at 1.5
# and not at 1.3; seed 3's parcel 352 read at 1.3 as the second view, not as the fourth).
# Stage 3 (the whole crop enlarged) is last: the dearest view (~7 ms), and the only one that
# reads 11 of 1,320 labels on 2D renders of touching parcels (none on the belt camera's)
WHOLE_VIEWS = ((0, 1.0), (0, 1.5), (1, 1.0), (0, 1.3), (2, 1.0), (3, 1.0))


def grown_view(d: Detection, w: int, h: int, factor: float) -> Detection:
    """``d`` grown ``factor`` times about its middle (its oriented box, and its box cut by
    the frame), for a read of a label across its side."""
    x1, y1, x2, y2 = d.box
    cx, cy, gx, gy = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * factor / 2, (y2 - y1) * factor / 2
    box = (max(0.0, cx - gx), max(0.0, cy - gy), min(float(w), cx + gx), min(float(h), cy + gy))
    o = d.oriented
    oriented = None if o is None else replace(o, length=o.length * factor, width=o.width * factor)
    return replace(d, box=box, oriented=oriented)


def inside_frame(d: Detection, w: int, h: int, margin: float = 2.0) -> bool:
    """Whether ``d``'s box lies ``margin`` px inside every edge of a ``w`` x ``h`` frame."""
    x1, y1, x2, y2 = d.box
    return x1 > margin and y1 > margin and x2 < w - margin and y2 < h - margin
