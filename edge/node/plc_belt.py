"""The conveyor PLC as the cell sees it: e-stop, belt moving or not, chutes full, and the
run/speed commands. Polling runs in the Modbus library's threads; each poll is handed to
the node's loop as one ``PlcStatus``, and writes run in a worker thread.

A tag of bad quality is never read as a value: an e-stop input we cannot read is "device
lost", which the safety machine turns into a stop (or what the config says).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.cell.wiring import PlcBinding
from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.poller import Poller
from firmware_bridge.modbus.quality import Quality, TagValue

log = logging.getLogger("wolfpack.node.plc")


@dataclass(frozen=True)
class PlcStatus:
    online: bool
    why: str = ""  # when not online: the cause the Modbus layer gave
    estop: bool = False
    speed_mm_s: float = 0.0
    moving: bool = False
    full: dict[str, bool] = field(default_factory=dict)


class PlcBelt:
    def __init__(
        self,
        modbus: ModbusConfig,
        binding: PlcBinding,
        loop: asyncio.AbstractEventLoop,
        on_status: Callable[[PlcStatus], None],
    ) -> None:
        self.binding = binding
        self.loop = loop
        self.on_status = on_status
        self.poller = Poller(modbus, self._on_values)
        self.device = self.poller.devices[binding.device]
        self.last: PlcStatus | None = None
        self._last_good = time.monotonic()
        self._bad_since: float | None = None

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def _on_values(self, device: str, values: dict[str, TagValue]) -> None:
        if device != self.binding.device:
            return
        status = self.interpret(values)
        now = time.monotonic()
        if status.online:
            self._last_good, self._bad_since = now, None
        else:
            if self._bad_since is None:
                self._bad_since = now
                log.warning("PLC read failed (%s); lost if it lasts %d ms", status.why,
                            self.binding.lost_after_ms)  # fmt: skip
            if now - self._last_good < self.binding.lost_after_ms / 1000:
                return  # a short outage: the last good status stands
        self.loop.call_soon_threadsafe(self._deliver, status)

    def _deliver(self, status: PlcStatus) -> None:
        self.last = status
        self.on_status(status)

    def interpret(self, values: dict[str, TagValue]) -> PlcStatus:
        b = self.binding
        needed = [b.estop, b.speed]
        for tag in needed:
            v = values.get(tag)
            if v is None or v.quality is Quality.BAD or v.value is None:
                why = v.cause if v is not None and v.cause else f"tag {tag} not read"
                return PlcStatus(online=False, why=f"{b.device}: {why}")
        estop = bool(values[b.estop].value)
        speed = float(values[b.speed].value) / b.speed_units_per_mm_s  # type: ignore[arg-type]
        full = {}
        for chute, tag in b.chute_full.items():
            v = values.get(tag)
            if v is not None and v.quality is not Quality.BAD and v.value is not None:
                full[chute] = bool(v.value)
        return PlcStatus(
            online=True,
            estop=estop,
            speed_mm_s=speed,
            moving=abs(speed) >= b.moving_below_mm_s,
            full=full,
        )

    async def command(self, run: bool, speed_mm_s: float | None = None) -> None:
        """Write the speed setpoint (if given and configured), then the run coil. Raises the
        Modbus error when the PLC does not take it; the caller decides what that means."""
        b = self.binding
        if run and speed_mm_s is not None and b.speed_setpoint is not None:
            setpoint = speed_mm_s * b.setpoint_units_per_mm_s
            await asyncio.to_thread(self.device.write, b.speed_setpoint, setpoint)
        await asyncio.to_thread(self.device.write, b.run, run)
        at = f" at {speed_mm_s:.0f} mm/s" if run and speed_mm_s else ""
        log.info("belt %s%s", "run" if run else "stop", at)
