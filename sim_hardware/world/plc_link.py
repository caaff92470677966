"""The world as the simulated PLC's conveyor: ``step(dt, PlcCommands) -> PlcStatus``.

``PlcSimulator(world_factory=lambda: PlcWorldAdapter(world))`` puts the cell behind the
Modbus register map: the run coil, speed setpoint and ramp drive the belt, the diverter
coils drive the diverters (beside the MCU's outputs), and the status registers show the
world's photo-eyes, chute-full sensors and e-stop.
"""

from __future__ import annotations

from sim_hardware.plc.world import STATIONS, PlcCommands, PlcStatus
from sim_hardware.world.clock import Clock
from sim_hardware.world.world import CellWorld


class PlcWorldAdapter:
    def __init__(self, world: CellWorld, clock: Clock | None = None, lag_s: float = 0.0) -> None:
        """With a ``clock`` (real time) the world is moved to ``clock.now() - lag_s`` at each
        step, whatever ``dt`` says; without one, by ``dt``."""
        self.world = world
        self.clock = clock
        self.lag_s = lag_s
        self._last: PlcCommands | None = None
        self._passed_last_eye = 0

    def step(self, dt: float, commands: PlcCommands) -> PlcStatus:
        w = self.world
        if commands != self._last:
            w.command_belt(commands.run, commands.speed_setpoint * 1000.0, commands.ramp_mm_s2)
            last = self._last.diverters if self._last else (False,) * STATIONS
            for i, (was, now) in enumerate(zip(last, commands.diverters, strict=False)):
                if now != was and i < len(w.diverters):
                    w.set_diverter(i, now, source="plc")
            self._last = commands
        if self.clock is None:
            w.advance(dt)
        else:
            w.catch_up(self.clock.now() - self.lag_s)
        return self.status()

    def status(self) -> PlcStatus:
        w = self.world
        t = w.t
        eyes = [w.eye_blocked(i) for i in range(len(w.eyes))][:STATIONS]
        full = []
        for chute in w.chutes[:STATIONS]:
            chute.drain(t)
            full.append(chute.full)
        speed = w.belt.speed_at(t) / 1000.0
        running = speed > 0 and not w.belt.estopped
        return PlcStatus(
            running=running,
            estop=w.belt.estopped,
            vfd_faulted=False,
            vfd_fault_code=0,
            speed=speed,
            photo_eyes=tuple(eyes + [False] * (STATIONS - len(eyes))),
            chute_full=tuple(full + [False] * (STATIONS - len(full))),
            parcel_count=w.left_belt,
            odometer_m=w.belt.position_at(t) / 1000.0,
            motor_current_a=0.5 + 2.0 * speed if running else 0.0,
            vfd_temperature_c=30.0 + 5.0 * speed,
        )
