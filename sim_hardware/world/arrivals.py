"""The arrival process: parcels reach the induction at a mean rate with a configured mix.

Inter-arrival times are exponential (a Poisson stream, as parcels tipped from many sources),
classes, sizes and label formats are drawn from the configured shares, and a fixed fraction
of labels is unreadable. Everything comes from one seeded generator, so a seed gives the
same parcels in the same order on every machine.
"""

from __future__ import annotations

import numpy as np

from sim_hardware.world.config import ArrivalConfig
from sim_hardware.world.parcels import Parcel


def label_text(rng: np.random.Generator, fmt: str) -> str:
    """A payload like the camera renderer's: 6 digits for Code 128, 'WP' + 10 digits in 2D."""
    if fmt == "Code128":
        return f"{int(rng.integers(10**6)):06d}"
    return f"WP{int(rng.integers(10**10)):010d}"


def _pick(cdf: np.ndarray, u: float) -> int:
    """The index whose cumulative share first exceeds ``u`` (a weighted choice)."""
    return min(int(np.searchsorted(cdf, u, side="right")), len(cdf) - 1)


class ArrivalProcess:
    def __init__(self, config: ArrivalConfig, seed: int, start_s: float = 0.0) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self._classes = list(config.classes)
        w = np.array([config.classes[c].weight for c in self._classes], float)
        self._class_cdf = np.cumsum(w / w.sum())
        self._formats = list(config.symbologies)
        f = np.array([config.symbologies[s] for s in self._formats], float)
        self._format_cdf = np.cumsum(f / f.sum())
        self._mean_gap_s = 3600.0 / config.rate_pph
        self._next_id = 1
        self.next_arrival_s = start_s + float(self.rng.exponential(self._mean_gap_s))

    def _draw(self, arrival_s: float) -> Parcel:
        rng = self.rng
        cls = self._classes[_pick(self._class_cdf, rng.random())]
        spec = self.config.classes[cls]
        fmt = self._formats[_pick(self._format_cdf, rng.random())]
        parcel = Parcel(
            id=self._next_id,
            cls=cls,
            length_mm=float(rng.uniform(spec.length_mm.lo, spec.length_mm.hi)),
            width_mm=float(rng.uniform(spec.width_mm.lo, spec.width_mm.hi)),
            height_mm=float(rng.uniform(spec.height_mm.lo, spec.height_mm.hi)),
            label_format=fmt,
            label_text=label_text(rng, fmt),
            label_legible=bool(rng.random() >= self.config.unreadable_fraction),
            arrival_s=arrival_s,
        )
        self._next_id += 1
        return parcel

    def until(self, t: float) -> list[Parcel]:
        """Every parcel arriving at or before ``t`` not yet returned, in arrival order."""
        out: list[Parcel] = []
        while self.next_arrival_s <= t:
            out.append(self._draw(self.next_arrival_s))
            self.next_arrival_s += float(self.rng.exponential(self._mean_gap_s))
        return out
