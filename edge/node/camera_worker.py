"""The belt camera's worker, shared by every machine that takes parcels from it (the
diverter's ``edge/node/camera_feed.py``, the arm's ``edge/arm/adapter_camera.py``): a daemon
thread reads frames (``vision.sources.open_source`` on ``vision.source.uri``), runs the vision
pipeline (detect, track, read labels) and hands what a frame gives to the node's loop. Each
machine says what a processed frame gives (``processed``); the rest is here, once:

* a live source is read by its own thread and the pipeline takes the newest frame
  (``LatestFrames``): a frame never waits behind a slow one (the arm's copy of this loop read
  the socket's backlog: frames 0.9 s old, and the core called the camera silent);
* at most ``max_fps`` frames a second, on a grid (``rate_gate``);
* the thread runs below the node's other threads (``_below_the_node``: never real-time, and
  ``nice`` steps below the node's nice value);
* the stream's state (up, lost) goes to ``state``; a dropped stream resets the tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vision.config import VisionConfig

if TYPE_CHECKING:
    from vision.pipeline import FrameResult, Pipeline

log = logging.getLogger("wolfpack.node.camera")

Post = Callable[..., Any]

# how much lower than the node's other threads the camera's work runs (nice steps)
CAMERA_NICE = 10


class CameraWorker(ABC):
    """Runs as a supervised task; the pipeline in a daemon thread. ``state`` and what a
    subclass posts are called on the node's loop (through ``call_soon_threadsafe``)."""

    def __init__(
        self,
        vision: VisionConfig,
        state: Callable[[bool, str], None],
        *,
        name: str,
        max_fps: float,
        stats: Iterable[str] = (),
        nice: int = CAMERA_NICE,
    ) -> None:
        self.vision = vision
        self.nice = nice  # nice steps below the node (never real-time, whatever this is)
        self.state = state
        self.name = name
        self.max_fps = max_fps
        self.stats: dict[str, float] = dict.fromkeys(
            ("frames", "processed", "skipped", "stale", *stats, "process_ms_mean",
             "cpu_ms_mean", "lag_ms_max", "gap_ms_max"),
            0.0,
        )  # fmt: skip
        # lag: a frame's age when its processing starts; gap: the longest between two;
        # cpu: the worker thread's CPU time a frame (process_ms is wall time: the two apart
        # is the time the thread waited for a core, 10 nice steps below the node)

    @abstractmethod
    def processed(self, result: FrameResult, pipeline: Pipeline, post: Post) -> None:
        """What a processed frame gives, posted to the node's loop (the machine's part)."""

    def closed(self) -> None:  # noqa: B027 (optional: most machines have nothing to clean)
        """The worker ends (a machine's clean-up in the worker thread)."""

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

        thread = threading.Thread(target=work, name=self.name, daemon=True)
        thread.start()
        try:
            await done
        finally:
            stop.set()
            source = holder.get("source")
            if source is not None:
                source.close()
            self.state(False, "camera task stopped")

    def _work(self, post: Post, stop: threading.Event, holder: dict[str, Any]) -> None:
        from vision.pipeline import Pipeline

        _below_the_node(self.nice)  # before the pipeline: its inference threads inherit it
        from vision.sources import LatestFrames, OpenCVCapture, open_source
        from vision.wpcf import WpcfSource

        pipeline = Pipeline.from_config(self.vision)
        pipeline.measure_sizes = False  # each machine places and measures what it hands over
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
        min_gap = 1.0 / self.max_fps
        due: float | None = None  # at most max_fps on average: a grid, not a least gap
        last: float | None = None  # when the last processed frame's processing started
        log.info("%s: reading %s (at most %g frames/s)", self.name, source.name, self.max_fps)
        s = self.stats
        try:
            for frame in source:
                if stop.is_set():
                    break
                if broken.is_set():
                    broken.clear()
                    pipeline.reset()
                s["frames"] += 1
                if isinstance(source, LatestFrames):
                    s["stale"] = float(source.dropped)  # replaced before taken
                take, due = rate_gate(due, frame.captured_at, min_gap)
                if not take or frame.encoder_count is None:  # no count: it cannot be placed
                    s["skipped"] += 1
                    continue
                start, cpu = time.perf_counter(), time.thread_time()
                s["lag_ms_max"] = max(s["lag_ms_max"], (time.monotonic() - frame.captured_at) * 1e3)
                if last is not None:
                    s["gap_ms_max"] = max(s["gap_ms_max"], (start - last) * 1e3)
                last = start
                result = pipeline.process(frame)
                ms = (time.perf_counter() - start) * 1e3
                cpu_ms = (time.thread_time() - cpu) * 1e3
                n = s["processed"] = s["processed"] + 1
                s["process_ms_mean"] += (ms - s["process_ms_mean"]) / n
                s["cpu_ms_mean"] += (cpu_ms - s["cpu_ms_mean"]) / n
                self.processed(result, pipeline, post)
        finally:
            source.close()
            self.closed()
            log.info("%s: %s", self.name, ", ".join(f"{k} {v:.1f}" for k, v in s.items()))
        if not stop.is_set():
            raise ConnectionError(f"camera {source.name}: the frame source ended")


def _below_the_node(nice: int = CAMERA_NICE) -> None:
    """Run this thread (and the inference threads it starts) below the node's other threads:
    the camera is a ``degrade`` device, and its work must never delay the MCU link, the PLC
    heartbeat, the arm's motion stream or a safety decision on a busy board. Never real-time,
    even in a node that is (Linux: a thread's scheduling class and nice value are its own),
    and ``nice`` steps below the node's nice value."""
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        if os.sched_getscheduler(tid) != os.SCHED_OTHER:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


def rate_gate(due: float | None, t: float, min_gap: float) -> tuple[bool, float | None]:
    """Whether to process a frame captured at ``t``, and when the next one is due: at most
    one frame per ``min_gap`` on average, on a grid rather than a least gap, so a camera at
    the limit rate whose frames jitter (by less than half a period) keeps every frame, and a
    faster camera is thinned to the limit. A frame late by more than half a period restarts
    the grid (no burst after a stall)."""
    if due is not None and t < due - min_gap / 2:
        return False, due
    return True, (t + min_gap if due is None or t > due + min_gap / 2 else due + min_gap)
