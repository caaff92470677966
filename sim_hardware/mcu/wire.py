"""The simulated MCU's end of a serial line: a real pty behind a stable symlink.

A pty moves bytes instantly, so wire time is modelled here: each direction is a queue that
releases bytes at ``baud / 10`` bytes per second (start + 8 data + stop bits), in slices of
about 2 ms so a long burst is not delivered all at once. Faults (corruption, drops, stalls,
unplug/replug) are applied on this side, so the host sees them exactly as it would on a real
cable. The wire keeps a slave fd open itself, so a host closing the port is not an error here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field

from sim_hardware.mcu.faults import LineFaults

log = logging.getLogger("wolfpack.sim.mcu")


@dataclass
class WireStats:
    bytes_to_host: int = 0
    bytes_from_host: int = 0
    unplugs: int = 0
    stalls: int = 0


@dataclass
class PtyWire:
    link_path: str
    baud: int | None
    on_receive: Callable[[bytes], None]
    to_host_faults: LineFaults = field(default_factory=LineFaults)
    from_host_faults: LineFaults = field(default_factory=LineFaults)
    stats: WireStats = field(default_factory=WireStats)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: int | None = None
        self._slave_keep: int | None = None
        self._rx_free = 0.0
        self._tx_free = 0.0
        self._stall_until = 0.0
        self._txbuf = bytearray()
        self._writer_on = False
        self.plugged = False
        self.slave_name = ""

    @property
    def byte_time(self) -> float:
        return 10.0 / self.baud if self.baud else 0.0

    @property
    def _slice(self) -> int:
        return max(16, int((self.baud or 0) / 10 * 0.002)) if self.baud else 1 << 30

    # ---- plug / unplug ---------------------------------------------------------------------
    def plug(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create a new pty and point the symlink at it (atomically)."""
        self._loop = loop
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave_keep = master, slave
        self.slave_name = os.ttyname(slave)
        tmp = f"{self.link_path}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.link_path)
        self._txbuf.clear()
        self._rx_free = self._tx_free = time.monotonic()
        loop.add_reader(master, self._on_readable)
        self.plugged = True

    def unplug(self) -> None:
        """Remove the symlink and close the pty: the host sees EOF/EIO, as on a USB unplug."""
        if not self.plugged:
            return
        self.plugged = False
        self.stats.unplugs += 1
        with contextlib.suppress(FileNotFoundError):
            if os.path.islink(self.link_path) and os.readlink(self.link_path) == self.slave_name:
                os.unlink(self.link_path)
        assert self._loop is not None and self._master is not None
        self._loop.remove_reader(self._master)
        if self._writer_on:
            self._loop.remove_writer(self._master)
            self._writer_on = False
        for fd in (self._master, self._slave_keep):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave_keep = None
        self._txbuf.clear()

    def close(self) -> None:
        self.unplug()
        with contextlib.suppress(FileNotFoundError):
            if os.path.islink(self.link_path):
                os.unlink(self.link_path)

    def stall(self, seconds: float) -> None:
        """The line stops moving bytes for ``seconds`` (both directions)."""
        self.stats.stalls += 1
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    # ---- host -> MCU -------------------------------------------------------------------------
    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # no slave open (should not happen: we keep one)
        if not data:
            return
        self.stats.bytes_from_host += len(data)
        data = self.from_host_faults.apply(data)
        if not data:
            return
        self._rx_free = self._pace(data, self._rx_free, self.on_receive, self._deliver)

    def _pace(
        self,
        data: bytes,
        line_free: float,
        now_sink: Callable[[bytes], None],
        later_sink: Callable[[bytes], None],
    ) -> float:
        """Hand ``data`` on at the modelled wire time; return when the line is free again."""
        now = time.monotonic()
        start = max(now, line_free, self._stall_until)
        if not self.byte_time and start <= now:
            now_sink(data)
            return now
        assert self._loop is not None
        step = self._slice
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            start += len(piece) * self.byte_time
            self._loop.call_at(self._loop_time(start), later_sink, piece)
        return start

    def _deliver(self, piece: bytes) -> None:
        if self.plugged:
            self.on_receive(piece)

    def _loop_time(self, mono: float) -> float:
        assert self._loop is not None
        return self._loop.time() + (mono - time.monotonic())

    # ---- MCU -> host -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.plugged or not data:
            return
        data = self.to_host_faults.apply(data)
        self._tx_free = self._pace(data, self._tx_free, self._write, self._write)

    def _write(self, data: bytes) -> None:
        if not self.plugged or self._master is None:
            return
        self.stats.bytes_to_host += len(data)
        if self._txbuf:
            if len(self._txbuf) < 1 << 16:  # nobody reading: the line just loses the bytes
                self._txbuf += data
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            return
        if n < len(data):
            self._txbuf += data[n:]
            if not self._writer_on and self._loop is not None:
                self._writer_on = True
                self._loop.add_writer(self._master, self._on_writable)

    def _on_writable(self) -> None:
        if self._master is None:
            return
        try:
            n = os.write(self._master, self._txbuf)
        except BlockingIOError:
            return
        except OSError:
            self._txbuf.clear()
            n = 0
        del self._txbuf[:n]
        if not self._txbuf and self._loop is not None:
            self._loop.remove_writer(self._master)
            self._writer_on = False
