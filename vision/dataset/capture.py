"""Which frames a node keeps for labelling (a pure policy), and where it keeps them (a store
with a size cap).

A site's model improves most from the frames it finds hard, so the policy keeps:

* ``label_conflict``: two parcels in view carry the same label text, or one parcel's reads
  gave two texts (one read is wrong);
* ``no_read``: a parcel stayed fully in view for ``no_read_frames`` processed frames and no
  label was read (a label may be there that the reader missed; or the parcel has none);
* ``low_confidence``: a parcel's confidence (the detector's score times the class
  probability) is under ``low_confidence``: the model is unsure of it or of its class;
* ``sampled``: a share ``sample_share`` of the other frames, so that easy frames are in the
  set too and a model trained on it is not skewed to the hard ones.

Each hard parcel triggers a capture once (not on each of its frames), and at most one frame
in ``min_gap_frames`` is kept, so one stuck parcel cannot fill the disk. The policy is a pure
core: facts in, a reason (or None) out; no I/O, no clock.

The store writes JPEG frames and the COCO annotations (``coco.py``) under one directory,
drops the oldest frames when the size cap or the image cap is reached (and counts them), and
never raises into the camera loop: a full disk is counted as ``failed``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.dataset.coco import ANNOTATIONS, IMAGES, Annotation, DatasetError, Sample, read_coco
from vision.dataset.coco import write_coco as _write_coco

STATUS = "capture-status.json"
REASONS = ("label_conflict", "no_read", "low_confidence", "sampled")


@dataclass(frozen=True)
class CaptureSettings:
    low_confidence: float = 0.5
    sample_share: float = 0.02
    no_read_frames: int = 4
    min_gap_frames: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.low_confidence <= 1:
            raise ValueError(f"low_confidence must be in [0, 1], got {self.low_confidence}")
        if not 0 <= self.sample_share <= 1:
            raise ValueError(f"sample_share must be in [0, 1], got {self.sample_share}")
        if self.no_read_frames < 1 or self.min_gap_frames < 0:
            raise ValueError("no_read_frames must be >= 1 and min_gap_frames >= 0")


@dataclass(frozen=True)
class ParcelFacts:
    """What the policy needs of one parcel in one frame."""

    track_id: int
    confidence: float
    label: str | None  # the label text read so far, None if none
    inside: bool  # fully in view (a label could be read)
    conflict: bool = False  # its label reads disagree (the tracker saw two texts)


@dataclass
class CapturePolicy:
    settings: CaptureSettings = field(default_factory=CaptureSettings)
    _unread_frames: dict[int, int] = field(default_factory=dict)
    _done: set[tuple[str, int]] = field(default_factory=set)  # (reason, track) captured
    _last_capture: int | None = None
    _ordinary: int = 0
    _sampled: int = 0

    def decide(self, index: int, parcels: list[ParcelFacts]) -> str | None:
        """The reason to keep frame ``index`` (increasing), or None."""
        s = self.settings
        live = {p.track_id for p in parcels}
        self._unread_frames = {k: v for k, v in self._unread_frames.items() if k in live}
        self._done = {(r, t) for r, t in self._done if t in live}
        hard: list[tuple[int, str, int]] = []  # (priority, reason, track)
        by_label: dict[str, list[int]] = {}
        for p in parcels:
            if p.label is not None:
                by_label.setdefault(p.label, []).append(p.track_id)
            elif p.inside:
                n = self._unread_frames[p.track_id] = self._unread_frames.get(p.track_id, 0) + 1
                if n >= s.no_read_frames:
                    hard.append((1, "no_read", p.track_id))
            if p.confidence < s.low_confidence:
                hard.append((2, "low_confidence", p.track_id))
        for tracks in by_label.values():
            if len(tracks) > 1:
                hard.extend((0, "label_conflict", t) for t in tracks)
        hard.extend((0, "label_conflict", p.track_id) for p in parcels if p.conflict)
        hard = sorted(h for h in hard if (h[1], h[2]) not in self._done)
        in_gap = self._last_capture is not None and index - self._last_capture < s.min_gap_frames
        if hard:
            if in_gap:
                return None  # still hard at the next allowed frame, unless it has left
            reason = hard[0][1]
            self._done.update((r, t) for _, r, t in hard if r == reason)
            self._last_capture = index
            return reason
        self._ordinary += 1
        if in_gap or s.sample_share <= 0:
            return None
        # deterministic sampling: the share of ordinary frames kept so far stays at the target
        if self._sampled < self._ordinary * s.sample_share:
            self._sampled += 1
            self._last_capture = index
            return "sampled"
        return None


@dataclass(frozen=True)
class StoreLimits:
    max_bytes: int = 512 * 2**20
    max_images: int = 5000
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_images < 1 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("max_bytes and max_images must be >= 1, jpeg_quality in 1..100")


class CaptureStore:
    """A capture directory with a size cap; the oldest frames go first. Not thread-safe: one
    writer (the camera thread)."""

    def __init__(
        self,
        root: str | Path,
        classes: tuple[str, ...],
        limits: StoreLimits | None = None,
        flush_every: int = 10,
    ) -> None:
        self.root = Path(root)
        self.classes = classes
        self.limits = limits or StoreLimits()
        self.flush_every = flush_every
        (self.root / IMAGES).mkdir(parents=True, exist_ok=True)
        self._samples: OrderedDict[str, tuple[Sample, int]] = OrderedDict()
        self.counts: dict[str, int] = {"saved": 0, "dropped": 0, "failed": 0}
        self.by_reason: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.last_error: str | None = None
        self._next = 0
        self._dirty = 0
        self._resume()

    @property
    def images(self) -> int:
        return len(self._samples)

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self._samples.values())

    def save(
        self,
        jpeg: bytes,
        width: int,
        height: int,
        annotations: list[Annotation],
        meta: dict[str, Any],
    ) -> str | None:
        """Keep one encoded frame with its pre-labels; the file name, or None on a disk error."""
        name = f"{IMAGES}/{self._next:08d}.jpg"
        self._next += 1
        while self._samples and (
            self.bytes + len(jpeg) > self.limits.max_bytes
            or len(self._samples) >= self.limits.max_images
        ):
            self._drop_oldest()
        if len(jpeg) > self.limits.max_bytes:
            self.counts["failed"] += 1
            self.last_error = f"a frame of {len(jpeg)} bytes is over the cap"
            return None
        try:
            (self.root / name).write_bytes(jpeg)
        except OSError as exc:
            self.counts["failed"] += 1
            self.last_error = f"{self.root / name}: {exc.strerror or exc}"
            return None
        self._samples[name] = (Sample(name, width, height, tuple(annotations), meta), len(jpeg))
        self.counts["saved"] += 1
        reason = meta.get("reason")
        if reason in self.by_reason:
            self.by_reason[reason] += 1
        self._dirty += 1
        if self._dirty >= self.flush_every:
            self.flush()
        return name

    def flush(self) -> None:
        """Write the COCO file and the status (atomically); errors are counted, not raised."""
        try:
            _write_coco(self.root, [s for s, _ in self._samples.values()], self.classes)
            self._dirty = 0
            status = {
                "images": self.images,
                "bytes": self.bytes,
                "max_bytes": self.limits.max_bytes,
                "max_images": self.limits.max_images,
                **self.counts,
                "by_reason": self.by_reason,
                "last_error": self.last_error,
            }
            tmp = self.root / f".{STATUS}.tmp"
            tmp.write_text(json.dumps(status) + "\n")
            os.replace(tmp, self.root / STATUS)
        except OSError as exc:
            self.counts["failed"] += 1
            self.last_error = f"{self.root}: {exc.strerror or exc}"

    def _drop_oldest(self) -> None:
        name, _ = self._samples.popitem(last=False)
        with contextlib.suppress(FileNotFoundError):
            (self.root / name).unlink()
        self.counts["dropped"] += 1

    def _resume(self) -> None:
        """Continue a set written before (a restarted node): keep its annotated frames, in
        name order, and remove frames that never made it into the annotations file."""
        known: set[str] = set()
        if (self.root / ANNOTATIONS).is_file():
            ds = read_coco(self.root)  # a broken file is refused, never overwritten
            if ds.classes != self.classes:
                raise DatasetError(
                    f"{self.root / ANNOTATIONS}: its classes {list(ds.classes)} are not the "
                    f"model's {list(self.classes)}; capture into another directory"
                )
            for s in sorted(ds.samples, key=lambda s: s.file_name):
                p = self.root / s.file_name
                if p.is_file():
                    self._samples[s.file_name] = (s, p.stat().st_size)
                    known.add(s.file_name)
        for p in sorted((self.root / IMAGES).glob("*.jpg")):
            if f"{IMAGES}/{p.name}" not in known:
                with contextlib.suppress(OSError):
                    p.unlink()
            elif p.stem.isdigit():
                self._next = max(self._next, int(p.stem) + 1)
