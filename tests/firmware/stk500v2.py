"""A stand-in for the Arduino Mega 2560's STK500v2 bootloader on a pty, so the real avrdude
can flash, verify and be refused without a board (Atmel AVR068, the commands avrdude's
`wiring` programmer sends). It keeps the flash it was given and answers reads from it."""

from __future__ import annotations

import os
import threading
import time
import tty
from pathlib import Path

START, TOKEN, OK, FAILED = 0x1B, 0x0E, 0x00, 0xC0
PARAMS = {0x90: 0x0F, 0x91: 0x02, 0x92: 0x0A, 0x94: 50, 0x98: 1}  # HW_VER, SW_MAJOR, ...


class FakeBootloader:
    def __init__(
        self, link: Path, signature: bytes = bytes((0x1E, 0x98, 0x01)), bad_cell: int = -1
    ) -> None:
        """``signature``: the chip's; ``bad_cell``: a flash byte that reads back wrong."""
        self.signature = signature
        self.bad_cell = bad_cell
        self.flash = bytearray(b"\xff" * (256 * 1024))
        self.written: set[int] = set()  # byte addresses programmed
        self.commands: list[int] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.link = link
        link.symlink_to(os.ttyname(self._slave))
        self._address = 0  # byte address
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            try:
                buf += os.read(self._master, 4096)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            while True:
                start = buf.find(START)
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < 5:
                    break
                size = (buf[2] << 8) | buf[3]
                if len(buf) < 6 + size:
                    break
                msg = bytes(buf[: 6 + size])
                del buf[: 6 + size]
                x = 0
                for b in msg:
                    x ^= b
                if msg[4] != TOKEN or x:
                    continue  # a bad message: the bootloader stays silent
                self._answer(msg[1], msg[5 : 5 + size])

    def _answer(self, seq: int, body: bytes) -> None:
        cmd = body[0]
        self.commands.append(cmd)
        if cmd == 0x01:  # SIGN_ON
            out = bytes((cmd, OK, 8)) + b"AVRISP_2"
        elif cmd == 0x03:  # GET_PARAMETER
            out = bytes((cmd, OK, PARAMS.get(body[1], 0)))
        elif cmd == 0x06:  # LOAD_ADDRESS: a word address, bit 31 = extended
            word = int.from_bytes(body[1:5], "big") & 0x7FFFFFFF
            self._address = word * 2
            out = bytes((cmd, OK))
        elif cmd == 0x13:  # PROGRAM_FLASH_ISP
            n = (body[1] << 8) | body[2]
            data = body[10 : 10 + n]
            self.flash[self._address : self._address + n] = data
            self.written.update(range(self._address, self._address + n))
            self._address += n
            out = bytes((cmd, OK))
        elif cmd == 0x14:  # READ_FLASH_ISP
            n = (body[1] << 8) | body[2]
            data = bytearray(self.flash[self._address : self._address + n])
            if self._address <= self.bad_cell < self._address + n:
                data[self.bad_cell - self._address] ^= 0x01
            self._address += n
            out = bytes((cmd, OK)) + bytes(data) + bytes((OK,))
        elif cmd == 0x1B:  # READ_SIGNATURE_ISP: index in the SPI command's third byte
            out = bytes((cmd, OK, self.signature[body[4] & 3], OK))
        elif cmd in (0x18, 0x1A, 0x1C):  # fuses, lock bits, oscillator calibration
            out = bytes((cmd, OK, 0xFF, OK))
        elif cmd == 0x1D:  # SPI_MULTI (avrdude's universal commands)
            n_rx, tx = body[2], body[4:]
            rx = bytearray(n_rx)
            if tx[:1] == b"\x30" and n_rx >= 4:
                rx[3] = self.signature[tx[2] & 3]
            out = bytes((cmd, OK)) + bytes(rx) + bytes((OK,))
        elif cmd in (0x02, 0x10, 0x11, 0x12):  # SET_PARAMETER, ENTER/LEAVE PROGMODE, ERASE
            out = bytes((cmd, OK))
        else:
            out = bytes((cmd, FAILED))
        frame = bytes((START, seq, len(out) >> 8, len(out) & 0xFF, TOKEN)) + out
        x = 0
        for b in frame:
            x ^= b
        os.write(self._master, frame + bytes((x,)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            os.close(fd)
        if self.link.is_symlink():
            self.link.unlink()
