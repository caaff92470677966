"""Non-blocking byte transport over a serial port, driven by the asyncio loop's fd callbacks.

It owns the port, a write buffer for when the device is slower than us, and the two ways a
port dies (EIO or end of file on read, an error on write), which it reports once through
``on_lost`` after closing itself. Nothing here knows about frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable

import serial

from firmware_bridge.mcu.port import open_port


class SerialTransport:
    def __init__(
        self,
        path: str,
        baud: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.path = path
        self.baud = baud
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._wbuf = bytearray()
        self._writer_on = False
        self.bytes_written = 0
        self.bytes_read = 0

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the port and start reading; PortError names the port and the cause."""
        self._loop = loop
        self._serial = open_port(self.path, self.baud)
        self._fd = self._serial.fileno()
        self._wbuf.clear()
        loop.add_reader(self._fd, self._on_readable)

    def close(self, drain: bool = False) -> None:
        """Stop reading and close; with ``drain``, try once to write what is still buffered."""
        if self._fd is not None and drain and self._wbuf:
            with contextlib.suppress(OSError):
                os.write(self._fd, self._wbuf)
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            if self._writer_on:
                self._loop.remove_writer(self._fd)
        self._writer_on = False
        self._fd = None
        self._wbuf.clear()
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
        self._serial = None

    def _lost(self, reason: str) -> None:
        if self._fd is None:
            return
        self.close()
        self._on_lost(reason)

    def write(self, data: bytes) -> None:
        if self._fd is None or not data:
            return
        self.bytes_written += len(data)
        if self._wbuf:
            self._wbuf += data
            return
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._lost(f"write failed: {exc}")
            return
        if n < len(data):
            self._wbuf += data[n:]
            if not self._writer_on and self._loop is not None:
                self._writer_on = True
                self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        if self._fd is None:
            return
        try:
            n = os.write(self._fd, self._wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(f"write failed: {exc}")
            return
        del self._wbuf[:n]
        if not self._wbuf and self._loop is not None:
            self._loop.remove_writer(self._fd)
            self._writer_on = False

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            reason = "unplugged (EIO)" if exc.errno == errno.EIO else f"read failed: {exc}"
            self._lost(reason)
            return
        if not data:
            self._lost("unplugged (end of file)")
            return
        self.bytes_read += len(data)
        self._on_data(data)
