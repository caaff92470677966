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

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.node.camera_feed import rate_gate
from vision.config import VisionConfig
from vision.detections import Detection
from vision.handover import Handover
from vision.measure import Calibration

if TYPE_CHECKING:
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.arm.camera")


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


class ArmCamera:
    """Runs as a supervised task; the pipeline in a daemon thread. ``feed`` and ``state`` are
    called on the node's loop."""

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
        self.vision = vision
        self.feed = feed
        self.frame = frame  # each processed frame's (encoder count, capture time)
        self.state = state
        self.max_fps = max_fps
        self.placer = BeltPlacer(
            Calibration.from_config(vision.calibration), offset_mm, offset_y_mm
        )
        self.stats: dict[str, float] = dict.fromkeys(
            ("frames", "processed", "skipped", "process_ms_mean", "lag_ms_max", "gap_ms_max"),
            0.0,
        )  # lag: a frame's age when processed; gap: the longest wait between two processed
        # every parcel early (seen whole in min_frames frames), for its place on the belt
        self.handover = Handover("arm camera", early=vision.tracker.min_frames)
        self._last_processed: float | None = None  # perf_counter of the last processed frame

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()
        holder: dict[str, Any] = {}

        def post(fn: Callable[..., Any], *args: Any) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)

        def finish(exc: BaseException | None) -> None:
            if not done.done():
                done.set_result(None) if exc is None else done.set_exception(exc)

        def work() -> None:
            try:
                self._work(post, stop, holder)
                post(finish, None)
            except BaseException as exc:  # to the supervisor, on the loop
                post(finish, exc)

        threading.Thread(target=work, name="arm-camera", daemon=True).start()
        try:
            await done
        finally:
            stop.set()
            source = holder.get("source")
            if source is not None:
                source.close()
            self.state(False, "camera task stopped")

    def _work(
        self, post: Callable[..., None], stop: threading.Event, holder: dict[str, Any]
    ) -> None:
        from vision.pipeline import Pipeline
        from vision.sources import open_source
        from vision.wpcf import WpcfSource

        pipeline = Pipeline.from_config(self.vision)
        src = self.vision.source
        assert src is not None
        source = open_source(src.uri, src.width, src.height, src.fps)
        holder["source"] = source
        if isinstance(source, WpcfSource):

            def on_state(up: bool, why: str) -> None:
                if not up:
                    pipeline.reset()
                post(self.state, up, why)

            source.on_state = on_state
        else:
            post(self.state, True, f"{source.name}: opened")
        min_gap = 1.0 / self.max_fps
        due: float | None = None  # at most max_fps on average: a grid, not a least gap
        try:
            for frame in source:
                if stop.is_set():
                    break
                self.stats["frames"] += 1
                take, due = rate_gate(due, frame.captured_at, min_gap)
                if not take or frame.encoder_count is None:  # no count: it cannot be placed
                    self.stats["skipped"] += 1
                    continue
                t0 = time.perf_counter()
                self._lag_and_gap(frame.captured_at, t0)
                result = pipeline.process(frame)
                ms = (time.perf_counter() - t0) * 1e3
                n = self.stats["processed"] = self.stats["processed"] + 1
                self.stats["process_ms_mean"] += (ms - self.stats["process_ms_mean"]) / n
                if self.frame is not None:
                    post(self.frame, frame.encoder_count, frame.captured_at)
                for parcel in self.parcels(result):
                    post(self.feed, parcel)
        finally:
            source.close()
        if not stop.is_set():
            raise ConnectionError(f"camera {source.name}: the frame source ended")

    def _lag_and_gap(self, captured_at: float, now: float) -> None:
        """How old a frame is when its processing starts (a worker that falls behind reads
        the socket's backlog: the core calls a camera whose frames are over ``silent_ms``
        old silent), and the longest gap between two processed frames."""
        s = self.stats
        s["lag_ms_max"] = max(s["lag_ms_max"], (time.monotonic() - captured_at) * 1e3)
        if self._last_processed is not None:
            s["gap_ms_max"] = max(s["gap_ms_max"], (now - self._last_processed) * 1e3)
        self._last_processed = now

    def parcels(self, result: FrameResult) -> list[BeltParcel]:
        """The parcels one processed frame hands over (``vision.handover``), on the belt."""
        out = []
        for h in self.handover.select(result):
            x, y, length, width, yaw = self.placer.place(h.detection)
            out.append(BeltParcel(h.track_id, h.count, h.t, x, y, length, width, yaw,
                                  h.class_name, float(h.detection.confidence), h.label,
                                  h.final))  # fmt: skip
        return out
