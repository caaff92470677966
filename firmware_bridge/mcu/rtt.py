"""Retransmission timeout from measured round trips (Jacobson/Karels, RFC 6298).

SRTT and RTTVAR follow each clean sample; RTO = SRTT + max(G, 4 * RTTVAR), clamped. Karn's
rule is the caller's job: never sample a frame that was retransmitted (its ACK is ambiguous).
A timeout doubles the RTO until the next clean sample.
"""

from __future__ import annotations

from dataclasses import dataclass


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
