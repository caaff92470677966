"""A parcel as the world knows it: what it is, what its label says, whether it can be read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Parcel:
    id: int
    cls: str
    length_mm: float  # along the belt
    width_mm: float
    height_mm: float
    label_format: str  # "Code128", "QRCode", "DataMatrix", ...
    label_text: str
    label_legible: bool  # False: torn or smeared, no reader decodes it
    arrival_s: float  # when it reached the induction (it may wait there for a gap)
