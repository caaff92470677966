"""Domain randomisation ranges for rendered belt scenes.

Two named presets exist so that evaluation is honest: ``TRAINING`` is what the shipped model
learns from, ``HELD_OUT`` shifts lighting, blur, noise, scale and label sizes outside or to
the edges of those ranges, and is rendered from other seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CLASSES: tuple[str, ...] = ("box", "polybag", "envelope", "irregular")


@dataclass(frozen=True)
class Randomisation:
    """Ranges every scene is drawn from; (low, high) pairs are uniform."""

    parcels_per_frame: tuple[int, int] = (1, 4)
    parcel_scale: tuple[float, float] = (0.8, 1.2)
    brightness: tuple[float, float] = (0.65, 1.3)
    contrast: tuple[float, float] = (0.75, 1.2)
    colour_cast: float = 0.12  # max relative gain change per channel
    light_gradient: float = 0.35  # max brightness fall-off across the frame
    shadow_strength: tuple[float, float] = (0.0, 0.5)
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    motion_blur_px: tuple[int, int] = (0, 3)
    noise_sigma: tuple[float, float] = (0.0, 8.0)
    label_probability: float = 0.85
    module_px: tuple[int, int] = (2, 3)
    label_jitter_deg: float = 8.0  # label rotation on the parcel beyond multiples of 90
    max_overlap: float = 0.25  # max fraction of a parcel covered by others
    distractors: tuple[int, int] = (0, 6)
    belt_kinds: tuple[str, ...] = ("rubber", "mesh", "rollers", "worn")


TRAINING = Randomisation()

HELD_OUT = replace(
    TRAINING,
    parcels_per_frame=(1, 5),
    parcel_scale=(0.75, 1.25),
    brightness=(0.6, 1.4),
    contrast=(0.7, 1.25),
    colour_cast=0.15,
    light_gradient=0.4,
    blur_sigma=(0.1, 0.9),
    motion_blur_px=(0, 2),
    noise_sigma=(2.0, 10.0),
    module_px=(2, 4),
    label_jitter_deg=12.0,
    max_overlap=0.3,
    distractors=(2, 8),
)

PRESETS: dict[str, Randomisation] = {"training": TRAINING, "held-out": HELD_OUT}
