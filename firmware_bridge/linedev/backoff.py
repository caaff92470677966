"""Reconnect delays: exponential from a minimum to a cap, with jitter so that many devices
lost at once (a switch reboot) do not all come back in the same millisecond."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before attempt ``attempt`` (0-based): in [base/2, base], base = min_s * 2**attempt,
    capped at max_s, and never below min_s."""
    base = min(max_s, min_s * (2.0 ** min(attempt, 30)))
    return max(min_s, base * (0.5 + 0.5 * rng.random()))
