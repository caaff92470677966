"""The conveyor the PLC controls: a belt with a VFD, photo-eyes, diverters and chutes.

The PLC only sees ``PlcCommands`` (what the master wrote) and reports ``PlcStatus``; any
object with ``step(dt, commands) -> PlcStatus`` can stand in for this model (the full
sorting-cell world of a later issue drives the PLC through the same two types).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

STATIONS = 8  # photo-eyes, diverters and chutes per belt


@dataclass(frozen=True, slots=True)
class PlcCommands:
    run: bool = False
    fault_reset: bool = False
    speed_setpoint: float = 0.0  # m/s
    ramp_mm_s2: int = 1000  # belt acceleration while ramping
    quick_stop: bool = False  # the communication watchdog's stop (ramp_mm_s2 is its ramp)
    diverters: tuple[bool, ...] = (False,) * STATIONS


@dataclass(frozen=True, slots=True)
class PlcStatus:
    running: bool
    estop: bool
    vfd_faulted: bool
    vfd_fault_code: int
    speed: float  # m/s, actual
    photo_eyes: tuple[bool, ...]  # True = beam blocked
    chute_full: tuple[bool, ...]
    parcel_count: int  # parcels that passed the last photo-eye
    odometer_m: float
    motor_current_a: float
    vfd_temperature_c: float


class PlcWorld(Protocol):
    def step(self, dt: float, commands: PlcCommands) -> PlcStatus: ...


@dataclass
class ConveyorWorld:
    """Belt ramps toward its setpoint while running; e-stop or a VFD fault stops it at once."""

    length_m: float = 10.0
    eye_positions_m: tuple[float, ...] = tuple(1.0 + i for i in range(STATIONS))
    parcel_length_m: float = 0.4
    max_speed: float = 3.0
    estop: bool = False
    vfd_fault_code: int = 0
    chute_full: list[bool] = field(default_factory=lambda: [False] * STATIONS)
    parcels: list[float] = field(default_factory=list)  # leading-edge positions, metres
    speed: float = 0.0
    odometer_m: float = 0.0
    parcel_count: int = 0
    running: bool = False

    def add_parcel(self, position_m: float = 0.0) -> None:
        self.parcels.append(position_m)

    def step(self, dt: float, commands: PlcCommands) -> PlcStatus:
        if commands.fault_reset and not self.estop:
            self.vfd_fault_code = 0
        self.running = commands.run and not self.estop and self.vfd_fault_code == 0
        if not self.running:
            self.speed = (
                0.0 if (self.estop or self.vfd_fault_code) else self._ramp(0.0, dt, commands)
            )
        else:
            target = min(max(commands.speed_setpoint, 0.0), self.max_speed)
            self.speed = self._ramp(target, dt, commands)
        travel = self.speed * dt
        self.odometer_m += travel
        last_eye = self.eye_positions_m[-1]
        moved: list[float] = []
        for pos in self.parcels:
            new = pos + travel
            if pos - self.parcel_length_m < last_eye <= new - self.parcel_length_m:
                self.parcel_count += 1
            if new - self.parcel_length_m < self.length_m:
                moved.append(new)
        self.parcels = moved
        return self.status()

    def _ramp(self, target: float, dt: float, commands: PlcCommands) -> float:
        step = commands.ramp_mm_s2 / 1000 * dt
        if abs(target - self.speed) <= step:
            return target
        return self.speed + step if target > self.speed else self.speed - step

    def status(self) -> PlcStatus:
        eyes = tuple(
            any(p - self.parcel_length_m <= eye <= p for p in self.parcels)
            for eye in self.eye_positions_m
        )
        return PlcStatus(
            running=self.running,
            estop=self.estop,
            vfd_faulted=self.vfd_fault_code != 0,
            vfd_fault_code=self.vfd_fault_code,
            speed=self.speed,
            photo_eyes=eyes,
            chute_full=tuple(self.chute_full),
            parcel_count=self.parcel_count,
            odometer_m=self.odometer_m,
            motor_current_a=0.5 + 2.0 * self.speed if self.running else 0.0,
            vfd_temperature_c=30.0 + 5.0 * self.speed,
        )
