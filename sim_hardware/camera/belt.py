"""A simulated camera over a moving belt: frames with capture time, encoder count and truth.

Parcels enter at the upstream edge, ride the belt along +x at a constant speed and leave at
the other edge. The encoder counts belt travel, so a tracker can predict where each parcel
went between frames exactly as it would from the real cell's encoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim_hardware.camera.parcels import make_sprite
from sim_hardware.camera.randomisation import CLASSES, HELD_OUT, Randomisation
from sim_hardware.camera.scene import FRAME_SIZE, ParcelTruth, Placement, compose, render_belt


@dataclass(frozen=True)
class SimFrame:
    image: np.ndarray
    time_s: float  # simulated time of capture
    encoder_count: int
    parcels: tuple[ParcelTruth, ...]


class BeltCamera:
    """Renders ``frames`` frames at ``fps`` of a belt moving ``speed_px_s`` px/s to the right."""

    def __init__(
        self,
        seed: int = 0,
        randomisation: Randomisation = HELD_OUT,
        fps: float = 30.0,
        speed_px_s: float = 600.0,
        counts_per_px: float = 4.0,
        gap_px: tuple[float, float] = (60.0, 220.0),
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.r = randomisation
        self.fps = fps
        self.speed = speed_px_s
        self.counts_per_px = counts_per_px
        self.gap = gap_px
        self.background = render_belt(self.rng, randomisation, FRAME_SIZE)
        self._parcels: list[tuple[Placement, float]] = []  # placement at belt position 0, x0
        self._next_x = -150.0  # belt coordinate (px) where the next parcel's centre starts

    def _spawn_until(self, travel: float) -> None:
        """Add parcels so that the belt is populated up to the upstream edge at ``travel``."""
        _w, h = FRAME_SIZE
        while self._next_x > -travel - 400:
            cls = str(self.rng.choice(list(CLASSES)))
            sprite = make_sprite(
                self.rng,
                cls,
                float(self.rng.uniform(*self.r.parcel_scale)),
                self.r.label_probability,
                self.r.module_px,
                self.r.label_jitter_deg,
            )
            sh, sw = sprite.mask.shape
            rot = float(self.rng.uniform(0, 360))
            extent = max(sw, sh)
            cy = float(self.rng.uniform(0.3 * h, 0.7 * h))
            x0 = self._next_x - extent / 2
            self._parcels.append((Placement(sprite, (x0, cy), rot, len(self._parcels) + 1), x0))
            self._next_x = x0 - extent / 2 - float(self.rng.uniform(*self.gap))

    def frames(self, count: int) -> Iterator[SimFrame]:
        w, _ = FRAME_SIZE
        for i in range(count):
            t = i / self.fps
            travel = t * self.speed
            self._spawn_until(travel)
            visible = []
            for p, x0 in self._parcels:
                x = x0 + travel
                if -300 < x < w + 300:
                    visible.append(
                        Placement(p.sprite, (x, p.centre[1]), p.rotation_deg, p.parcel_id)
                    )
            effects = np.random.default_rng(self.seed)  # same light and sensor every frame
            scene = compose(self.background, visible, effects, self.r)
            yield SimFrame(scene.image, t, round(travel * self.counts_per_px), scene.parcels)
