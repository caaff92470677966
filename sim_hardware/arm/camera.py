"""The arm cell's belt camera: the diverter camera's renderer with the world's poses.

The diverter's ``CameraRenderer`` (``sim_hardware/world/camera.py``) renders each parcel
once into a patch and then only pastes it where the belt carried it (a few ms a frame, where
composing the whole scene anew took 65-300 ms). A diverter parcel's pose across the belt is
drawn from its id; an arm aims at the real one, so here each parcel is drawn at the pose the
MuJoCo world has it (across the belt, yaw) when it comes into view, and drawn afresh if
that pose changes (a parcel pushed or knocked on the belt). Imported in the camera's
process only (cv2).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sim_hardware.world.camera import CameraRenderer, CameraSnapshot, WorldFrame
from sim_hardware.world.parcels import Parcel

MOVED_PX = 1.5  # a parcel this far across (or 1 deg turned) from its drawn pose is redrawn
MOVED_DEG = 1.0


class ArmRenderer(CameraRenderer):
    """Frames from an ``ArmSnapshot`` (``sim_hardware.arm.cell``): each parcel at its world
    pose; the look (sprite, label) from ``(seed, id)`` as the diverter's."""

    def __init__(
        self, centre_mm: float, fov_mm: float, seed: int = 0, size: tuple[int, int] | None = None
    ) -> None:
        extra = {} if size is None else {"size": size}
        super().__init__(centre_mm, fov_mm, seed, max_yaw_deg=0.0, **extra)
        self._pose: dict[int, tuple[float, float]] = {}  # drawn at: lateral px, yaw deg

    def _draw_look(self, parcel: Parcel) -> Any:
        look = super()._draw_look(parcel)
        lateral, yaw = self._pose[parcel.id]
        return replace(look, lateral_px=lateral, yaw_deg=yaw)

    def render_arm(self, snap: Any) -> WorldFrame:
        """The frame of an ``ArmSnapshot``."""
        height = getattr(self, "size", (0, 480))[1]
        parcels = []
        for parcel, u, across, yaw in snap.parcels:
            pose = (height / 2 - across * self.px_per_mm, yaw)
            old = self._pose.get(parcel.id)
            if old is not None and (
                abs(old[0] - pose[0]) > MOVED_PX or abs(old[1] - pose[1]) > MOVED_DEG
            ):
                self._looks.pop(parcel.id, None)  # moved on the belt: drawn afresh
                self._patches.pop(parcel.id, None)
                old = None
            if old is None:
                self._pose[parcel.id] = pose
            parcels.append((parcel, u))
        frame = super().render(
            CameraSnapshot(snap.time_s, snap.encoder_count, snap.centre_mm, snap.fov_mm,
                           tuple(parcels))
        )  # fmt: skip
        self._pose = {pid: v for pid, v in self._pose.items() if pid in self._looks}
        return frame

    def prepare(self, snapshot: Any, limit: int = 2) -> int:
        """The feed's between-frames rendering of parcels still upstream, from an
        ``ArmSnapshot``: each at the pose the world has it now (redrawn if that changes)."""
        if isinstance(snapshot, CameraSnapshot):
            return super().prepare(snapshot, limit)
        height = getattr(self, "size", (0, 480))[1]
        parcels = []
        for parcel, u, across, yaw in snapshot.parcels:
            self._pose.setdefault(parcel.id, (height / 2 - across * self.px_per_mm, yaw))
            parcels.append((parcel, u))
        return super().prepare(
            CameraSnapshot(snapshot.time_s, snapshot.encoder_count, snapshot.centre_mm,
                           snapshot.fov_mm, tuple(parcels)), limit)  # fmt: skip

    def render(self, snapshot: Any) -> WorldFrame:
        """The camera feed's entry: an ``ArmSnapshot`` (parcels with u, across, yaw)."""
        if isinstance(snapshot, CameraSnapshot):
            return super().render(snapshot)
        return self.render_arm(snapshot)
