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

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.cell.events import Sighting
from edge.cell.wiring import CameraBinding
from vision.config import VisionConfig
from vision.detections import Detection
from vision.handover import Handover
from vision.measure import Calibration

if TYPE_CHECKING:
    from vision.pipeline import FrameResult

log = logging.getLogger("wolfpack.node.camera")

Post = Callable[..., Any]


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


class CameraFeed:
    """Runs in a supervised task; the pipeline in a daemon thread. ``feed`` and ``state`` are
    called on the node's loop (through ``call_soon_threadsafe``)."""

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
        self.binding = binding
        self.vision = vision
        self.feed = feed
        self.state = state
        self.placer = BeltPlacer(Calibration.from_config(vision.calibration), binding.offset_mm)
        self.stats: dict[str, float] = dict.fromkeys(
            (
                "frames",
                "processed",
                "skipped",
                "labels",
                "unlabelled",
                "uncertain",
                "repeated",
                "stale",
                "process_ms_mean",
            ),
            0.0,
        )
        # which parcels a frame hands over, from which view: the rule the arm shares
        self.handover = Handover(f"camera {binding.name}")
        self.capture: Any = None  # wolfpack vision capture's hook (edge/node/vision_capture.py)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()
        holder: dict[str, Any] = {}

        def post(fn: Callable[..., Any], *args: Any) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)

        def finish(exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def work() -> None:
            try:
                self._work(post, stop, holder)
                post(finish, None)
            except BaseException as exc:  # reported to the supervisor on the loop
                post(finish, exc)

        thread = threading.Thread(target=work, name="camera", daemon=True)
        thread.start()
        try:
            await done
        finally:
            stop.set()
            source = holder.get("source")
            if source is not None:
                source.close()
            self.state(False, "camera task stopped")

    # ---- the worker thread -----------------------------------------------------------------------
    def _work(self, post: Post, stop: threading.Event, holder: dict[str, Any]) -> None:
        from vision.pipeline import Pipeline

        _below_the_node()  # before the pipeline: its inference threads inherit it
        from vision.sources import LatestFrames, OpenCVCapture, open_source
        from vision.wpcf import WpcfSource

        pipeline = Pipeline.from_config(self.vision)
        src_cfg = self.vision.source
        assert src_cfg is not None
        opened = open_source(src_cfg.uri, src_cfg.width, src_cfg.height, src_cfg.fps)
        broken = threading.Event()  # the stream dropped: the next frame is unrelated to the last
        if isinstance(opened, WpcfSource):

            def on_state(up: bool, why: str) -> None:
                if not up:
                    broken.set()  # the pipeline is reset on this thread, not the reader's
                post(self.state, up, why)

            opened.on_state = on_state
        else:
            post(self.state, True, f"{opened.name}: opened")
        # a live camera: the newest frame, never one that waited behind a slow frame
        live = isinstance(opened, WpcfSource) or (
            isinstance(opened, OpenCVCapture) and not Path(src_cfg.uri).is_file()
        )
        source = LatestFrames(opened) if live else opened
        holder["source"] = source
        min_gap = 1.0 / self.binding.max_fps
        due: float | None = None  # at most max_fps on average: a grid, not a least gap
        log.info("camera %s: reading %s (at most %g frames/s)", self.binding.name, source.name,
                 self.binding.max_fps)  # fmt: skip
        try:
            for frame in source:
                if stop.is_set():
                    break
                if broken.is_set():
                    broken.clear()
                    pipeline.reset()
                self.stats["frames"] += 1
                if isinstance(source, LatestFrames):
                    self.stats["stale"] = float(source.dropped)  # replaced before taken
                take, due = rate_gate(due, frame.captured_at, min_gap)
                if not take:
                    self.stats["skipped"] += 1
                    continue
                if frame.encoder_count is None:
                    self.stats["skipped"] += 1
                    continue  # no belt position: a sighting could not be placed
                start = time.perf_counter()
                result = pipeline.process(frame)
                ms = (time.perf_counter() - start) * 1e3
                n = self.stats["processed"] = self.stats["processed"] + 1
                self.stats["process_ms_mean"] += (ms - self.stats["process_ms_mean"]) / n
                if self.capture is not None:  # after the timing: capture is not the pipeline
                    self.capture.observe(result, pipeline)
                for sighting in self.sightings(result):
                    post(self.feed, sighting)
        finally:
            source.close()
            if self.capture is not None:
                self.capture.close()
            log.info("camera %s: %s", self.binding.name,
                     ", ".join(f"{k} {v:.1f}" for k, v in self.stats.items()))  # fmt: skip
        if not stop.is_set():
            raise ConnectionError(f"camera {source.name}: the frame source ended")

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


# how much lower than the node's other threads the camera's work runs (nice steps)
CAMERA_NICE = 10


def _below_the_node() -> None:
    """Run this thread (and the inference threads it starts) below the node's other threads:
    the camera is a ``degrade`` device, and its work must never delay the MCU link, the PLC
    heartbeat or a safety decision on a busy board. Never real-time, even in a node that is
    (Linux: a thread's scheduling class and nice value are its own)."""
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        if os.sched_getscheduler(tid) != os.SCHED_OTHER:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + CAMERA_NICE)
        )


def rate_gate(due: float | None, t: float, min_gap: float) -> tuple[bool, float | None]:
    """Whether to process a frame captured at ``t``, and when the next one is due: at most
    one frame per ``min_gap`` on average, on a grid rather than a least gap, so a camera at
    the limit rate whose frames jitter (by less than half a period) keeps every frame, and a
    faster camera is thinned to the limit. A frame late by more than half a period restarts
    the grid (no burst after a stall)."""
    if due is not None and t < due - min_gap / 2:
        return False, due
    return True, (t + min_gap if due is None or t > due + min_gap / 2 else due + min_gap)


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
