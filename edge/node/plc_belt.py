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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from edge.cell.wiring import PlcBinding
from firmware_bridge.modbus.config import ModbusConfig, TcpLinkConfig
from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.link import open_link
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
    run_coil: bool | None = None  # the run command as the PLC holds it (None: not read)
    received: float = 0.0  # monotonic time this status reached the node


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
        self.beat_device = self._heartbeat_device()
        self.last: PlcStatus | None = None
        self._last_good = time.monotonic()
        self._bad_since: float | None = None
        # Belt commands and heartbeats each have their own writer thread: a stop never
        # queues behind a heartbeat that is timing out, and neither waits for the loop.
        self._belt_writer = ThreadPoolExecutor(1, thread_name_prefix="plc-belt")
        self._beat_writer = ThreadPoolExecutor(1, thread_name_prefix="plc-heartbeat")
        self._intent = 0  # generation of the newest belt command; older ones stop retrying
        self.wanted_run: bool | None = None
        self.confirmed_run: bool | None = None  # what the PLC last took and read back
        self.confirmed_at = 0.0  # monotonic time of that confirmation
        self.write_failures = 0
        self._beat_value = 0
        self._beat_busy = False
        self.heartbeats = 0
        self.heartbeat_failures = 0

    def _heartbeat_device(self) -> ModbusDevice:
        """On Modbus TCP the heartbeat has a connection of its own, with a timeout of one
        period: it never waits behind polls or a belt write that is timing out, so a lossy
        link loses single beats, not the PLC's patience. An RS-485 line carries one frame at
        a time: there it shares the poller's device."""
        dev = self.device
        if self.binding.heartbeat is None or not isinstance(dev.cfg.link, TcpLinkConfig):
            return dev
        timeout = min(dev.cfg.timeout_ms, max(self.binding.heartbeat_ms, 10))
        cfg = dev.cfg.model_copy(update={"timeout_ms": timeout, "retries": 0})
        return ModbusDevice(cfg, open_link(cfg.link))

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()
        if self.beat_device is not self.device:
            self.beat_device.link.close()
        self._belt_writer.shutdown(wait=False, cancel_futures=True)
        self._beat_writer.shutdown(wait=False, cancel_futures=True)

    def _on_values(self, device: str, values: dict[str, TagValue]) -> None:
        if device != self.binding.device:
            return
        now = time.monotonic()
        status = replace(self.interpret(values), received=now)
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
        run = values.get(b.run)
        run_coil = None
        if run is not None and run.quality is not Quality.BAD and run.value is not None:
            run_coil = bool(run.value)
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
            run_coil=run_coil,
        )

    async def command(self, run: bool, speed_mm_s: float | None = None) -> None:
        """Write the speed setpoint (if given and configured), then the run coil, read back.
        Raises the Modbus error when the PLC does not take it; the caller decides."""
        await asyncio.get_running_loop().run_in_executor(
            self._belt_writer, self._write_belt, run, speed_mm_s
        )

    def _write_belt(self, run: bool, speed_mm_s: float | None, quick: bool = False) -> None:
        b = self.binding
        if run and b.ramp is not None:
            self.device.write(b.ramp, round(b.run_ramp_mm_s2 * b.ramp_units_per_mm_s2))
        if run and speed_mm_s is not None and b.speed_setpoint is not None:
            setpoint = speed_mm_s * b.setpoint_units_per_mm_s
            self.device.write(b.speed_setpoint, setpoint)
        self.device.write(b.run, run, verify=True)  # confirmed: the coil reads back as written
        if not run and quick and b.ramp is not None:
            # after the coil: the belt is already ramping down; this only makes it faster
            self.device.write(b.ramp, round(b.quick_stop_mm_s2 * b.ramp_units_per_mm_s2))
        at = f" at {speed_mm_s:.0f} mm/s" if run and speed_mm_s else ""
        how = " (quick stop)" if not run and quick and b.ramp is not None else ""
        log.info("belt %s%s%s (confirmed by the PLC)", "run" if run else "stop", at, how)

    def drive(
        self,
        run: bool,
        speed_mm_s: float | None,
        on_failure: Callable[[bool, BaseException], None],
        quick: bool = False,
    ) -> asyncio.Task[bool]:
        """Command the belt now: the write is handed to its thread before this returns (so
        before the caller reports anything). A stop is written again, with a doubling pause,
        until the PLC confirms it or a newer command replaces it; a start is tried once.
        ``on_failure(run, exc)`` is called on the loop after the first failed attempt."""
        self._intent += 1
        intent = self._intent
        self.wanted_run = run
        first = self.loop.run_in_executor(
            self._belt_writer, self._write_belt, run, speed_mm_s, quick
        )
        return self.loop.create_task(self._until_confirmed(intent, run, speed_mm_s, first,
                                                           on_failure, quick))  # fmt: skip

    async def _until_confirmed(
        self,
        intent: int,
        run: bool,
        speed_mm_s: float | None,
        attempt: asyncio.Future[None],
        on_failure: Callable[[bool, BaseException], None],
        quick: bool = False,
    ) -> bool:
        pause = self.binding.stop_retry_ms / 1000
        started = time.monotonic()
        tries = 1
        while True:
            try:
                await attempt
            except Exception as exc:
                self.write_failures += 1
                if tries == 1:
                    try:
                        on_failure(run, exc)
                    except Exception:  # its report failing must not end the retries
                        log.exception("belt %s failure handler failed", "start" if run else "stop")
                if run or intent != self._intent:
                    return False  # a failed start is a fault, not retried; a newer command won
                log.error("belt stop not confirmed (try %d): %s; again in %.0f ms",
                          tries, exc, pause * 1000)  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                if intent != self._intent:
                    return False
                tries += 1
                attempt = self.loop.run_in_executor(
                    self._belt_writer, self._write_belt, run, speed_mm_s, quick
                )
                continue
            if intent == self._intent:
                self.confirmed_run, self.confirmed_at = run, time.monotonic()
            if tries > 1:
                log.warning("belt stop confirmed after %d tries (%.0f ms)", tries,
                            (time.monotonic() - started) * 1000)  # fmt: skip
            return True

    def stopped_by_plc(self, status: PlcStatus) -> bool:
        """The PLC shows the run command cleared though we ran the belt and never stopped
        it: its communication watchdog (or its panel) stopped it. Reads older than the
        confirmation, plus a margin for a poll still in flight then, do not count."""
        margin = 0.5 + self.device.timeout * 3
        return (
            status.run_coil is False
            and self.wanted_run is True
            and self.confirmed_run is True
            and status.received > self.confirmed_at + margin
        )

    def heartbeat(self) -> None:
        """Write the next heartbeat value (from the node's loop, so a hung loop stops the
        heartbeat and the PLC's communication watchdog stops the belt). Skipped while the
        previous write is still on its way."""
        tag = self.binding.heartbeat
        if tag is None or self._beat_busy:
            return
        self._beat_busy = True
        self._beat_value = (self._beat_value + 1) & 0xFFFF
        try:
            future = self._beat_writer.submit(
                self.beat_device.write, tag, self._beat_value, False, 0
            )  # no retries: the next beat is the retry
        except RuntimeError:  # shut down
            self._beat_busy = False
            return
        future.add_done_callback(self._beat_done)

    def _beat_done(self, future: object) -> None:
        self._beat_busy = False
        exc = future.exception()  # type: ignore[attr-defined]
        if exc is None:
            self.heartbeats += 1
        else:
            self.heartbeat_failures += 1
