"""The `cell:` section of a board config: belt geometry, photo-eyes, chutes, routing, timing.

Positions are millimetres along the belt from its infeed end, in the direction of travel.
The encoder count grows with belt travel at ``belt.counts_per_mm``. Every check that can be
made on the config alone is made here, so a wrong chute position fails at load time with a
located error instead of as a mis-sort at line speed.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edge.cell.wiring import BrainBinding, CameraBinding, PlcBinding, ScannerBinding
from edge.safety.config import SafetyConfig

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("expected 1-64 lower-case letters, digits, '-' or '_'")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


CellId = Annotated[str, AfterValidator(_check_id)]
Pattern = Annotated[str, AfterValidator(_check_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BeltConfig(_Strict):
    counts_per_mm: float = Field(gt=0, description="encoder counts per mm of belt travel")
    length_mm: float = Field(gt=0, description="infeed to the end of the belt")
    nominal_speed_mm_s: float = Field(gt=0, description="belt speed in normal operation")
    mcu: str = Field("main", description="name of the MCU (mcus[].name) that has the encoder")
    encoder: int = Field(0, ge=0, le=255, description="encoder index on that MCU")


class PhotoEyeConfig(_Strict):
    id: CellId
    position_mm: float = Field(ge=0, description="where the beam crosses the belt")
    mcu_input: int = Field(
        ge=0, le=255, description="MCU input pin (its edges carry the encoder count)"
    )
    jam_mm: float = Field(
        1500.0, gt=0, description="blocked for longer than this much belt travel = a jam"
    )


class ChuteConfig(_Strict):
    id: CellId
    diverter_mm: float = Field(gt=0, description="where the diverter pushes the parcel off")
    output: int = Field(ge=0, le=255, description="MCU output pin of the diverter")
    stroke_ms: float = Field(150.0, gt=0, le=5000, description="how long the diverter is out")
    fire_offset_mm: float = Field(
        0.0,
        description="fire when the parcel's leading edge is this far past diverter_mm "
        "(tune so the paddle meets the parcel's middle)",
    )
    confirm_input: int | None = Field(
        None, ge=0, le=255, description="MCU input of the chute-entry sensor (confirmation)"
    )


class RejectChuteConfig(_Strict):
    """Where everything goes that cannot be sorted. By default the end of the belt: parcels
    run off into it without a stroke, so a reject never depends on timing."""

    id: CellId = "reject"
    position_mm: float | None = Field(None, gt=0, description="default: the belt's end")
    output: int | None = Field(None, ge=0, le=255, description="diverter, if not a run-off")
    stroke_ms: float = Field(150.0, gt=0, le=5000)
    confirm_input: int | None = Field(None, ge=0, le=255)


class RoutingRule(_Strict):
    """First matching rule wins; an unset condition matches anything."""

    chute: CellId = Field(description="a chute id, or the reject chute's id")
    label: Pattern | None = Field(None, description="regular expression the whole label matches")
    classes: list[str] | None = Field(None, description="parcel classes, e.g. [box, polybag]")
    min_length_mm: float | None = Field(None, ge=0)
    max_length_mm: float | None = Field(None, gt=0)
    max_width_mm: float | None = Field(None, gt=0)
    max_height_mm: float | None = Field(None, gt=0)


class CellConfig(_Strict):
    belt: BeltConfig
    photo_eyes: list[PhotoEyeConfig] = Field(min_length=1)
    induction_eye: CellId = Field(description="the photo-eye whose edges start tracking")
    chutes: list[ChuteConfig] = Field(min_length=1)
    reject: RejectChuteConfig = Field(default_factory=RejectChuteConfig)
    routing: list[RoutingRule] = Field(default_factory=list)
    decision_point_mm: float = Field(
        gt=0, description="a parcel with no label read by here goes to reject (unreadable)"
    )
    brain_deadline_ms: int = Field(
        30, ge=1, le=10000, description="after this the routing table decides instead"
    )
    schedule_margin_ms: float = Field(
        20.0,
        gt=0,
        description="a stroke must be at least this far ahead (at nominal speed) to schedule",
    )
    match_tolerance_mm: float = Field(
        40.0, gt=0, description="how far a sighting may be from a tracked parcel to be it"
    )
    confirm_window_mm: float = Field(
        400.0, gt=0, description="a chute sensor edge this far past the diverter confirms"
    )
    aim: Literal["leading_edge", "centre"] = Field(
        "leading_edge",
        description="what a stroke aims at: the leading edge (+ fire_offset_mm), or the "
        "parcel's centre once its length is known from the induction eye",
    )
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    plc: PlcBinding | None = Field(None, description="the conveyor PLC: belt run, speed, e-stop")
    scanners: list[ScannerBinding] = Field(
        default_factory=list, description="fixed label scanners and where they read"
    )
    camera: CameraBinding | None = Field(
        None, description="use the vision section's camera as a label and class source"
    )
    brain: BrainBinding = Field(
        default_factory=BrainBinding, description="the brain's routing request and answer"
    )

    @property
    def reject_position_mm(self) -> float:
        return (
            self.reject.position_mm if self.reject.position_mm is not None else self.belt.length_mm
        )

    @property
    def induction(self) -> PhotoEyeConfig:
        return next(e for e in self.photo_eyes if e.id == self.induction_eye)

    def chute(self, chute_id: str) -> ChuteConfig | None:
        return next((c for c in self.chutes if c.id == chute_id), None)

    @property
    def min_lead_counts(self) -> int:
        """The least distance ahead, in counts, a stroke may be scheduled."""
        mm = self.belt.nominal_speed_mm_s * self.schedule_margin_ms / 1000
        return max(1, round(mm * self.belt.counts_per_mm))

    @model_validator(mode="after")
    def _consistent(self) -> CellConfig:
        length = self.belt.length_mm
        _unique("photo-eye", [e.id for e in self.photo_eyes])
        _unique("chute", [c.id for c in self.chutes] + [self.reject.id])
        outputs = [c.output for c in self.chutes]
        if self.reject.output is not None:
            outputs.append(self.reject.output)
        _unique("diverter output", [str(o) for o in outputs])
        eyes = {e.id: e for e in self.photo_eyes}
        if self.induction_eye not in eyes:
            raise ValueError(
                f"induction_eye {self.induction_eye!r} is not a photo-eye; "
                f"photo-eyes: {', '.join(eyes)}"
            )
        for eye in self.photo_eyes:
            if eye.position_mm > length:
                raise ValueError(f"photo-eye {eye.id!r} at {eye.position_mm} mm is off the belt")
        start = eyes[self.induction_eye].position_mm
        if not start < self.decision_point_mm:
            raise ValueError(
                f"decision_point_mm ({self.decision_point_mm}) must be downstream of the "
                f"induction eye ({start} mm)"
            )
        reject_at = self.reject_position_mm
        if reject_at > length:
            raise ValueError(f"reject position {reject_at} mm is off the belt ({length} mm)")
        for chute in self.chutes:
            if not self.decision_point_mm < chute.diverter_mm < reject_at:
                raise ValueError(
                    f"chute {chute.id!r}: diverter_mm {chute.diverter_mm} must lie between "
                    f"decision_point_mm ({self.decision_point_mm}) and the reject chute "
                    f"({reject_at} mm), so every parcel can still reach reject"
                )
        known = {c.id for c in self.chutes} | {self.reject.id}
        if self.plc is not None:
            for chute_id in self.plc.chute_full:
                if chute_id not in known_ids(self):
                    raise ValueError(
                        f"plc.chute_full: chute {chute_id!r} does not exist; chutes: "
                        f"{', '.join(sorted(known_ids(self)))}"
                    )
        for i, rule in enumerate(self.routing):
            if rule.chute not in known:
                raise ValueError(
                    f"routing rule {i}: chute {rule.chute!r} does not exist; chutes: "
                    f"{', '.join(sorted(known))}"
                )
        return self


def known_ids(cfg: CellConfig) -> set[str]:
    return {c.id for c in cfg.chutes} | {cfg.reject.id}


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} appears more than once; each must be unique")
        seen.add(name)
