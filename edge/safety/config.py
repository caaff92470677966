"""The safety part of the `cell:` section: what losing a device does, how fast e-stop stops.

A separate model so the safety state machine can be built and tested without a whole cell.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LossPolicy = Literal["stop", "degrade"]


class DeviceLossPolicy(BaseModel):
    """Per device: 'stop' = stop the belt and fault (reset needed), 'degrade' = keep running
    without it (the cell falls back: no brain -> routing table, no camera -> scanner or reject)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mcu: LossPolicy = Field("stop", description="no MCU: no diverter can fire, so stop")
    plc: LossPolicy = Field("stop", description="no PLC: the belt is not under control, so stop")
    camera: LossPolicy = Field("degrade", description="no camera: labels from the scanner only")
    scanner: LossPolicy = Field("degrade", description="no scanner: labels from the camera only")
    brain: LossPolicy = Field("degrade", description="no brain: the local routing table decides")

    def policy(self, device: str) -> LossPolicy:
        """The policy of ``device``; an unknown device name is a programming error."""
        if device not in type(self).model_fields:
            known = ", ".join(type(self).model_fields)
            raise ValueError(f"unknown device {device!r}; known devices: {known}")
        value: LossPolicy = getattr(self, device)
        return value


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    estop_stop_ms: int = Field(
        500,
        ge=10,
        le=10000,
        description="the belt must be at standstill this long after an e-stop; longer is a fault",
    )
    device_loss: DeviceLossPolicy = Field(
        default_factory=DeviceLossPolicy, description="what losing each device does"
    )
