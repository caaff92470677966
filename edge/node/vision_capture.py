"""The node's capture hook: keeps the camera frames a site's model finds hard, for labelling.

``wolfpack vision capture --node DIR --out DATA ...`` writes a request file,
``DIR/vision-capture.json`` (beside the node's health file); the camera thread looks for it
at most once a second, and while it is there (and not expired) every processed frame goes
through the capture policy (``vision.dataset.capture``): hard frames and a sampled share of
the rest are written to ``DATA`` as JPEG with the model's detections as COCO pre-labels,
under the request's size cap. Removing the file (``--stop``) or its ``until`` passing ends
the capture and flushes the annotations. Nothing is sent anywhere: the frames stay in
``DATA`` on the board until someone copies them.

A capture error (a full disk, a directory that cannot be written) never stops the camera:
it is counted in ``DATA/capture-status.json`` and logged once.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from vision.dataset.capture import (
    CapturePolicy,
    CaptureSettings,
    CaptureStore,
    ParcelFacts,
    StoreLimits,
)
from vision.dataset.coco import Annotation, DatasetError

if TYPE_CHECKING:
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.node.capture")

REQUEST_NAME = "vision-capture.json"


class CaptureRequestError(ValueError):
    """The request file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class CaptureRequest:
    out: Path
    limits: StoreLimits
    settings: CaptureSettings
    until: float | None = None  # UNIX time at which capture stops, None: until stopped

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "max_bytes": self.limits.max_bytes,
            "max_images": self.limits.max_images,
            "jpeg_quality": self.limits.jpeg_quality,
            "low_confidence": self.settings.low_confidence,
            "sample_share": self.settings.sample_share,
            "no_read_frames": self.settings.no_read_frames,
            "min_gap_frames": self.settings.min_gap_frames,
            "until": self.until,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> CaptureRequest:
        if not isinstance(raw, dict) or not isinstance(raw.get("out"), str) or not raw["out"]:
            raise CaptureRequestError(f"{where}: expected an object with 'out' (a directory)")
        try:
            limits = StoreLimits(
                int(raw.get("max_bytes", StoreLimits.max_bytes)),
                int(raw.get("max_images", StoreLimits.max_images)),
                int(raw.get("jpeg_quality", StoreLimits.jpeg_quality)),
            )
            settings = CaptureSettings(
                float(raw.get("low_confidence", CaptureSettings.low_confidence)),
                float(raw.get("sample_share", CaptureSettings.sample_share)),
                int(raw.get("no_read_frames", CaptureSettings.no_read_frames)),
                int(raw.get("min_gap_frames", CaptureSettings.min_gap_frames)),
            )
            until = raw.get("until")
            until = None if until is None else float(until)
        except (TypeError, ValueError, OverflowError) as exc:  # int(inf) overflows
            raise CaptureRequestError(f"{where}: {exc}") from exc
        return cls(Path(raw["out"]), limits, settings, until)


def request_path(node_dir: Path) -> Path:
    return Path(node_dir) / REQUEST_NAME


def facts(result: FrameResult, conflicted: frozenset[int] = frozenset()) -> list[ParcelFacts]:
    """The policy's view of one processed frame; ``conflicted``: tracks whose label reads
    disagree (``vision.tracker.Track.label_conflict``)."""
    w, h = result.frame.size
    out = []
    for p in result.parcels:
        x1, y1, x2, y2 = p.detection.box
        out.append(
            ParcelFacts(
                p.track_id,
                float(p.detection.confidence),
                p.label.text if p.label is not None else None,
                x1 > 2 and y1 > 2 and x2 < w - 2 and y2 < h - 2,
                p.track_id in conflicted,
            )
        )
    return out


def conflicted_tracks(pipeline: Any) -> frozenset[int]:
    """The tracks of ``pipeline`` whose label reads gave two texts."""
    tracks = getattr(getattr(pipeline, "tracker", None), "tracks", ())
    return frozenset(t.id for t in tracks if getattr(t, "label_conflict", False))


def prelabels(result: FrameResult) -> list[Annotation]:
    """The model's detections of the frame as COCO pre-labels (oriented corners, score,
    the label text read so far)."""
    return [
        Annotation(
            p.detection.class_name,
            tuple((float(x), float(y)) for x, y in p.detection.corners()),
            float(p.detection.confidence),
            p.label.text if p.label is not None else None,
        )
        for p in result.parcels
    ]


class Capture:
    """One running capture: policy + store. Called from the camera thread only."""

    def __init__(self, request: CaptureRequest, classes: tuple[str, ...]) -> None:
        self.request = request
        self.policy = CapturePolicy(request.settings)
        self.store = CaptureStore(request.out, classes, request.limits)
        self._warned = False

    def observe(self, result: FrameResult, conflicted: frozenset[int] = frozenset()) -> str | None:
        """Keep the frame if the policy says so; the reason, or None."""
        reason = self.policy.decide(result.frame.index, facts(result, conflicted))
        if reason is None:
            return None
        ok, jpeg = cv2.imencode(
            ".jpg", result.frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.request.limits.jpeg_quality]
        )
        if not ok:
            self.store.counts["failed"] += 1
            return None
        h, w = result.frame.image.shape[:2]
        meta: dict[str, Any] = {
            "reason": reason,
            "frame": result.frame.index,
            "captured_at": round(result.frame.captured_at, 4),  # monotonic s, as the frame's
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # wall clock, UTC
        }
        if result.frame.encoder_count is not None:
            meta["encoder_count"] = int(result.frame.encoder_count)
        name = self.store.save(jpeg.tobytes(), w, h, prelabels(result), meta)
        if name is None and not self._warned:
            self._warned = True
            log.warning("vision capture: %s (frames are counted as failed)", self.store.last_error)
        return reason if name is not None else None

    def close(self) -> None:
        self.store.flush()


class CaptureHook:
    """Starts and stops a ``Capture`` as the request file appears, changes and goes."""

    def __init__(self, request_file: Path, classes: tuple[str, ...], poll_s: float = 1.0) -> None:
        self.request_file = request_file
        self.classes = classes
        self.poll_s = poll_s
        self.capture: Capture | None = None
        self._seen: tuple[float, int] | None = None  # mtime, size of the request read
        self._next_poll = 0.0
        self.error: str | None = None

    def observe(self, result: FrameResult, conflicted: frozenset[int] = frozenset()) -> None:
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_s
            self._poll()
        if self.capture is not None:
            until = self.capture.request.until
            if until is not None and time.time() >= until:
                self._stop("its time is up")
                return
            self.capture.observe(result, conflicted)

    def close(self) -> None:
        self._stop("the camera stopped")

    def _poll(self) -> None:
        try:
            st = self.request_file.stat()
        except OSError:
            self._seen = None
            self._stop("the request was removed")
            return
        key = (st.st_mtime, st.st_size)
        if key == self._seen:
            return
        self._seen = key
        self._stop("a new request")
        try:
            raw = json.loads(self.request_file.read_text())
            req = CaptureRequest.from_json(raw, str(self.request_file))
            self.capture = Capture(req, self.classes)
            self.error = None
            log.info(
                "vision capture: into %s (at most %d MB, %d images)",
                req.out,
                req.limits.max_bytes // 2**20,
                req.limits.max_images,
            )
        except (OSError, ValueError, DatasetError) as exc:
            self.error = str(exc)
            log.warning("vision capture not started: %s", exc)

    def _stop(self, why: str) -> None:
        if self.capture is None:
            return
        self.capture.close()
        log.info(
            "vision capture into %s ended (%s): %s",
            self.capture.store.root,
            why,
            self.capture.store.counts,
        )
        self.capture = None


def attach(node: Any, camera: Any) -> None:
    """Give the camera feed of ``node`` a capture hook, beside its health file (a node run
    without one, ``wolfpack run FILE`` without ``--health-file``, cannot be asked to
    capture)."""
    host = getattr(node, "host", None)  # the runtime (edge.runtime.node.Node) once bound
    health = getattr(host, "health_file", None) or getattr(node, "health_file", None)
    if health is None:
        return
    camera.capture = _LazyHook(Path(health).with_name(REQUEST_NAME))


class _LazyHook:
    """Learns the classes from the first processed frame's detector (the pipeline is built
    in the camera thread)."""

    def __init__(self, request_file: Path) -> None:
        self.request_file = request_file
        self.hook: CaptureHook | None = None

    def observe(self, result: FrameResult, pipeline: Any) -> None:
        if self.hook is None:
            names = pipeline.detector.names
            self.hook = CaptureHook(self.request_file, tuple(names[i] for i in sorted(names)))
        self.hook.observe(result, conflicted_tracks(pipeline))

    def close(self) -> None:
        if self.hook is not None:
            self.hook.close()
