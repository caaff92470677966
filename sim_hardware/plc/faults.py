"""Faults a test or the CLI injects into the simulated PLC, per unit id or for all."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class FaultPlan:
    """Mutable on purpose: tests flip faults while masters are polling."""

    no_answer: bool = False  # the device stays silent (dead, wrong unit id, broken wire)
    exception: int | None = None  # answer every request with this Modbus exception code
    delay_s: float = 0.0  # extra time before each answer (a slow, overloaded PLC)
    drop_rate: float = 0.0  # share of requests left unanswered (a noisy link, a busy PLC)
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    @property
    def active(self) -> bool:
        return (
            self.no_answer or self.exception is not None or self.delay_s > 0 or (self.drop_rate > 0)
        )

    def drops(self) -> bool:
        """Whether this request goes unanswered."""
        return self.no_answer or (self.drop_rate > 0 and self.rng.random() < self.drop_rate)
