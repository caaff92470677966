"""Poll every device on its period: one worker thread per line, lines independent.

Devices on different lines (TCP endpoints, RS-485 ports) never wait for each other. Devices
sharing a line take turns; a dead one costs the line at most one timeout per backoff period.
Schedules are fixed-rate (next = previous + period), so an occasional slow turn does not
shift a device's period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from firmware_bridge.modbus.config import ModbusConfig
from firmware_bridge.modbus.device import ModbusDevice
from firmware_bridge.modbus.link import ModbusLink, open_link
from firmware_bridge.modbus.quality import TagValue

log = logging.getLogger("wolfpack.modbus")

OnValues = Callable[[str, dict[str, TagValue]], None]


class LineWorker:
    def __init__(self, link: ModbusLink, devices: list[ModbusDevice], on_values: OnValues) -> None:
        self.link = link
        self.devices = devices
        self.on_values = on_values
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"modbus {link.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.link.close()

    def _run(self) -> None:
        now = time.monotonic()
        due = {dev.cfg.name: now for dev in self.devices}
        while not self._stop.is_set():
            now = time.monotonic()
            dev = min(self.devices, key=lambda d: max(due[d.cfg.name], self._probe(d)))
            at = max(due[dev.cfg.name], self._probe(dev))
            if at > now:
                self._stop.wait(at - now)
                continue
            period = dev.cfg.poll_ms / 1000
            due[dev.cfg.name] += period
            if due[dev.cfg.name] < now - period:  # fell behind (e.g. offline): restart rate
                due[dev.cfg.name] = now + period
            try:
                values = dev.poll()
            except Exception:  # a bug must not silence the other devices on this line
                log.exception("modbus device %s: poll failed", dev.cfg.name)
                continue
            self.on_values(dev.cfg.name, values)

    @staticmethod
    def _probe(dev: ModbusDevice) -> float:
        return 0.0 if dev.online else dev.next_probe


class Poller:
    """Owns the links and devices of a ``ModbusConfig`` and polls them in the background."""

    def __init__(self, cfg: ModbusConfig, on_values: OnValues | None = None) -> None:
        self.cfg = cfg
        self.links: dict[str, ModbusLink] = {}
        self.devices: dict[str, ModbusDevice] = {}
        lines: dict[str, list[ModbusDevice]] = {}
        for dcfg in cfg.devices:
            key = dcfg.link.key
            if key not in self.links:
                self.links[key] = open_link(dcfg.link)
            dev = ModbusDevice(dcfg, self.links[key])
            self.devices[dcfg.name] = dev
            lines.setdefault(key, []).append(dev)
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, TagValue]] = {}
        self._callback = on_values
        self.workers = [LineWorker(self.links[k], devs, self._store) for k, devs in lines.items()]

    def _store(self, device: str, values: dict[str, TagValue]) -> None:
        with self._lock:
            self._latest.setdefault(device, {}).update(values)
        if self._callback is not None:
            self._callback(device, values)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def snapshot(self) -> dict[str, dict[str, TagValue]]:
        """The latest value of every tag, aged to now (a value nobody refreshed degrades)."""
        now = time.time()
        with self._lock:
            return {
                dev: {name: self.devices[dev].age(v, now) for name, v in values.items()}
                for dev, values in self._latest.items()
            }

    def __enter__(self) -> Poller:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
