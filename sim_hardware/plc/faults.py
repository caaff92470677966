"""Faults a test or the CLI injects into the simulated PLC, per unit id or for all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FaultPlan:
    """Mutable on purpose: tests flip faults while masters are polling."""

    no_answer: bool = False  # the device stays silent (dead, wrong unit id, broken wire)
    exception: int | None = None  # answer every request with this Modbus exception code
    delay_s: float = 0.0  # extra time before each answer (a slow, overloaded PLC)

    @property
    def active(self) -> bool:
        return self.no_answer or self.exception is not None or self.delay_s > 0
