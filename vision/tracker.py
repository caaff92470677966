"""Follows parcels across frames using the belt's motion, and reports each parcel once.

Between two frames a parcel moves with the belt: by (encoder counts x px per count) along the
belt direction when frames carry encoder counts, else by the belt speed x elapsed time. Both
scales are learnt from matched parcels when the config does not give them. Each track keeps
its best detection and its label read; when a parcel leaves the view or stays unseen for a
few frames, its track is finished and reported, once.

One track per physical parcel: a detector also fires on a part of a parcel (an irregular
item's lobe, a bag's fold, a box's flap) beside its whole outline, and a parcel cut by the
frame's edge is boxed twice now and then. A detection that lies mostly inside another
detection of the same frame (``part_of`` of its area) is such a part: it joins no track and
starts none. The cost: a small parcel lying wholly on a larger one is seen as one parcel (so is
it by the induction photo-eye; the cell's association then refuses an ambiguous sighting).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vision.detections import Detection
from vision.frames import Frame
from vision.labels import LabelRead

# symbologies whose error correction makes one read certain
SELF_CHECKING = frozenset({"QRCode", "DataMatrix", "PDF417"})
# how far (px) a confirming read may lie from where the first read's symbol was carried
LABEL_TOLERANCE_PX = 40.0
# how far (px, at least) an entering parcel's detected leading edge may be from its predicted
LEAD_TOLERANCE_PX = 24.0
# a symbol read on a region around a parcel's box is that parcel's within this of its box
# (``Tracker.label_margin_px``; the evaluation's reads use the same)
LABEL_MARGIN_PX = 12.0
# a label in view off its track's box in this many frames in a row: the track left its parcel.
# One such frame is the detector's now and then: it boxes part of a parcel (an irregular
# item's lobe, a box's top half) for a frame and the whole of it on the next; offline at
# 24,000/h (seeds 1-5, 60 s each) 3 of the 10 legible labels the camera lost were so
LABEL_OFF_FRAMES = 2
# a track's class is settled (its parcel is classified no more) after this many classified
# views of the whole parcel, when the voted class holds at least this share of its votes
SETTLE_VIEWS = 2
SETTLE_SHARE = 0.75

# classifies the detections it is given (same order): ``Detector.classify`` on this frame
Classify = Callable[[list[Detection]], list[Detection]]


@dataclass
class Track:
    id: int
    box: np.ndarray  # last known x1, y1, x2, y2 (moved with the belt while unseen)
    best: Detection
    first_seen: float
    last_seen: float
    encoder_at_best: int | None
    hits: int = 1
    missed: int = 0
    class_votes: dict[int, float] = field(default_factory=dict)
    # the classifier's probability of each class voted, summed over its votes (a settled
    # track's views, no longer classified, carry the mean of the voted class's)
    class_probs: dict[int, float] = field(default_factory=dict)
    class_counts: dict[int, int] = field(default_factory=dict)
    whole_votes: int = 0  # classified views voted with the whole parcel in the frame
    settled: bool = False  # its class is settled: not classified again (``Tracker.settle``)
    label: LabelRead | None = None
    label_attempts: int = 0
    label_whole_attempts: int = 0  # of those, reads of the parcel wholly in the frame
    current: Detection | None = None  # this frame's detection, None when unseen
    label_agree: int = 0  # reads that gave ``label``'s text
    label_conflict: bool = False  # a read gave another text: no label of this track is trusted
    # consecutive frames whose box did not hold the label in view (``Tracker._keeps_label``):
    # the label does not route meanwhile, and is refused for good at ``LABEL_OFF_FRAMES``
    label_off: int = 0
    conflict_why: str = ""  # what contradicted it (for the logs and the benchmark)
    label_stage: int | None = None  # the reader's stage that decoded it (to confirm it)
    # where the label lies in this frame (px): where it was read, carried by the belt since
    label_at: np.ndarray | None = None
    # the latest view with the whole parcel in the frame along the belt (its body can be
    # placed on the belt from it), the frame's encoder count and capture time
    whole: Detection | None = None
    whole_count: int | None = None
    whole_t: float = 0.0
    # the whole view before this frame's (a view grown by another part may not be whole)
    whole_before: tuple[Detection | None, int | None, float] = (None, None, 0.0)
    # where the parcel was last seen, carried by the belt since: never grown from the
    # upstream edge (``box`` of an unseen entering track grows), so the belt there held it
    seen_box: np.ndarray | None = None

    def add_read(
        self, read: LabelRead | None, stage: int, tolerance_px: float = LABEL_TOLERANCE_PX
    ) -> None:
        """One read attempt's result (None: nothing decoded, which says nothing). A read of
        the same text elsewhere on the parcel (further from where the belt carried the first
        than ``tolerance_px`` or either read's region span) is a second symbol, not a
        confirmation: contradicted too."""
        if read is None:
            return
        if self.label is None:
            self.label, self.label_agree, self.label_stage = read, 1, stage
            if read.at is not None:
                self.label_at = np.asarray(read.at, np.float64)
        elif read.text != self.label.text:
            self.label_conflict, self.conflict_why = True, f"read {read.text!r} too"
        elif (
            read.at is not None
            and self.label_at is not None
            and float(np.hypot(*(np.asarray(read.at) - self.label_at)))
            > max(tolerance_px, read.span, self.label.span)
        ):
            self.label_conflict, self.conflict_why = True, "read again elsewhere on it"
        else:
            self.label_agree += 1

    @property
    def label_certain(self) -> bool:
        """A label that may route the parcel: never contradicted, and either a symbology with
        error correction (QR, DataMatrix, PDF417: a misread is corrected or fails) or read
        alike twice (Code 128's check digit lets a blurred or cut symbol through as another
        valid code now and then); and on the box the track follows in this frame."""
        if self.label is None or self.label_conflict or self.label_off:
            return False
        return self.label.format in SELF_CHECKING or self.label_agree >= 2


def _voted(t: Track) -> int:
    """The class id with the most confidence-weighted votes (the track has at least one)."""
    return max(t.class_votes, key=lambda k: t.class_votes[k])


def _better(d: Detection, best: Detection) -> bool:
    """Whether ``d`` is a better view than ``best``: a classified view (its score the
    detector's times the class's probability) over one the tracker left unclassified (cut by
    the frame's edge: the detector's score alone), else the higher score."""
    if (d.detector_confidence is None) != (best.detector_confidence is None):
        return d.detector_confidence is not None
    return d.confidence > best.confidence


@dataclass(frozen=True)
class ParcelReport:
    """One physical parcel, reported once when its track ends."""

    track_id: int
    class_name: str
    class_id: int
    confidence: float
    detection: Detection  # the best view
    label: LabelRead | None  # the first read (see ``label_certain``)
    frames: int
    first_seen: float
    last_seen: float
    encoder_count: int | None  # at the frame of the best view
    label_certain: bool = False  # the label may route the parcel (``Track.label_certain``)
    whole: Detection | None = None  # the latest view wholly in the frame along the belt
    whole_count: int | None = None  # its frame's encoder count
    whole_t: float = 0.0  # and capture time


def wholly_in_view(det: Detection, width: int, margin: float = 2.0) -> bool:
    """Wholly in view along the belt (image x): the box, and the oriented box's corners too
    (a turned parcel cut by the frame's edge is often boxed by its visible part, whose
    corners then reach past the edge: its middle is not the parcel's)."""
    x1, _, x2, _ = det.box
    if not (x1 > margin and x2 < width - margin):
        return False
    xs = det.corners()[:, 0]
    return bool(xs.min() > margin and xs.max() < width - margin)


def holds(det: Detection, point: np.ndarray, margin_px: float) -> bool:
    """Whether ``point`` lies on ``det`` (its oriented box, else its box), ``margin_px``
    and 5 % beyond its sides: the detector's boxes wander by a few px from frame to frame."""
    if det.oriented is not None:
        o = det.oriented
        a = np.deg2rad(o.angle_deg)
        d = point - np.array([o.cx, o.cy])
        u = abs(float(d[0] * np.cos(a) + d[1] * np.sin(a)))
        v = abs(float(-d[0] * np.sin(a) + d[1] * np.cos(a)))
        return u <= o.length * 0.55 + margin_px and v <= o.width * 0.55 + margin_px
    x1, y1, x2, y2 = det.box
    mx, my = 0.05 * (x2 - x1) + margin_px, 0.05 * (y2 - y1) + margin_px
    return bool(x1 - mx <= point[0] <= x2 + mx and y1 - my <= point[1] <= y2 + my)


def _union(a: Detection, b: Detection) -> Detection:
    """One parcel's two boxes as one: their union (axis-aligned: no oriented box covers both
    parts), with the more confident one's class."""
    first = a if a.confidence >= b.confidence else b
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
           max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))  # fmt: skip
    return Detection(first.class_id, first.class_name, first.confidence, box, None,
                     first.detector_confidence)  # fmt: skip


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N x 4) with every box in b (M x 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box in a (N x 4) that lies inside each box in b (M x 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return inter / np.maximum(area_a[:, None], 1e-9)


class Tracker:
    EDGE_PX = 4.0  # a box this near the frame's edge is cut by it

    def __init__(
        self,
        names: dict[int, str],
        belt_direction: tuple[float, float] = (1.0, 0.0),
        px_per_count: float | None = None,
        max_missed_frames: int = 3,
        min_iou: float = 0.2,
        min_hits: int = 3,
        part_of: float = 0.6,
        label_margin_px: float = LABEL_MARGIN_PX,
        same_place: float = 0.5,
        settle_views: int = SETTLE_VIEWS,
        settle_share: float = SETTLE_SHARE,
    ) -> None:
        d = np.asarray(belt_direction, np.float64)
        self.direction = d / np.linalg.norm(d)
        self.names = names
        self.px_per_count = px_per_count
        self.learn_count_scale = px_per_count is None
        self.px_per_second: float | None = None
        self.max_missed = max_missed_frames
        self.min_iou = min_iou
        self.min_hits = min_hits
        self.part_of = part_of
        self.label_margin_px = label_margin_px
        self.same_place = same_place
        self.settle_views = settle_views
        self.settle_share = settle_share
        self._classifying = False  # this update classifies (``update``'s ``classify``)
        self._fresh: set[int] = set()  # ids of the detections it classified
        self._width = 0
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._last: Frame | None = None

    def _shift(self, frame: Frame) -> float:
        """Predicted belt travel in px along the belt direction since the last frame."""
        last = self._last
        if last is None:
            return 0.0
        if frame.encoder_count is not None and last.encoder_count is not None:
            if self.px_per_count is not None:
                return (frame.encoder_count - last.encoder_count) * self.px_per_count
        elif self.px_per_second is not None:
            return (frame.captured_at - last.captured_at) * self.px_per_second
        return 0.0

    def _motion_known(self, frame: Frame) -> bool:
        """Whether ``_shift`` predicts this frame's travel (a scale given or learnt)."""
        last = self._last
        if last is None:
            return False
        if frame.encoder_count is not None and last.encoder_count is not None:
            return self.px_per_count is not None
        return self.px_per_second is not None

    def _learn(self, frame: Frame, travelled_px: float) -> None:
        last = self._last
        if last is None:
            return
        if frame.encoder_count is not None and last.encoder_count is not None:
            counts = frame.encoder_count - last.encoder_count
            if counts and self.learn_count_scale:
                est = travelled_px / counts
                self.px_per_count = (
                    est if self.px_per_count is None else 0.7 * self.px_per_count + 0.3 * est
                )
        dt = frame.captured_at - last.captured_at
        if dt > 0:
            est = travelled_px / dt
            self.px_per_second = (
                est if self.px_per_second is None else 0.7 * self.px_per_second + 0.3 * est
            )

    def update(
        self, frame: Frame, detections: list[Detection], classify: Classify | None = None
    ) -> list[ParcelReport]:
        """Associate this frame's detections with tracks; return the parcels that finished.

        ``classify`` (None: the detections carry their classes): the detections are
        unclassified, and after they are matched by their boxes only those of tracks whose
        class is not settled, and those left unmatched, are classified (one call); a settled
        track's view carries its voted class. Association uses boxes alone, so it is the same
        either way."""
        self._classifying = classify is not None
        self._width = frame.size[0]
        known = self._motion_known(frame)
        shift = self._shift(frame) * self.direction
        width, height = frame.size
        # tracks of parcels still entering: their box's back is the frame's edge, so only
        # their leading edge is known (and predicted, once the belt's motion is known)
        entering = [known and self._entering(t.box, width, height) for t in self.tracks]
        # where each track's parcel was seen last, carried by the belt (not grown from the
        # upstream edge, this frame nor while it was unseen: a grown box reached over the
        # parcels that entered behind it, and one of them was taken for the track's own,
        # found by hypothesis with frames skipped): the belt there held that parcel
        for t in self.tracks:
            t.seen_box = (t.box if t.seen_box is None else t.seen_box) + np.tile(shift, 2)
        solid = np.array([t.seen_box for t in self.tracks], np.float64)
        solid = np.clip(solid.reshape(-1, 4), 0, [width, height, width, height])
        for t in self.tracks:
            t.box = self._moved(t.box, shift, width, height)
            if t.label_at is not None:
                t.label_at = t.label_at + shift
            t.current = None
        detections = self._wholes(detections)
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        tboxes = np.array([t.box for t in self.tracks], np.float64).reshape(-1, 4)
        # a leaving parcel's box is cut by the frame's edge: so is its prediction
        seen = np.clip(tboxes, 0, [width, height, width, height])
        iou = iou_matrix(seen, boxes)
        for ti, grows in enumerate(entering):
            if grows:  # grown from the edge it may cover the next parcel too: its lead decides
                for di, d in enumerate(detections):
                    if not self._same_lead(tboxes[ti], d.box):
                        iou[ti, di] = 0.0
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        travelled = []
        pairs: list[tuple[int, int]] = []
        for flat in np.argsort(-iou, axis=None):
            ti, di = np.unravel_index(flat, iou.shape)
            if iou[ti, di] < self.min_iou:
                break
            if ti in matched_t or di in matched_d:
                continue
            matched_t.add(int(ti))
            matched_d.add(int(di))
            pairs.append((int(ti), int(di)))
            t, d = self.tracks[ti], detections[di]
            before = (t.box[:2] + t.box[2:]) / 2 - shift  # where it was last frame
            travelled.append(float(np.dot(np.asarray(d.centre) - before, self.direction)))
        if classify is not None:
            detections = self._classified(detections, pairs, classify)
        for ti, di in pairs:
            self._hit(self.tracks[ti], detections[di], frame)
        if travelled:
            self._learn(frame, float(np.median(travelled)))
        if known:
            matched_d |= self._same_place(frame, detections, matched_d, solid, matched_t)
        for t in self.tracks:
            if t.current is not None:
                self._keeps_label(t, frame)
        for di, d in enumerate(detections):
            if di not in matched_d:
                t = Track(
                    id=next(self._ids),
                    box=np.asarray(d.box, np.float64),
                    best=d,
                    first_seen=frame.captured_at,
                    last_seen=frame.captured_at,
                    encoder_at_best=frame.encoder_count,
                    current=d,
                )
                self._vote(t, d, width)
                if wholly_in_view(d, width):
                    t.whole, t.whole_count, t.whole_t = d, frame.encoder_count, frame.captured_at
                self.tracks.append(t)
        finished: list[ParcelReport] = []
        alive = []
        for ti, t in enumerate(self.tracks):
            if t.current is None and ti < len(tboxes):
                t.missed += 1
            gone = self._left_view(t.box, width, height)
            if t.missed > self.max_missed or (t.current is None and gone):
                if t.hits >= self.min_hits:
                    finished.append(self._report(t))
            else:
                alive.append(t)
        self.tracks = alive
        self._last = frame
        return finished

    def _classified(
        self, detections: list[Detection], pairs: list[tuple[int, int]], classify: Classify
    ) -> list[Detection]:
        """``detections`` with classes: the classifier's (one call) for those matched to no
        track (they start one, or join one by ``_same_place``: an image's every parcel, for
        a tracker reset between images) and the views of the whole parcel (along the belt)
        of tracks whose class is not settled. The other views of a track (its class
        settled, or a view cut by the frame's edge: a crop of a part of the parcel, and each
        parcel is seen whole before it is handed over) carry the track's voted class, at
        the detector's score times the mean probability the classifier gave that class, and
        do not vote."""
        out = list(detections)
        matched = {di: self.tracks[ti] for ti, di in pairs}
        todo = [di for di in range(len(out))
                if di not in matched
                or (not matched[di].settled and wholly_in_view(out[di], self._width))]  # fmt: skip
        self._fresh = set()
        if todo:
            for di, d in zip(todo, classify([out[di] for di in todo]), strict=True):
                out[di] = d
                self._fresh.add(id(d))
        carried = {di: t for di, t in matched.items() if id(out[di]) not in self._fresh}
        for di, t in carried.items():
            if not t.class_votes:
                continue  # never classified (it cannot be: its first view was): its own
            d, cid = out[di], _voted(t)
            p = t.class_probs.get(cid, 0.0) / max(1, t.class_counts.get(cid, 0)) or 1.0
            out[di] = replace(d, class_id=cid, class_name=self._name(cid),
                              confidence=d.confidence * p,
                              detector_confidence=d.confidence)  # fmt: skip
        return out

    def _vote(self, t: Track, d: Detection, width: int) -> None:
        """``d``'s class votes for ``t`` (by its score), unless ``t``'s class is settled.
        When this update classifies (``update``'s ``classify``), only the views it
        classified vote, and the track's class may settle now (``_settle``); without it
        every view votes (its detections carry their classes)."""
        if t.settled or (self._classifying and id(d) not in self._fresh):
            return
        t.class_votes[d.class_id] = t.class_votes.get(d.class_id, 0.0) + d.confidence
        p = d.confidence / d.detector_confidence if d.detector_confidence else 1.0
        t.class_probs[d.class_id] = t.class_probs.get(d.class_id, 0.0) + p
        t.class_counts[d.class_id] = t.class_counts.get(d.class_id, 0) + 1
        t.whole_votes += wholly_in_view(d, width)
        if self._classifying:
            t.settled = self._settle(t)

    def _settle(self, t: Track) -> bool:
        """Whether ``t``'s class is settled: ``settle_views`` classified views of the whole
        parcel (a cut one's crop shows a part of it), and the voted class ``settle_share``
        or more of all its votes. A settled parcel is classified no more (each crop and the
        classifier's run cost ~1 ms a parcel a frame)."""
        if not t.class_votes:
            return False
        total = sum(t.class_votes.values())
        return (
            t.whole_votes >= self.settle_views
            and t.class_votes[_voted(t)] >= self.settle_share * total
        )

    def _moved(self, box: np.ndarray, shift: np.ndarray, width: int, height: int) -> np.ndarray:
        """``box`` carried by the belt's ``shift``; a box at the frame's upstream edge is of a
        parcel still entering: it grows from that edge rather than leaves it (moving it whole
        would leave a gap behind it that its next, larger box does not match)."""
        new = box + np.tile(shift, 2)
        for i in self._upstream_sides(box, width, height):
            new[i] = box[i]
        return new

    def _entering(self, box: np.ndarray, width: int, height: int) -> bool:
        """Whether ``box`` lies at the frame's upstream edge (its parcel still entering)."""
        return bool(self._upstream_sides(box, width, height))

    def _upstream_sides(self, box: np.ndarray, width: int, height: int) -> list[int]:
        """Which of ``box``'s sides (indices of x1, y1, x2, y2) lie on the frame's edge the
        belt enters by, for a belt running along either axis, either way."""
        d, m = self.direction, self.EDGE_PX
        sides = []
        if d[0] > 0.1 and box[0] <= m:
            sides.append(0)
        if d[0] < -0.1 and box[2] >= width - m:
            sides.append(2)
        if d[1] > 0.1 and box[1] <= m:
            sides.append(1)
        if d[1] < -0.1 and box[3] >= height - m:
            sides.append(3)
        return sides

    def _lead(self, box: np.ndarray | tuple[float, ...]) -> float:
        """How far along the belt the box's downstream side lies (px)."""
        d = self.direction
        x = box[2] if d[0] >= 0 else box[0]
        y = box[3] if d[1] >= 0 else box[1]
        return float(x * d[0] + y * d[1])

    def _same_lead(self, predicted: np.ndarray, box: tuple[float, ...]) -> bool:
        """Whether ``box``'s leading edge is where the entering track's was carried: within
        a quarter of its length along the belt, and at least ``LEAD_TOLERANCE_PX``. An
        entering parcel's predicted box grows from the frame's edge by the belt's travel, and
        after frames a starved node did not process, it reaches over the parcels that
        entered behind it; only its leading edge tells which box is still its parcel."""
        length = abs(float(np.dot(np.subtract(box[2:], box[:2]), np.abs(self.direction))))
        tol = max(LEAD_TOLERANCE_PX, 0.25 * length)
        return abs(self._lead(predicted) - self._lead(box)) <= tol

    def _wholes(self, detections: list[Detection]) -> list[Detection]:
        """The detections that are not parts of another one of this frame: a box lying
        ``part_of`` or more inside a larger box is dropped (the larger is the parcel)."""
        if len(detections) < 2:
            return detections
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        inside = containment(boxes, boxes)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = []
        for i, d in enumerate(detections):
            larger = area > area[i]
            larger[i] = False
            if not np.any((inside[i] >= self.part_of) & larger):
                keep.append(d)
        return keep

    def _left_view(self, box: np.ndarray, width: int, height: int) -> bool:
        """Wholly out of the frame (by its predicted box): a parcel whose middle has passed
        the edge while it was hidden may still show its tail in the next frame."""
        return bool(box[0] >= width or box[2] <= 0 or box[1] >= height or box[3] <= 0)

    def _same_place(
        self,
        frame: Frame,
        detections: list[Detection],
        matched_d: set[int],
        solid: np.ndarray,
        matched_t: set[int],
    ) -> set[int]:
        """The unmatched detections that lie ``same_place`` or more inside where a track's
        parcel was seen last (its box carried by the belt, not grown from the upstream
        edge): the belt there held that parcel, so such a box is of it, not of a parcel
        new to the view (parcels enter by the upstream edge). A track not matched this frame
        follows it; a matched one takes it as another part of its parcel (a long or
        irregular parcel boxed in two parts: its box is their union). Without this, such a
        box began a second track of the parcel in the middle of the view, both read its
        label, and a label on two tracks routes neither. Returns the detections taken."""
        taken: set[int] = set()
        if not len(solid):
            return taken
        todo = [di for di in range(len(detections)) if di not in matched_d]
        if not todo:
            return taken
        boxes = np.array([detections[di].box for di in todo], np.float64).reshape(-1, 4)
        inside = containment(boxes, solid)
        for k in np.argsort([-detections[di].confidence for di in todo]):
            ti = int(np.argmax(inside[k]))
            if inside[k, ti] < self.same_place:
                continue
            t, d = self.tracks[ti], detections[todo[k]]
            if ti in matched_t and t.current is not None:
                if not self._overlap(t.current, d):
                    continue  # beside its box, not over it: another parcel (or a new one)
                self._hit(t, _union(t.current, d), frame, again=True)
            else:
                matched_t.add(ti)
                self._hit(t, d, frame)
            taken.add(todo[k])
        return taken

    def _overlap(self, a: Detection, b: Detection) -> bool:
        """Whether two boxes overlap along the belt by at least a tenth of the shorter (and
        8 px), and across it at all: two parts of one parcel do; two touching parcels'
        boxes meet at most by the detector's jitter (a box that once spanned two parcels
        would otherwise take the second again each frame)."""
        d = np.abs(self.direction)
        e = np.array([d[1], d[0]])  # across the belt
        lo, hi = np.maximum(a.box[:2], b.box[:2]), np.minimum(a.box[2:], b.box[2:])
        along = float(np.dot(hi - lo, d))
        shorter = min(float(np.dot(np.subtract(x.box[2:], x.box[:2]), d)) for x in (a, b))
        return along >= max(8.0, 0.1 * shorter) and float(np.dot(hi - lo, e)) > 0

    def _keeps_label(self, t: Track, frame: Frame) -> None:
        """The label the track read, in view but not on the box it now follows: the track
        jumped to a neighbour, or the detector boxed a part of the parcel. The label does not
        route while so; a box that holds it again on the next frame was a part (the label
        stays), ``LABEL_OFF_FRAMES`` frames in a row are a jump (refused for good). A label
        carried out of the frame says nothing."""
        w, h = frame.size
        d = t.current
        if d is None or t.label_at is None:
            return
        if not (0 <= t.label_at[0] < w and 0 <= t.label_at[1] < h):
            return
        if holds(d, t.label_at, self.label_margin_px):
            t.label_off = 0
            return
        t.label_off += 1
        if t.label_off >= LABEL_OFF_FRAMES:
            t.label_conflict, t.conflict_why = True, "its box left its label"

    def _hit(self, t: Track, d: Detection, frame: Frame, again: bool = False) -> None:
        """``t`` seen as ``d`` in ``frame`` (``again``: ``d`` replaces this frame's view of
        it, grown by another part of the parcel)."""
        t.box = np.asarray(d.box, np.float64)
        t.seen_box = t.box.copy()
        if again:  # this frame's view of it, grown: its whole view and best view are too
            if t.best is t.current:
                t.best = d
            if t.whole is t.current:
                t.whole, t.whole_count, t.whole_t = t.whole_before
        else:
            t.whole_before = (t.whole, t.whole_count, t.whole_t)
        if wholly_in_view(d, frame.size[0]):
            t.whole, t.whole_count, t.whole_t = d, frame.encoder_count, frame.captured_at
        t.current = d
        if again:
            return
        t.hits += 1
        t.missed = 0
        t.last_seen = frame.captured_at
        self._vote(t, d, frame.size[0])
        if _better(d, t.best):
            t.best = d
            t.encoder_at_best = frame.encoder_count

    def voted_class(self, t: Track) -> str | None:
        """The class the track's votes give so far (what its report will say if nothing
        changes); None before any vote (a track seen only cut by the frame's edge, when the
        tracker classifies: its detection's own class stands)."""
        return self._name(_voted(t)) if t.class_votes else None

    def _name(self, cid: int) -> str:
        return self.names.get(cid, f"class{cid}")

    def _report(self, t: Track) -> ParcelReport:
        cid = _voted(t) if t.class_votes else t.best.class_id  # never classified: its own
        return ParcelReport(
            track_id=t.id,
            class_name=self._name(cid),
            class_id=cid,
            confidence=t.best.confidence,
            detection=t.best,
            label=t.label,
            frames=t.hits,
            first_seen=t.first_seen,
            last_seen=t.last_seen,
            encoder_count=t.encoder_at_best,
            label_certain=t.label_certain,
            whole=t.whole,
            whole_count=t.whole_count,
            whole_t=t.whole_t,
        )

    def refuse_shared_labels(self, frame: Frame | None = None) -> None:
        """A label text held by two live tracks is one symbol seen through two boxes (parcels
        drawn over each other, a box reaching onto a neighbour) or a duplicate: whose it is
        cannot be told, so neither routes on it. Unless the two tracks are one parcel's
        (``_one_parcel``, told by ``frame``'s boxes): they become one track."""
        by_text: dict[str, list[Track]] = {}
        for t in self.tracks:
            if t.label is not None:
                by_text.setdefault(t.label.text, []).append(t)
        for shared in by_text.values():
            if len(shared) == 2 and frame is not None and self._one_parcel(*shared, frame):
                continue
            if len(shared) > 1:
                for t in shared:
                    t.label_conflict, t.conflict_why = True, "on two tracks"

    def _one_parcel(self, a: Track, b: Track, frame: Frame) -> bool:
        """Whether two tracks that read one text are one parcel's, and if so merge them. One
        symbol (read at one place: within its span, at least ``LABEL_TOLERANCE_PX``), on the
        box of this frame that one track follows, the other unseen now (a track that lost
        its parcel, e.g. one still entering whose next box lay off its predicted leading
        edge): the symbol is on the box seen. Or both seen, their boxes overlapping, one
        holding the symbol (the other read it within its crop's margin), and their union no
        longer than 1.5 times the longer box along the belt: a
        long or irregular parcel boxed in two parts (two parcels' boxes reaching over one
        symbol span both parcels: longer; and the cell's association refuses a body that
        reaches two parcels)."""
        if a.label_conflict or b.label_conflict or a.label_at is None or b.label_at is None:
            return False
        assert a.label is not None and b.label is not None
        apart = float(np.hypot(*(a.label_at - b.label_at)))
        if apart > max(LABEL_TOLERANCE_PX, a.label.span, b.label.span):
            return False
        m = self.label_margin_px
        if (a.current is None) != (b.current is None):
            keep, gone = (a, b) if a.current is not None else (b, a)
            assert keep.current is not None
            if not holds(keep.current, gone.label_at, m):  # type: ignore[arg-type]
                return False
            agree = keep.label_agree + gone.label_agree  # read in two frames
            self._merge(keep, gone, agree)
            return True
        if a.current is None or b.current is None:
            return False
        if not (holds(a.current, a.label_at, m) or holds(b.current, a.label_at, m)):
            return False  # (one box may hold it by its read's region only: a crop's margin)
        if containment(np.array([a.current.box]), np.array([b.current.box]))[0, 0] <= 0:
            return False
        union = _union(a.current, b.current)
        along = np.abs(self.direction)
        length = [float(np.dot(np.subtract(d.box[2:], d.box[:2]), along))
                  for d in (a.current, b.current, union)]  # fmt: skip
        if length[2] > 1.5 * max(length[:2]):
            return False
        keep, gone = (a, b) if a.id < b.id else (b, a)
        self._hit(keep, union, frame, again=True)
        self._merge(keep, gone, max(a.label_agree, b.label_agree))  # maybe one frame's reads
        return True

    def _merge(self, keep: Track, gone: Track, agree: int) -> None:
        """``gone`` is ``keep``'s parcel: one track (the older id), never reported twice."""
        keep.id = min(keep.id, gone.id)
        keep.label_agree = agree
        keep.hits += gone.hits
        keep.first_seen = min(keep.first_seen, gone.first_seen)
        keep.label_attempts = max(keep.label_attempts, gone.label_attempts)
        keep.label_whole_attempts = max(keep.label_whole_attempts, gone.label_whole_attempts)
        for k, v in gone.class_votes.items():
            keep.class_votes[k] = keep.class_votes.get(k, 0.0) + v
            keep.class_probs[k] = keep.class_probs.get(k, 0.0) + gone.class_probs.get(k, 0.0)
            keep.class_counts[k] = keep.class_counts.get(k, 0) + gone.class_counts.get(k, 0)
        keep.whole_votes += gone.whole_votes
        keep.settled = self._classifying and self._settle(keep)
        if _better(gone.best, keep.best):
            keep.best, keep.encoder_at_best = gone.best, gone.encoder_at_best
        if keep.whole is None:
            keep.whole, keep.whole_count, keep.whole_t = gone.whole, gone.whole_count, gone.whole_t
        self.tracks.remove(gone)

    def reset(self) -> None:
        """Drop every track without reporting it."""
        self.tracks = []
        self._last = None

    def flush(self) -> list[ParcelReport]:
        """Finish every open track (end of a stream)."""
        done = [self._report(t) for t in self.tracks if t.hits >= self.min_hits]
        self.tracks = []
        return done
