"""Settings of the reference brain: the sort plan it applies and how slow or absent it is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sort_chutes: list[int] = Field(
        default_factory=lambda: list(range(7)), description="destination chutes, in plan order"
    )
    reject_chute: int = Field(7, ge=0, description="where unreadable labels go")
    routes: dict[str, int] = Field(
        default_factory=dict, description="label prefix -> chute, checked before the rule"
    )
    latency_ms: float = Field(5.0, ge=0, description="median time to answer")
    jitter_ms: float = Field(
        0.0, ge=0, description="spread of the answer time (lognormal, p99 ~ median + 2.3 x)"
    )
    absent: bool = Field(False, description="never answer (the brain is down)")
    seed: int = 0

    @model_validator(mode="after")
    def _plan(self) -> BrainConfig:
        if not self.sort_chutes:
            raise ValueError("sort_chutes needs at least one chute")
        if self.reject_chute in self.sort_chutes:
            raise ValueError(f"reject_chute {self.reject_chute} is also a sort chute")
        return self
