"""Byte-level line faults: corrupted and dropped bytes at a rate, reproducibly seeded.

Errors are placed by geometric skipping (the gap to the next error is drawn once), so a clean
line costs nothing and a 1e-3 rate costs one random draw per thousand bytes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class LineFaults:
    """Faults applied to one direction of the line."""

    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    corrupted: int = 0
    dropped: int = 0
    _to_corrupt: int = -1
    _to_drop: int = -1

    def _gap(self, rate: float) -> int:
        if rate <= 0:
            return -1
        if rate >= 1:
            return 0
        return int(math.log(1.0 - self.rng.random()) / math.log(1.0 - rate))

    def set_rates(self, corrupt_rate: float | None = None, drop_rate: float | None = None) -> None:
        if corrupt_rate is not None:
            self.corrupt_rate = corrupt_rate
            self._to_corrupt = self._gap(corrupt_rate)
        if drop_rate is not None:
            self.drop_rate = drop_rate
            self._to_drop = self._gap(drop_rate)

    def apply(self, data: bytes) -> bytes:
        if self.corrupt_rate <= 0 and self.drop_rate <= 0:
            return data
        if self._to_corrupt < 0 and self.corrupt_rate > 0:
            self._to_corrupt = self._gap(self.corrupt_rate)
        if self._to_drop < 0 and self.drop_rate > 0:
            self._to_drop = self._gap(self.drop_rate)
        buf = bytearray(data)
        if self.corrupt_rate > 0:
            pos = self._to_corrupt
            while pos < len(buf):
                buf[pos] ^= self.rng.randrange(1, 256)
                self.corrupted += 1
                pos += 1 + self._gap(self.corrupt_rate)
            self._to_corrupt = pos - len(buf)
        if self.drop_rate > 0:
            drops = []
            pos = self._to_drop
            while pos < len(buf):
                drops.append(pos)
                pos += 1 + self._gap(self.drop_rate)
            self._to_drop = pos - len(buf)
            for i in reversed(drops):
                del buf[i]
            self.dropped += len(drops)
        return bytes(buf)
