"""The belt camera as the arm's eyes: the existing vision pipeline, its parcels on the belt.

As the diverter's camera feed (``edge/node/camera_feed.py``), a worker thread reads frames
(``vision.sources.open_source`` on ``vision.source.uri``: a camera on a board,
``wpcf://HOST:PORT`` in the simulator), runs the pipeline (detect, track, read labels) and
hands each parcel to the node's loop. The arm needs more than a leading edge: where on the
belt the parcel's top centre is (x along, y across), its footprint and orientation, so the
pick can be aimed. Which parcels a frame hands over, and from which view, is the diverter's
rule (``vision.handover.Handover``): each parcel once, as soon as its label is certain or at
the end of its track without one, placed from its latest view with the whole parcel in the
frame (a box cut by the frame's edge put the cup up to 50 mm off the face's centre, and
parcels whose best view was cut were never handed over at all: no record, and a parcel the
arm did not know of on the belt, which carried loads were dragged into). For the arm, each
parcel is handed over early too, once seen whole (``final`` False: its place on the belt, so
the arm knows every parcel it moves over while their tracks go on; the label may follow).

Each sighting carries the encoder count and capture time of its view's frame: the conveyor
tracking in the arm core moves it on by the belt's encoder, never by a clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.node.camera_worker import CameraWorker, Post
from vision.config import VisionConfig
from vision.detections import Detection
from vision.handover import Handover
from vision.measure import Calibration

if TYPE_CHECKING:
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.arm.camera")


ARM_CAMERA_NICE = 0  # nice steps below the node (CameraWorker's ``nice``)


class ArmCameraError(ValueError):
    """The camera cannot place parcels on the belt with this config."""


@dataclass(frozen=True)
class BeltParcel:
    """One parcel seen on the belt, in belt millimetres at the frame's encoder count."""

    track_id: int
    encoder_count: int
    captured_at: float
    x_mm: float  # the footprint's centre along the belt (cell coordinates)
    y_mm: float  # across the belt
    length_mm: float
    width_mm: float
    yaw_deg: float  # the length axis from the belt's direction, (-90, 90]
    class_name: str
    confidence: float
    label: str | None = None
    final: bool = True  # False: handed over early for its place; its label may follow


class BeltPlacer:
    """Image pixels -> belt mm through the vision calibration, moved onto the cell's belt
    coordinates by ``offset_mm`` (x) and ``offset_y_mm`` (y)."""

    def __init__(
        self, calibration: Calibration, offset_mm: float = 0.0, offset_y_mm: float = 0.0
    ) -> None:
        self.calibration = calibration
        self.offset = np.array([offset_mm, offset_y_mm], np.float64)

    def place(self, det: Detection) -> tuple[float, float, float, float, float]:
        """(x, y, length, width, yaw) of the detection's footprint on the belt."""
        c = self.calibration.to_mm(np.asarray(det.corners(), np.float64)) + self.offset
        centre = c.mean(axis=0)
        a, b = c[1] - c[0], c[3] - c[0]  # two sides from corner 0
        la, lb = float(np.hypot(*a)), float(np.hypot(*b))
        side = a if la >= lb else b
        yaw = math.degrees(math.atan2(side[1], side[0]))
        if yaw > 90:
            yaw -= 180
        elif yaw <= -90:
            yaw += 180
        return float(centre[0]), float(centre[1]), max(la, lb), min(la, lb), yaw


class ArmCamera(CameraWorker):
    """The arm's camera (``edge.node.camera_worker.CameraWorker``, the diverter's worker):
    each processed frame's parcels go to ``feed`` and its (encoder count, capture time) to
    ``frame`` on the node's loop."""

    def __init__(
        self,
        vision: VisionConfig,
        feed: Callable[[BeltParcel], None],
        state: Callable[[bool, str], None],
        *,
        offset_mm: float = 0.0,
        offset_y_mm: float = 0.0,
        max_fps: float = 10.0,
        frame: Callable[[int, float], None] | None = None,
    ) -> None:
        if vision.source is None:
            raise ArmCameraError("vision.source: the arm's camera needs a source.uri")
        if vision.calibration is None:
            raise ArmCameraError(
                "vision.calibration is missing; without it a parcel cannot be placed on the "
                "belt for a pick (give >= 4 reference points, pixel -> belt mm)"
            )
        # not real-time (the arm's motion stream, the core and the MCU link are, on a board:
        # they preempt it), but at the node's nice value: niced 10 further, on this shared
        # machine the camera lost to nice-19 training jobs (54 ms a frame instead of 8, gaps
        # of 1.8 s: the core called it silent 16 times a run and picked nothing meanwhile)
        super().__init__(vision, state, name="arm camera", max_fps=max_fps, nice=ARM_CAMERA_NICE)
        self.feed = feed
        self.frame = frame  # each processed frame's (encoder count, capture time)
        self.placer = BeltPlacer(
            Calibration.from_config(vision.calibration), offset_mm, offset_y_mm
        )
        # every parcel early (seen whole in min_frames frames), for its place on the belt
        self.handover = Handover("arm camera", early=vision.tracker.min_frames)

    def processed(self, result: FrameResult, pipeline: Any, post: Post) -> None:
        count = result.frame.encoder_count
        if self.frame is not None and count is not None:
            post(self.frame, count, result.frame.captured_at)
        for parcel in self.parcels(result):
            post(self.feed, parcel)

    def parcels(self, result: FrameResult) -> list[BeltParcel]:
        """The parcels one processed frame hands over (``vision.handover``), on the belt."""
        out = []
        for h in self.handover.select(result):
            x, y, length, width, yaw = self.placer.place(h.detection)
            out.append(BeltParcel(h.track_id, h.count, h.t, x, y, length, width, yaw,
                                  h.class_name, float(h.detection.confidence), h.label,
                                  h.final))  # fmt: skip
        return out
