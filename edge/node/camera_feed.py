"""The camera over the belt as a label and class source of the cell node.

A worker thread reads frames (``vision.sources.open_source`` on ``vision.source.uri``: a USB
or CSI camera on a board, ``wpcf://HOST:PORT`` in the simulator), runs the vision pipeline
(detect, track, read labels) and hands each parcel to the node's loop as a ``Sighting``:

* as soon as a track's label is certain (``vision.tracker.Track.label_certain``: a QR,
  DataMatrix or PDF417 read, whose error correction rules out a misread, or a Code 128 read
  alike in two frames; never a read another read contradicted): the label, the class seen
  so far, at the frame's encoder count and capture time, with the parcel's body on the belt.
  Early, so the brain has time before the decision point;
* when a track ends without a certain label: its class only (the parcel keeps waiting for the
  scanner, or goes to reject at the decision point).

The body is the parcel's box from its corner furthest along the belt (``position_mm``, the
leading edge) back to the nearest (``extent_mm``), mapped to belt mm by the vision calibration
(a homography) and moved onto cell coordinates by ``camera.offset_mm``. The cell matches the
body's middle to the parcel the induction eye measured, or to none (``match_body``).
Sizes are not routed on: the cell's size is (length, width, height) and a camera looking down
does not measure height (a made-up height would satisfy a ``max_height_mm`` rule). The
measured length x width goes along as ``measured_mm``, shown in the parcel record's story.

The camera is the safety device ``camera`` (policy ``degrade`` by default): up while frames
flow, lost when the stream drops or stays silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.cell.events import Sighting
from edge.cell.wiring import CameraBinding
from edge.node.camera_worker import CameraWorker, Post, rate_gate
from vision.config import VisionConfig
from vision.detections import Detection
from vision.handover import Handover
from vision.measure import Calibration

if TYPE_CHECKING:
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.node.camera")

__all__ = ["CameraConfigError", "CameraFeed", "rate_gate", "start_camera"]


class CameraConfigError(ValueError):
    """The camera cannot place parcels on the belt with this config."""


class BeltPlacer:
    """Image pixels -> cell belt mm (leading edge of a detection)."""

    def __init__(self, calibration: Calibration, offset_mm: float) -> None:
        self.calibration = calibration
        self.offset_mm = offset_mm

    def leading_edge_mm(self, det: Detection) -> float:
        return self.body_mm(det)[0]

    def size_mm(self, det: Detection) -> tuple[float, float]:
        """Length and width on the belt plane, rounded to the mm (for the record's story)."""
        size = self.calibration.measure(det)
        return round(size.length_mm), round(size.width_mm)

    def body_mm(self, det: Detection) -> tuple[float, float]:
        """The detection's leading edge on the belt (mm) and its extent back from there."""
        corners = self.calibration.to_mm(np.asarray(det.corners(), np.float64))
        lead, back = float(corners[:, 0].max()), float(corners[:, 0].min())
        return lead + self.offset_mm, lead - back


class CameraFeed(CameraWorker):
    """The diverter's camera (``CameraWorker``): each processed frame's sightings go to
    ``feed`` on the node's loop."""

    def __init__(
        self,
        binding: CameraBinding,
        vision: VisionConfig,
        feed: Callable[[Sighting], None],
        state: Callable[[bool, str], None],
    ) -> None:
        if vision.source is None:
            raise CameraConfigError("cell.camera: the vision section has no source.uri")
        if vision.calibration is None:
            raise CameraConfigError(
                "cell.camera: vision.calibration is missing; without it a parcel cannot be "
                "placed on the belt (give >= 4 reference points, pixel -> belt mm)"
            )
        super().__init__(
            vision,
            state,
            name=f"camera {binding.name}",
            max_fps=binding.max_fps,
            stats=("labels", "unlabelled", "uncertain", "repeated"),
        )
        self.binding = binding
        self.feed = feed
        self.placer = BeltPlacer(Calibration.from_config(vision.calibration), binding.offset_mm)
        # which parcels a frame hands over, from which view: the rule the arm shares
        self.handover = Handover(f"camera {binding.name}")
        self.capture: Any = None  # wolfpack vision capture's hook (edge/node/vision_capture.py)

    def processed(self, result: FrameResult, pipeline: Any, post: Post) -> None:
        if self.capture is not None:  # after the timing: capture is not the pipeline
            self.capture.observe(result, pipeline)
        for sighting in self.sightings(result):
            post(self.feed, sighting)

    def closed(self) -> None:
        if self.capture is not None:
            self.capture.close()

    def sightings(self, result: FrameResult) -> list[Sighting]:
        """The sightings one processed frame gives (``vision.handover``, the rule the arm
        shares): a label as soon as it is certain, the class alone when a track ends without
        one, the body from the track's latest view with the whole parcel in the frame."""
        out = [
            self._sighting(h.detection, h.count, h.t, h.label, h.class_name)
            for h in self.handover.select(result)
        ]
        for k in ("labels", "unlabelled", "uncertain", "repeated"):
            self.stats[k] = float(self.handover.stats[k])
        return out

    def _sighting(
        self, det: Detection, count: int, t: float, label: str | None, class_name: str
    ) -> Sighting:
        lead, extent = self.placer.body_mm(det)
        return Sighting(
            self.binding.name,
            count,
            t,
            lead,
            label=label,
            class_name=class_name,
            extent_mm=extent,
            measured_mm=self.placer.size_mm(det),
        )


def start_camera(node: Any) -> CameraFeed:
    """Start the camera task of a ``CellNode`` whose cell has a camera (``cell.camera``)."""
    binding, vision = node.cell.camera, node.board.vision
    if vision is None:
        raise CameraConfigError("cell.camera: the board has no vision section")

    def feed(sighting: Sighting) -> None:
        node.counters["camera_sightings"] += 1
        if sighting.label is not None:
            node.counters["camera_labels"] += 1
        node.feed(sighting)

    def state(up: bool, why: str) -> None:
        if node._closing:
            return
        now = time.monotonic()
        if up and "camera" not in node.safety.up:
            node.apply_safety(node.safety.device_up("camera", now))
        elif not up and "camera" in node.safety.up:
            node.apply_safety(node.safety.device_lost("camera", why, now))

    camera = CameraFeed(binding, vision, feed, state)
    from edge.node.vision_capture import attach

    attach(node, camera)
    node.supervisor.start("camera", camera.run)
    return camera
