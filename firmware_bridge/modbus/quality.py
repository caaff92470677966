"""Values as the node sees them: the value, when it was read, and whether to trust it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firmware_bridge.modbus.codec import Value


class Quality(StrEnum):
    GOOD = "good"  # read in the latest poll
    STALE = "stale"  # the latest poll failed; this is the last good value, still recent
    BAD = "bad"  # no trustworthy value; ``cause`` says why


@dataclass(frozen=True, slots=True)
class TagValue:
    device: str
    tag: str
    value: Value | None
    unit: str
    quality: Quality
    timestamp: float  # time.time() of the read that produced ``value`` (or of the failure)
    cause: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "device": self.device,
            "tag": self.tag,
            "value": self.value,
            "unit": self.unit,
            "quality": self.quality.value,
            "timestamp": self.timestamp,
            "cause": self.cause,
        }
