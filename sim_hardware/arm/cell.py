"""The whole simulated sorting-arm cell: the MuJoCo world, the arm MCU on a pty, the belt
camera's frame stream. A node reaches it only as it reaches a real arm cell: through the pty
and the camera's TCP port.

    cell = SimArmCellProcess(settings, workdir / "mcu").start()
    ...  # McuLink(workdir / "mcu"), wpcf://127.0.0.1:{cell.camera_port}
    cell.call("summary"); cell.call("truth", t0); cell.call("set_fault", "drop", True)

Three processes, as the diverter cell: the cell (world physics in real time, the simulated
MCU, the parcel stream), the camera (rendering costs ~100-200 ms a frame: away from the
MCU's timers) and the caller. ``settings`` is a plain dict (``sim_hardware`` never imports
``edge``): ``edge.cli.sim_arm.cell_settings`` writes it from the node's arm config, so the
world is built from the same numbers the node is configured with.

The world's truth of each parcel (``truth``): its label and whether it is legible, class,
size and mass, whether a cup can hold it (and why not), where the sort plan says it goes,
where it ended (``dest:<id>``, ``belt_end``, ``floor``), whether it was gripped or dropped,
the cup's offset from the grasp point at the grip (the tracking error), and its belt
coordinate at encoder count 0 (``belt_mm0``, which joins it to the node's record).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_hardware.pipe_rpc import PipeClient
from sim_hardware.world.parcels import Parcel

# ---- the camera -------------------------------------------------------------------------------
FRAME_W, FRAME_H = 640, 480


@dataclass(frozen=True)
class ArmSnapshot:
    """What is under the camera at one instant (no pixels): each parcel's pose on the belt
    in the camera's belt frame (``along`` with the travel, ``across`` to its left), mm."""

    time_s: float
    encoder_count: int
    centre_mm: float  # the camera's centre line, belt coordinate u
    fov_mm: float
    parcels: tuple[tuple[Parcel, float, float, float], ...]  # parcel, u, across, yaw (deg)


def camera_calibration(fov_mm: float) -> dict[str, Any]:
    """The vision calibration of this camera (``vision.calibration`` of the node's config):
    pixel -> (along, across) mm from the camera's centre, image +x along the travel and
    image up to the left of it."""
    s = fov_mm / FRAME_W
    points = [(0.0, 0.0), (FRAME_W, 0.0), (FRAME_W, FRAME_H), (0.0, FRAME_H), (320.0, 240.0)]
    return {"reference_points": [
        {"pixel": [px, py], "belt_mm": [round((px - FRAME_W / 2) * s, 4),
                                        round((FRAME_H / 2 - py) * s, 4)]}
        for px, py in points
    ]}  # fmt: skip


class ArmRenderer:
    """Frames from ``ArmSnapshot``: each parcel drawn where the world has it (the diverter's
    camera draws a pose from the parcel's id; an arm aims at the real one). A parcel's look
    (sprite, label) is drawn once from ``(seed, id)``."""

    def __init__(self, centre_mm: float, fov_mm: float, seed: int = 0) -> None:
        from sim_hardware.world.camera import CameraRenderer

        self.base = CameraRenderer(centre_mm, fov_mm, seed, max_yaw_deg=0.0)
        self.centre_mm = centre_mm
        self.fov_mm = fov_mm
        self.px_per_mm = FRAME_W / fov_mm

    def render(self, snap: ArmSnapshot) -> Any:
        from dataclasses import replace

        from sim_hardware.camera.scene import Placement, compose
        from sim_hardware.world.camera import WorldFrame

        b = self.base
        placements = []
        legible: dict[int, bool] = {}
        for parcel, u, across, yaw in snap.parcels:
            x = (u - snap.centre_mm) * self.px_per_mm + FRAME_W / 2
            y = FRAME_H / 2 - across * self.px_per_mm
            reach = (parcel.length_mm + parcel.width_mm) * self.px_per_mm
            if -reach < x < FRAME_W + reach:
                look = b._look(parcel)
                placements.append(Placement(look.sprite, (x, y), yaw, parcel.id))
                legible[parcel.id] = parcel.label_legible
        b._looks = {pid: look for pid, look in b._looks.items() if pid in legible}
        effects = np.random.default_rng([b.seed, round(snap.time_s * 1e6)])
        scene = compose(b.background, placements, effects, b.r)
        truths = tuple(replace(t, label_legible=t.label_legible and legible[t.parcel_id])
                       for t in scene.parcels)  # fmt: skip
        return WorldFrame(scene.image, snap.time_s, snap.encoder_count, truths)


def _camera_main(snapshots: Any, control: Any, kwargs: dict[str, Any], nice: int) -> None:
    """Child process: the diverter camera's frame server with the arm's renderer."""
    from sim_hardware.world.camera_feed import CameraFeed

    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    try:
        feed = CameraFeed(snapshots, control, **kwargs)
        feed.renderer = ArmRenderer(kwargs["centre_mm"], kwargs["fov_mm"], kwargs["seed"])
    except Exception as exc:
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    control.send(("ok", feed.port))
    feed.run()


class ArmCameraProcess(PipeClient):
    """The belt camera in its own process, serving the frame stream (docs/sim-world.md,
    "Camera frame stream") on ``127.0.0.1:port``; ``snapshots`` is the cell's pipe end."""

    rpc_name = "simulated arm camera"

    def __init__(self, snapshots: Any, *, fps: float, centre_mm: float, fov_mm: float,
                 seed: int = 0, nice: int = 5) -> None:  # fmt: skip
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        kwargs = dict(fps=fps, host="127.0.0.1", port=0, centre_mm=centre_mm, fov_mm=fov_mm,
                      seed=seed, truth=True)  # fmt: skip
        self._proc = ctx.Process(target=_camera_main, args=(snapshots, child, kwargs, nice),
                                 daemon=True)  # fmt: skip
        self.port = 0

    def start(self, timeout: float = 30.0) -> ArmCameraProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated arm camera did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated arm camera failed to start: {value}")
        self.port = int(value)
        return self

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
                self._ask("stop", "", ())
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
