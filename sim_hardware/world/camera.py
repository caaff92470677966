"""Camera frames rendered from the world: what an overhead camera sees of the belt now.

The camera looks straight down at ``centre_mm`` on the belt; image +x is the belt's direction
of travel and ``fov_mm`` of belt fills the frame's width. Each parcel's look (sprite, label
paper, pose across the belt) is drawn once from its id, so it is the same parcel in every
frame; its length and width are the world's, its label carries the world's text and format,
and a label the world made unreadable is smeared. Frames come from the camera renderer's
public API (``make_sprite``, ``render_symbol``, ``compose``); each carries its capture time,
the encoder count at that time and the truth of every visible parcel (``parcel_id`` is the
world's id).

Rendering costs ~100-200 ms a frame, so it is split from the world: ``take_snapshot`` is the
cheap, picklable look at the belt (what the world's lock must cover) and ``CameraRenderer``
turns snapshots into frames anywhere, e.g. in another process (``camera_feed``), away from the
simulated MCU's interpreter lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from sim_hardware.camera.barcodes import render_symbol
from sim_hardware.camera.parcels import Label, Sprite, make_sprite
from sim_hardware.camera.randomisation import TRAINING, Randomisation
from sim_hardware.camera.scene import FRAME_SIZE, ParcelTruth, Placement, compose, render_belt
from sim_hardware.world.parcels import Parcel
from sim_hardware.world.world import CellWorld


@dataclass(frozen=True)
class WorldFrame:
    image: np.ndarray  # BGR uint8, 480 x 640
    time_s: float
    encoder_count: int
    parcels: tuple[ParcelTruth, ...]


@dataclass(frozen=True)
class CameraSnapshot:
    """What is under the camera at one instant: enough to render the frame elsewhere."""

    time_s: float  # world time (time.monotonic() in a real-time cell)
    encoder_count: int
    centre_mm: float  # the camera's centre line on the belt
    fov_mm: float
    parcels: tuple[tuple[Parcel, float], ...]  # each parcel in reach and its centre, mm


def take_snapshot(world: CellWorld, centre_mm: float, fov_mm: float) -> CameraSnapshot:
    """The snapshot of ``world`` now (tens of microseconds: no pixels)."""
    t, count, found = world.view(centre_mm - fov_mm / 2, centre_mm + fov_mm / 2)
    return CameraSnapshot(t, count, centre_mm, fov_mm, tuple(found))


@dataclass(frozen=True)
class _Look:
    sprite: Sprite
    lateral_px: float  # across the belt, from the frame's top edge
    yaw_deg: float


class CameraRenderer:
    """Frames from snapshots. A parcel's look and pose are drawn from ``(seed, parcel id)``,
    so two renderers with the same seed draw the same parcel the same way."""

    def __init__(
        self,
        centre_mm: float = 1_000.0,
        fov_mm: float = 800.0,
        seed: int = 0,
        randomisation: Randomisation = TRAINING,
        max_yaw_deg: float = 25.0,
    ) -> None:
        self.centre_mm = centre_mm
        self.fov_mm = fov_mm
        self.px_per_mm = FRAME_SIZE[0] / fov_mm
        self.seed = seed
        self.r = replace(randomisation, distractors=(0, 0), label_probability=0.0)
        self.max_yaw_deg = max_yaw_deg
        self.background = render_belt(np.random.default_rng(seed), self.r, FRAME_SIZE)
        self._looks: dict[int, _Look] = {}

    def _look(self, parcel: Parcel) -> _Look:
        look = self._looks.get(parcel.id)
        if look is None:
            look = self._looks[parcel.id] = self._draw_look(parcel)
        return look

    def _draw_look(self, parcel: Parcel) -> _Look:
        rng = np.random.default_rng([self.seed, parcel.id])
        base = make_sprite(rng, parcel.cls, 1.0, 0.0, self.r.module_px, 0.0)
        length = max(8, round(parcel.length_mm * self.px_per_mm))
        width = max(8, round(min(parcel.width_mm, parcel.length_mm) * self.px_per_mm))
        image = cv2.resize(base.image, (length, width), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(base.mask, (length, width), interpolation=cv2.INTER_NEAREST)
        label = _label(rng, parcel, width, length)
        sprite = Sprite(parcel.cls, image, mask, label, base.flat)
        h = FRAME_SIZE[1]
        lateral = float(rng.uniform(0.3 * h, 0.7 * h))
        yaw = float(rng.uniform(-self.max_yaw_deg, self.max_yaw_deg))
        return _Look(sprite, lateral, yaw)

    def render(self, snapshot: CameraSnapshot) -> WorldFrame:
        """The frame of ``snapshot`` (taken at this renderer's centre and field of view)."""
        width_px = FRAME_SIZE[0]
        placements: list[Placement] = []
        legible: dict[int, bool] = {}
        for parcel, centre in snapshot.parcels:
            x_px = (centre - self.centre_mm) * self.px_per_mm + width_px / 2
            reach = (parcel.length_mm + parcel.width_mm) * self.px_per_mm
            if -reach < x_px < width_px + reach:
                look = self._look(parcel)
                placements.append(
                    Placement(look.sprite, (x_px, look.lateral_px), look.yaw_deg, parcel.id)
                )
                legible[parcel.id] = parcel.label_legible
        # parcels only move on: a look not in view now is never needed again
        self._looks = {pid: look for pid, look in self._looks.items() if pid in legible}
        effects = np.random.default_rng([self.seed, round(snapshot.time_s * 1e6)])
        scene = compose(self.background, placements, effects, self.r)
        truths = tuple(
            replace(t, label_legible=t.label_legible and legible[t.parcel_id])
            for t in scene.parcels
        )
        return WorldFrame(scene.image, snapshot.time_s, snapshot.encoder_count, truths)


class WorldCamera(CameraRenderer):
    """A renderer looking at one world in this process (tests, benchmarks)."""

    def __init__(
        self,
        world: CellWorld,
        centre_mm: float = 1_000.0,
        fov_mm: float = 800.0,
        seed: int = 0,
        randomisation: Randomisation = TRAINING,
        max_yaw_deg: float = 25.0,
    ) -> None:
        super().__init__(centre_mm, fov_mm, seed, randomisation, max_yaw_deg)
        self.world = world

    def frame(self) -> WorldFrame:
        """The view at the world's current time."""
        return self.render(take_snapshot(self.world, self.centre_mm, self.fov_mm))


def _label(rng: np.random.Generator, parcel: Parcel, h: int, w: int) -> Label | None:
    """The world's label on the parcel, at 2-3 px per module, smeared when unreadable. A
    label that does not fit the parcel at 2 px per module (a Code 128 on a small envelope at
    the default scale) is not drawn: the frame's truth then says no label."""
    for module in (3, 2):
        symbol = render_symbol(parcel.label_format, parcel.label_text, module, 34)
        sh, sw = symbol.image.shape
        pad = 2 * module
        lh, lw = sh + 2 * pad, sw + 2 * pad
        if lw > 0.9 * w or lh > 0.9 * h:
            continue
        paper = np.full((lh, lw), 240, np.uint8)
        paper[pad : pad + sh, pad : pad + sw] = np.where(symbol.image > 127, 240, 20)
        if not parcel.label_legible:  # a smear across the symbol: no reader decodes it
            cv2.line(paper, (0, lh // 3), (lw, 2 * lh // 3), 20, max(4, lh // 4))
            cv2.line(paper, (lw // 4, 0), (lw // 2, lh), 240, max(4, lw // 6))
        cx = float(rng.uniform(lw / 2 + 2, w - lw / 2 - 2))
        cy = float(rng.uniform(lh / 2 + 2, h - lh / 2 - 2))
        return Label(symbol=symbol, centre=(cx, cy), angle_deg=0.0, image=paper)
    return None
