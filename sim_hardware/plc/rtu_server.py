"""Modbus RTU transport of the simulated PLC on a pty, with modelled wire time.

A pty delivers bytes instantly whatever the baud rate, so the wire is modelled: an answer
leaves when a real RS-485 line would have finished it (request characters + turnaround +
answer characters, at the configured baud). The slave side is reachable through a stable
symlink; ``pull_cable`` removes the pty for a while and brings up a new one behind the same
symlink, as a USB RS-485 adapter that was unplugged and plugged in again would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty
from pathlib import Path

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from sim_hardware.plc.engine import PlcEngine

log = logging.getLogger("wolfpack.sim.plc")


def char_time(baud: int, parity: str = "E", stop_bits: int = 1) -> float:
    return (1 + 8 + (0 if parity == "N" else 1) + stop_bits) / baud


class PlcRtuServer:
    def __init__(
        self, engine: PlcEngine, link: str | Path, baud: int = 19200, parity: str = "E"
    ) -> None:
        self.engine = engine
        self.link = Path(link)
        self.baud = baud
        self.char_s = char_time(baud, parity)
        self._master = -1
        self._slave = -1
        self._buffer = b""
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.frames_seen = 0
        # Bus discipline as a real slave would see it: a request that arrives while this
        # PLC is still answering is a collision; ``gaps`` are the silences (s) between the
        # end of an answer and the first byte of the next request.
        self.collisions = 0
        self.gaps: list[float] = []
        self._answering = False
        self._answered_at: float | None = None

    async def start(self) -> None:
        self._open_pty()
        self._task = asyncio.get_running_loop().create_task(self._process())

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        tmp = self.link.with_name(self.link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self._slave))
        tmp.replace(self.link)
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def _close_pty(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_pty()

    async def pull_cable(self, seconds: float) -> None:
        """The adapter vanishes for ``seconds``; then a new pty appears behind the symlink."""
        self._close_pty()
        await asyncio.sleep(seconds)
        self._buffer = b""
        self._open_pty()

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        if not self._buffer and self._queue.empty():  # first bytes of a new frame
            if self._answering:
                self.collisions += 1
            elif self._answered_at is not None:
                self.gaps.append(time.monotonic() - self._answered_at)
                self._answered_at = None
        self._queue.put_nowait(data)

    async def _process(self) -> None:
        framer = FramerRTU(DecodePDU(is_server=True))
        while True:
            chunk = await self._queue.get()
            self._buffer += chunk
            while self._buffer:
                try:
                    used, pdu = framer.handleFrame(self._buffer, 0, 0)
                except Exception as exc:  # an undecodable frame: a real device stays silent
                    log.debug("plc rtu: dropping undecodable frame: %s", exc)
                    self._buffer = b""
                    break
                if pdu is None:
                    if used:
                        self._buffer = self._buffer[used:]  # CRC error: garbage, silence
                    break
                request_len = used
                self._buffer = self._buffer[used:]
                self.frames_seen += 1
                self._answering = True
                # The request's last character reaches the PLC request_len characters later.
                response = await self.engine.answer(pdu, extra_delay_s=request_len * self.char_s)
                if response is None:
                    self._answering = False
                    continue
                frame = framer.buildFrame(response)
                # ... and the answer is complete on the wire after its own characters.
                ready = time.monotonic() + len(frame) * self.char_s
                await asyncio.sleep(max(0.0, ready - time.monotonic()))
                if self._master >= 0:
                    with contextlib.suppress(OSError):
                        os.write(self._master, frame)
                    self._answered_at = time.monotonic()
                self._answering = False
