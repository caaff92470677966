"""A camera frame with the moment it was captured and, when the cell provides one, the belt
encoder count at that moment: the tracker predicts where a parcel went from the encoder, and
the cell schedules diverters in encoder counts, not in wall-clock guesses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3, BGR uint8
    captured_at: float  # time.monotonic() seconds at capture
    index: int  # position in its source, from 0
    encoder_count: int | None = None
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])
