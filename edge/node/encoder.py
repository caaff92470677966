"""The belt's encoder count between the MCU's reports: the last report plus the speed seen
over the recent reports. Used to stamp sightings (a scanner read, a camera frame) that carry
only a time; strokes never use it (they are scheduled on exact counts)."""

from __future__ import annotations

from collections import deque


class EncoderClock:
    def __init__(self, window_s: float = 0.1) -> None:
        self.window_s = window_s
        self._reports: deque[tuple[float, int]] = deque()

    @property
    def count(self) -> int | None:
        return self._reports[-1][1] if self._reports else None

    def update(self, count: int, t: float) -> None:
        self._reports.append((t, count))
        while len(self._reports) > 2 and t - self._reports[1][0] >= self.window_s:
            self._reports.popleft()

    @property
    def counts_per_s(self) -> float:
        if len(self._reports) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._reports[0], self._reports[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def count_at(self, t: float) -> int | None:
        """The estimated count at monotonic time ``t`` (never before the last report's)."""
        if not self._reports:
            return None
        t1, c1 = self._reports[-1]
        return c1 + max(0, round(self.counts_per_s * (t - t1)))
