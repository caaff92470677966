"""The reference brain as a pure policy: a label in, a chute and an answer time out.

It knows nothing of MQTT; :mod:`sim_hardware.brain.service` puts it behind the fleet link's
brain SDK. Slowness and absence are part of the policy (not of a transport) so the same
settings give the same answers whether a test calls it directly or over a broker.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from sim_hardware.brain.config import BrainConfig
from sim_hardware.brain.sort_plan import SortPlanError, chute_for_label


@dataclass(frozen=True, slots=True)
class Decision:
    chute: int
    reason: str  # "route", "plan", "no label", "unroutable"
    latency_s: float  # how long after the request the answer is given


class ReferenceBrain:
    def __init__(self, config: BrainConfig | None = None) -> None:
        self.config = config or BrainConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self._lock = threading.Lock()
        self.latency_ms = self.config.latency_ms
        self.jitter_ms = self.config.jitter_ms
        self.absent = self.config.absent
        self.requests = 0
        self.unanswered = 0

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter must be >= 0")
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms

    def set_absent(self, absent: bool) -> None:
        self.absent = absent

    def chute_for(self, label_text: str | None) -> tuple[int, str]:
        """The chute by the documented rule (docs/sim-world.md), and why."""
        c = self.config
        if label_text is None or label_text == "":
            return c.reject_chute, "no label"
        if any(label_text.startswith(prefix) for prefix in c.routes):
            return chute_for_label(label_text, c.sort_chutes, c.routes), "route"
        try:
            return chute_for_label(label_text, c.sort_chutes), "plan"
        except SortPlanError:
            return c.reject_chute, "unroutable"

    def decide(self, label_text: str | None) -> Decision | None:
        """The answer to one request, or None when the brain is absent."""
        with self._lock:
            self.requests += 1
            if self.absent:
                self.unanswered += 1
                return None
            latency = self.latency_ms
            if self.jitter_ms > 0 and latency > 0:
                sigma = math.log1p(self.jitter_ms / latency)
                latency = float(latency * self._rng.lognormal(0.0, sigma))
        chute, reason = self.chute_for(label_text)
        return Decision(chute, reason, latency / 1000.0)
