"""Retransmission timeout from measured round trips (Jacobson/Karels, RFC 6298).

SRTT and RTTVAR follow each clean sample; RTO = SRTT + max(G, 4 * RTTVAR), clamped. Karn's
rule is the caller's job: never sample a frame that was retransmitted (its ACK is ambiguous).
A timeout doubles the RTO until the next clean sample.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FRAME_BYTES = 255


def frame_time(baud: int | None) -> float:
    """Seconds one maximum frame takes on the wire (10 bit times per byte); 0 if unknown."""
    return MAX_FRAME_BYTES * 10 / baud if baud else 0.0


def rto_bounds(baud: int | None) -> tuple[float, float]:
    """(RTO_min, RTO_max) of docs/mcu-protocol.md 3.1: at least three maximum frames plus
    20 ms (the frame, one the peer is already sending, the peer's frame with the ACK), so a
    slow line never times out a frame that is merely still on the wire."""
    rto_min = max(0.04, 3 * frame_time(baud) + 0.02)
    return rto_min, max(0.5, 4 * rto_min)


def unak_interval(baud: int | None) -> float:
    """Least seconds between two unsynchronised NAKs (spec 3.2): 5 ms, or two NAK frames'
    wire time on a slow line."""
    return max(0.005, 14 * 10 / baud) if baud else 0.005


def estimator_for(baud: int | None, initial: float) -> RttEstimator:
    """An estimator with the spec's bounds for ``baud``; ``initial`` is raised to RTO_min."""
    lo, hi = rto_bounds(baud)
    return RttEstimator(initial_rto=max(initial, lo), min_rto=lo, max_rto=hi)


@dataclass
class RttEstimator:
    initial_rto: float = 0.2
    min_rto: float = 0.03
    max_rto: float = 1.0
    granularity: float = 0.002
    srtt: float | None = None
    rttvar: float = 0.0
    rto: float = 0.0
    samples: int = 0

    def __post_init__(self) -> None:
        self.rto = self.initial_rto

    def sample(self, rtt: float) -> None:
        if rtt < 0:
            return
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1
        self.rto = min(
            self.max_rto, max(self.min_rto, self.srtt + max(self.granularity, 4 * self.rttvar))
        )

    def backoff(self) -> None:
        self.rto = min(self.max_rto, self.rto * 2)

    def reset(self) -> None:
        self.srtt = None
        self.rttvar = 0.0
        self.rto = self.initial_rto
