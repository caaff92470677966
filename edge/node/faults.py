"""Moved to ``edge.runtime.faults`` (the shared node runtime); kept for old imports."""

from edge.runtime.faults import (
    BOOT_GRACE_S,
    DEVICES,
    FaultDiff,
    FaultInfo,
    FaultTracker,
    Report,
    SafetyView,
    device_reason,
    wanted_faults,
)

__all__ = [
    "BOOT_GRACE_S",
    "DEVICES",
    "FaultDiff",
    "FaultInfo",
    "FaultTracker",
    "Report",
    "SafetyView",
    "device_reason",
    "wanted_faults",
]
