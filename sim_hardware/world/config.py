"""The configuration of a simulated sorting cell: belt, arrivals, photo-eyes, stations,
scanners.

Positions are millimetres along the belt from the induction point (where a parcel's leading
edge enters); the belt moves toward +x. Every random choice is drawn from ``seed``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BeltConfig(_Strict):
    length_mm: float = Field(14_000.0, gt=0, description="induction point to the belt end")
    max_speed_mm_s: float = Field(3_000.0, gt=0, description="the VFD's top speed")
    estop_decel_mm_s2: float = Field(
        5_000.0, gt=0, description="deceleration while e-stopped (the brake), mm/s^2"
    )
    counts_per_mm: float = Field(1.0, gt=0, description="encoder counts per mm of belt travel")


class Range(_Strict):
    lo: float = Field(gt=0)
    hi: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.hi < self.lo:
            raise ValueError(f"hi ({self.hi}) must be >= lo ({self.lo})")
        return self


class ParcelClass(_Strict):
    """One class of the mix: its share and its size ranges (uniform), in mm."""

    weight: float = Field(gt=0, description="relative share of arrivals")
    length_mm: Range
    width_mm: Range
    height_mm: Range


def _default_classes() -> dict[str, ParcelClass]:
    def c(w: float, length: tuple[float, float], width: tuple[float, float], h: tuple[float, float]
          ) -> ParcelClass:  # fmt: skip
        return ParcelClass(
            weight=w,
            length_mm=Range(lo=length[0], hi=length[1]),
            width_mm=Range(lo=width[0], hi=width[1]),
            height_mm=Range(lo=h[0], hi=h[1]),
        )

    return {
        "box": c(0.45, (150, 450), (120, 400), (50, 400)),
        "polybag": c(0.30, (150, 400), (120, 350), (20, 120)),
        "envelope": c(0.15, (150, 350), (100, 250), (2, 20)),
        "irregular": c(0.10, (150, 400), (100, 350), (50, 300)),
    }


class ArrivalConfig(_Strict):
    rate_pph: float = Field(12_000.0, gt=0, description="mean arrivals, parcels per hour")
    min_gap_mm: float = Field(
        50.0, ge=0, description="least gap the induction leaves between parcels"
    )
    classes: dict[str, ParcelClass] = Field(default_factory=_default_classes)
    symbologies: dict[str, float] = Field(
        default_factory=lambda: {"Code128": 0.6, "QRCode": 0.25, "DataMatrix": 0.15},
        description="label formats and their shares",
    )
    unreadable_fraction: float = Field(
        0.02, ge=0, le=1, description="share of labels no reader can decode (torn, smeared)"
    )

    @model_validator(mode="after")
    def _non_empty(self) -> ArrivalConfig:
        if not self.classes:
            raise ValueError("at least one parcel class is needed")
        if not self.symbologies or any(w <= 0 for w in self.symbologies.values()):
            raise ValueError("symbologies need at least one format, every share > 0")
        return self


class StationConfig(_Strict):
    """A diverter and the chute it pushes into."""

    position_mm: float = Field(gt=0, description="the diverter's centre line on the belt")
    capture_mm: float = Field(
        30.0, gt=0, description="half-width of the capture window around position_mm"
    )
    capacity: int = Field(40, ge=1, description="parcels the chute holds before it is full")
    drain_per_min: float = Field(
        60.0, ge=0, description="parcels per minute taken out of the chute (0: never emptied)"
    )
    sensor_ms: float = Field(150.0, gt=0, description="how long a parcel blocks the chute eye")


class ScannerStation(_Strict):
    """A fixed barcode scanner over the belt: it reads a parcel's label as the parcel's centre
    passes ``position_mm`` (the world tells its scan listeners; ``SimCell`` puts the reading
    on a simulated scanner's line)."""

    position_mm: float = Field(gt=0, description="where the scanner reads, on the belt")


def _default_stations() -> list[StationConfig]:
    return [StationConfig(position_mm=3_000.0 + 1_200.0 * i) for i in range(8)]


class WorldConfig(_Strict):
    seed: int = 0
    belt: BeltConfig = Field(default_factory=BeltConfig)
    arrivals: ArrivalConfig = Field(default_factory=ArrivalConfig)
    photo_eyes_mm: list[tuple[float, float]] = Field(
        default_factory=lambda: [(600.0, 602.0)],
        description="photo-eye beams as [start, end] intervals on the belt, mm",
    )
    stations: list[StationConfig] = Field(default_factory=_default_stations)
    reject_station: int = Field(
        -1, description="index of the reject chute in stations (negative counts from the end)"
    )
    routes: dict[str, int] = Field(
        default_factory=dict,
        description="label prefix -> station, before the sort plan's rule (the same routes "
        "the reference brain is given, so truth and brain agree)",
    )
    scanners: list[ScannerStation] = Field(
        default_factory=list, description="fixed barcode scanners over the belt (default none)"
    )

    @model_validator(mode="after")
    def _layout(self) -> WorldConfig:
        if not self.stations:
            raise ValueError("a cell needs at least one station (the reject chute)")
        if not -len(self.stations) <= self.reject_station < len(self.stations):
            raise ValueError(
                f"reject_station {self.reject_station} is not one of the "
                f"{len(self.stations)} stations"
            )
        for i, s in enumerate(self.stations):
            if s.position_mm + s.capture_mm >= self.belt.length_mm:
                raise ValueError(f"station {i} at {s.position_mm} mm is past the belt end")
        for a, b in self.photo_eyes_mm:
            if not 0 <= a <= b <= self.belt.length_mm:
                raise ValueError(f"photo-eye [{a}, {b}] is not an interval on the belt")
        for i, sc in enumerate(self.scanners):
            if sc.position_mm >= self.belt.length_mm:
                raise ValueError(f"scanner {i} at {sc.position_mm} mm is past the belt end")
        return self

    @property
    def reject_index(self) -> int:
        return self.reject_station % len(self.stations)

    @property
    def sort_stations(self) -> list[int]:
        """Indices of the destination chutes (every station but the reject chute)."""
        return [i for i in range(len(self.stations)) if i != self.reject_index]
