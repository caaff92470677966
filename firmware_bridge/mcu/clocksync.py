"""Map the MCU clock to host monotonic time: linear regression over periodic clock queries.

Each sample is (host send time, host receive time, MCU clock). The MCU read its clock at
some instant between send and receive; the midpoint is the estimate, and half the round
trip bounds its error. Samples with a round trip much longer than the best recent one were
delayed in a queue and are down-weighted. The fit gives the MCU's real frequency (drift
against the host crystal) and offset; ``uncertainty_s`` combines the residual spread with
half the best round trip.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClockSample:
    sent: float
    received: float
    clock: int

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def midpoint(self) -> float:
        return (self.sent + self.received) / 2


@dataclass
class ClockSync:
    """Estimate of ``clock = freq * (host_t - t0) + c0``; ``nominal_freq`` from identify."""

    nominal_freq: float
    max_samples: int = 32
    min_span_s: float = 2.0
    max_drift_ppm: float = 1000.0
    samples: deque[ClockSample] = field(default_factory=deque)
    freq: float = 0.0
    t0: float = 0.0
    c0: float = 0.0
    uncertainty_s: float = math.inf

    def __post_init__(self) -> None:
        self.freq = self.nominal_freq
        self._freq_fitted = False

    @property
    def ready(self) -> bool:
        return len(self.samples) >= 2

    @property
    def freq_measured(self) -> bool:
        """True once the frequency comes from the fit, not from the nominal value."""
        return self._freq_fitted

    def reset(self, nominal_freq: float | None = None) -> None:
        if nominal_freq is not None:
            self.nominal_freq = nominal_freq
        self.samples.clear()
        self.freq = self.nominal_freq
        self._freq_fitted = False
        self.uncertainty_s = math.inf

    def add(self, sent: float, received: float, clock: int) -> None:
        self.samples.append(ClockSample(sent, received, clock))
        while len(self.samples) > self.max_samples:
            self.samples.popleft()
        self._fit()

    def _fit(self) -> None:
        samples = list(self.samples)
        best = min(s.rtt for s in samples)
        weights = [1.0 / (1.0 + ((s.rtt - best) / max(best, 1e-4)) ** 2) for s in samples]
        wsum = sum(weights)
        tm = sum(w * s.midpoint for w, s in zip(weights, samples, strict=True)) / wsum
        cm = sum(w * s.clock for w, s in zip(weights, samples, strict=True)) / wsum
        sxx = sum(w * (s.midpoint - tm) ** 2 for w, s in zip(weights, samples, strict=True))
        span = samples[-1].midpoint - samples[0].midpoint
        if len(samples) >= 3 and span >= self.min_span_s and sxx > 0:
            sxy = sum(
                w * (s.midpoint - tm) * (s.clock - cm)
                for w, s in zip(weights, samples, strict=True)
            )
            freq = sxy / sxx
            # Over a short span the slope is mostly jitter, and a slope error extrapolates
            # into a time error (0.1% over 1 s = 1 ms): fit the frequency only from samples
            # spread over min_span_s, and only within what a crystal can be off.
            if abs(freq / self.nominal_freq - 1) < self.max_drift_ppm * 1e-6:
                self.freq = freq
                self._freq_fitted = True
        self.t0, self.c0 = tm, cm
        if len(samples) >= 3:
            resid = [(s.clock - self.clock_at(s.midpoint)) / self.freq for s in samples]
            spread = math.sqrt(sum(w * r * r for w, r in zip(weights, resid, strict=True)) / wsum)
        else:
            spread = best / 2
        self.uncertainty_s = spread + best / 2

    def clock_at(self, host_t: float) -> int:
        """The MCU clock value at host monotonic time ``host_t``."""
        return round(self.c0 + self.freq * (host_t - self.t0))

    def host_time_at(self, clock: int) -> float:
        """The host monotonic time at which the MCU clock reads ``clock``."""
        return self.t0 + (clock - self.c0) / self.freq

    @property
    def drift_ppm(self) -> float:
        return (self.freq / self.nominal_freq - 1) * 1e6
