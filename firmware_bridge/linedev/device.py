"""The asyncio driver of one line device: opens its line, decodes readings, reconnects.

``LineDevice`` runs one task that opens the serial port or TCP connection, feeds what arrives
to the framing decoder, and turns frames into typed events on a queue: ``Read``, ``NoRead``,
``LineError`` (a reading that is not a valid label is one too, see ``reading.py``), and
``StateChange`` whenever the line goes up or down (with the reason). A lost line (unplug, EOF,
peer closed, silence past ``idle_timeout_s``) is reopened with backoff.
In trigger mode ``trigger()`` sends the command and returns the reading, or a ``NoRead`` with
cause 'timeout' when none arrives within the read window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from firmware_bridge.linedev.backoff import backoff_delay
from firmware_bridge.linedev.config import LineDeviceConfig
from firmware_bridge.linedev.events import (
    LineError,
    LineEvent,
    LinkState,
    NoRead,
    NoReadCause,
    Read,
    StateChange,
)
from firmware_bridge.linedev.framing import Frame, FrameError, LineDecoder
from firmware_bridge.linedev.links import Link, LinkOpenError, open_serial, open_tcp
from firmware_bridge.linedev.reading import INVALID, classify

log = logging.getLogger("wolfpack.linedev")


@dataclass
class LineStats:
    reads: int = 0
    no_reads: int = 0
    errors: int = 0
    refused: int = 0  # of the errors: readings refused as invalid (control bytes, pattern)
    connects: int = 0
    losses: int = 0
    bytes_in: int = 0
    triggers: int = 0
    dropped_events: int = 0  # the queue was full: nobody consumed the events


class LineDevice:
    """One line device. ``async with LineDevice(cfg) as dev: async for ev in dev.events(): ...``"""

    def __init__(
        self, config: LineDeviceConfig, queue_size: int = 10000, seed: int | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self.stats = LineStats()
        self.state: LinkState = "stopped"
        self.reason = "not started"  # why the line is in its state (the last failed attempt)
        self._decoder = LineDecoder(config.framing, config.max_line_length)
        self._queue: asyncio.Queue[LineEvent] = asyncio.Queue()
        self._queue_size = queue_size
        self._rng = random.Random(seed)
        self._link: Link | None = None
        self._lost: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[Read | NoRead] | None = None
        self._trigger_lock = asyncio.Lock()
        self._last_byte = 0.0
        self._connected = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> LineDevice:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._close_link()
        self._emit_outputs(self._decoder.flush(), time.time(), time.monotonic())
        self._set_state("stopped", "stopped by the host")

    async def __aenter__(self) -> LineDevice:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        return self._connected.is_set()

    # ---- consuming ------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[LineEvent]:
        while True:
            yield await self._queue.get()

    async def next_event(self, timeout: float | None = None) -> LineEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def trigger(self) -> Read | NoRead:
        """Trigger mode: ask for one reading; wait at most the configured read window."""
        trig = self.config.trigger
        if trig is None:
            raise RuntimeError(f"{self.name}: no trigger configured (line_devices[].trigger)")
        async with self._trigger_lock:
            if self._link is None:
                return self._no_read("disconnected", b"")
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self.stats.triggers += 1
            self._link.write(trig.command.encode(self.config.encoding))
            try:
                async with asyncio.timeout(trig.timeout_ms / 1000.0):
                    return await self._waiter
            except TimeoutError:
                if trig.stop_command and self._link is not None:
                    self._link.write(trig.stop_command.encode(self.config.encoding))
                return self._no_read("timeout", b"")
            finally:
                self._waiter = None

    # ---- the line -------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        rc = self.config.reconnect
        while True:
            loop = asyncio.get_running_loop()
            self._lost = loop.create_future()
            try:
                self._link = await self._open()
            except LinkOpenError as exc:
                self._set_state("disconnected", f"cannot open: {exc}")
                await asyncio.sleep(backoff_delay(attempt, rc.min_s, rc.max_s, self._rng))
                attempt += 1
                continue
            attempt = 0
            self.stats.connects += 1
            self._last_byte = time.monotonic()
            self._set_state("connected", self.config.link_description)
            watchdog = None
            if self.config.idle_timeout_s is not None:
                watchdog = loop.create_task(self._watch_idle(self.config.idle_timeout_s))
            try:
                reason = await self._lost
            finally:
                if watchdog is not None:
                    watchdog.cancel()
            self.stats.losses += 1
            self._close_link()
            self._emit_outputs(self._decoder.flush(), time.time(), time.monotonic())
            self._set_state("disconnected", reason)
            await asyncio.sleep(backoff_delay(0, rc.min_s, rc.max_s, self._rng))

    async def _open(self) -> Link:
        if self.config.serial is not None:
            return await open_serial(self.config.serial, self._on_data, self._on_lost)
        assert self.config.tcp is not None
        return await open_tcp(self.config.tcp, self._on_data, self._on_lost)

    def _close_link(self) -> None:
        link, self._link = self._link, None
        self._connected.clear()
        if link is not None:
            link.close()

    def _on_lost(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    async def _watch_idle(self, idle_s: float) -> None:
        while True:
            silent = time.monotonic() - self._last_byte
            if silent >= idle_s:
                self._on_lost(f"silent for {silent:.1f} s (idle_timeout_s {idle_s:g})")
                return
            await asyncio.sleep(idle_s - silent + 0.001)

    # ---- bytes to events ------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        mono, wall = time.monotonic(), time.time()
        self._last_byte = mono
        self.stats.bytes_in += len(data)
        self._emit_outputs(self._decoder.feed(data), wall, mono)

    def _emit_outputs(self, outputs: list[Frame | FrameError], wall: float, mono: float) -> None:
        for out in outputs:
            if isinstance(out, FrameError):
                self._emit(LineError(self.name, out.kind, out.detail, out.raw, wall, mono))
            else:
                self._emit(classify(self.config, out.payload, wall, mono))

    def _no_read(self, cause: NoReadCause, raw: bytes) -> NoRead:
        ev = NoRead(self.name, cause, raw, time.time(), time.monotonic())
        self._emit(ev)
        return ev

    def _emit(self, ev: LineEvent) -> None:
        if isinstance(ev, Read):
            self.stats.reads += 1
        elif isinstance(ev, NoRead):
            self.stats.no_reads += 1
        elif isinstance(ev, LineError):
            self.stats.errors += 1
            if ev.kind == INVALID:
                self.stats.refused += 1
            log.warning("%s: %s: %s", self.name, ev.kind, ev.detail)
        if isinstance(ev, (Read, NoRead)) and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(ev)
        if self._queue.qsize() >= self._queue_size:
            self._queue.get_nowait()
            self.stats.dropped_events += 1
        self._queue.put_nowait(ev)

    def _set_state(self, state: LinkState, reason: str) -> None:
        """Emit a StateChange only when the state changes: while the line stays down, each failed
        attempt updates ``reason`` and the log, not the event stream."""
        if state == self.state:
            if reason != self.reason:
                log.debug("%s: still %s (%s)", self.name, state, reason)
                self.reason = reason
            return
        self.state, self.reason = state, reason
        if state == "connected":
            self._connected.set()
        log.info("%s: %s (%s)", self.name, state, reason)
        self._emit(StateChange(self.name, state, reason, time.time(), time.monotonic()))
