"""One Modbus line: a TCP connection or an RS-485 port, one transaction at a time.

The lean path. A link moves PDUs (function code + data) and owns only the framing: the MBAP
header with transaction ids on TCP, unit address + CRC-16 on RTU (pymodbus's CRC table).
Measured in ``bench/modbus.py``: pymodbus's async client holds a lock per request and costs
~100 us of CPU per read; its sync client ~40 us; building frames with ``struct`` here costs
a fraction of that, so reads keep up with libmodbus. Each request carries its own timeout
(every device on a shared line keeps its own), and the RTU link keeps the 3.5-character
silent interval between frames, which pymodbus's async RTU client does not enforce.

Links reconnect by themselves: a failed connection is closed and the next request opens it
again (a restarted server, a re-plugged USB adapter, a pty that reappeared).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import termios
import threading
import time

import serial
from pymodbus.framer import FramerRTU

from firmware_bridge.modbus.config import RtuLinkConfig, TcpLinkConfig
from firmware_bridge.modbus.errors import (
    ModbusExceptionError,
    ModbusLinkError,
    ModbusProtocolError,
    ModbusTimeoutError,
)

_MBAP = struct.Struct(">HHHB")
_crc = FramerRTU.compute_CRC


class ModbusLink:
    """Base: serialises transactions (a lock) and turns exception answers into errors."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.transactions = 0

    def transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        """Send ``pdu`` to ``unit``; return the answer PDU (function code first).

        Raises ModbusExceptionError for an exception answer, ModbusTimeoutError when no
        answer came within ``timeout`` seconds, ModbusLinkError when the line is down,
        ModbusProtocolError when the answer does not belong to the request.
        """
        with self.lock:
            answer = self._transact(unit, pdu, timeout)
            self.transactions += 1
        if answer[0] != pdu[0]:
            if answer[0] == pdu[0] | 0x80 and len(answer) >= 2:
                raise ModbusExceptionError(f"{self.name} unit {unit}", pdu[0], answer[1])
            raise ModbusProtocolError(
                f"{self.name} unit {unit}: asked function {pdu[0]}, answer is {answer[0]}"
            )
        return answer

    def _timeout(self, unit: int, timeout: float) -> ModbusTimeoutError:
        return ModbusTimeoutError(f"{self.name} unit {unit}: no answer within {timeout:.3f} s")

    def _transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TcpLink(ModbusLink):
    def __init__(self, cfg: TcpLinkConfig) -> None:
        super().__init__(f"{cfg.host}:{cfg.port}")
        self.cfg = cfg
        self._sock: socket.socket | None = None
        self._tid = 0
        self._buffer = b""

    def _connect(self, timeout: float) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=timeout)
            except OSError as exc:
                raise ModbusLinkError(f"{self.name}: cannot connect: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buffer = sock, b""
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        sock = self._connect(timeout)
        self._tid = tid = self._tid % 0xFFFF + 1
        try:
            sock.settimeout(timeout)
            sock.sendall(_MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu)
            buffer = self._buffer
            while True:
                if len(buffer) >= 7:
                    answer_tid, proto, length, answer_unit = _MBAP.unpack_from(buffer)
                    if proto != 0 or length < 2:
                        raise ModbusLinkError(f"{self.name}: not a Modbus TCP answer")
                    end = 6 + length
                    if len(buffer) >= end:
                        answer, buffer = buffer[7:end], buffer[end:]
                        if answer_tid == tid and answer_unit == unit:
                            self._buffer = buffer
                            return answer
                        continue  # a late answer to a request that timed out: drop it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._buffer = buffer
                    raise self._timeout(unit, timeout)
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    raise ModbusLinkError(f"{self.name}: connection closed by the server")
                buffer += chunk
        except OSError as exc:
            self.close()
            raise ModbusLinkError(f"{self.name}: {exc}") from exc
        except ModbusLinkError:
            self.close()
            raise


def _rtu_answer_length(frame: bytes) -> int:
    """Bytes of the RTU answer starting ``frame`` (0 while it cannot be known yet)."""
    if len(frame) < 3:
        return 0
    function = frame[1]
    if function & 0x80:
        return 5
    if function in (1, 2, 3, 4, 23):
        return 5 + frame[2]
    if function in (5, 6, 15, 16):
        return 8
    raise ModbusProtocolError(f"unexpected function {function} in answer {frame.hex()}")


class RtuLink(ModbusLink):
    """An RS-485 line: several unit ids, one frame on the wire at a time, gaps kept."""

    def __init__(self, cfg: RtuLinkConfig) -> None:
        super().__init__(cfg.port)
        self.cfg = cfg
        self._port: serial.Serial | None = None
        self._quiet_since = 0.0

    def _open(self) -> serial.Serial:
        if self._port is None:
            try:
                self._port = self._open_serial(self.cfg.parity)
            except termios.error as exc:
                # Linux ptys (simulators, socat bridges) may refuse PARENB; they carry no
                # parity bits anyway, so a pty is opened without parity.
                if not _is_pty(self.cfg.port):
                    raise ModbusLinkError(f"{self.name}: cannot configure: {exc}") from exc
                try:
                    self._port = self._open_serial("N")
                except (serial.SerialException, OSError, termios.error) as exc2:
                    raise ModbusLinkError(f"{self.name}: cannot open: {exc2}") from exc2
            except (serial.SerialException, OSError) as exc:
                raise ModbusLinkError(f"{self.name}: cannot open: {exc}") from exc
        return self._port

    def _open_serial(self, parity: str) -> serial.Serial:
        return serial.Serial(
            self.cfg.port, self.cfg.baud, parity=parity, stopbits=self.cfg.stop_bits, timeout=0
        )

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None

    def _transact(self, unit: int, pdu: bytes, timeout: float) -> bytes:
        port = self._open()
        gap = self._quiet_since + self.cfg.interframe_s - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        frame = bytes([unit]) + pdu
        try:
            port.reset_input_buffer()  # a late answer from a timed-out request is garbage now
            port.write(frame + _crc(frame).to_bytes(2, "big"))
            deadline = time.monotonic() + timeout
            buffer = b""
            while True:
                need = _rtu_answer_length(buffer)
                if need and len(buffer) >= need:
                    answer = buffer[:need]
                    if _crc(answer[:-2]) != int.from_bytes(answer[-2:], "big"):
                        raise ModbusProtocolError(f"{self.name}: CRC error in {answer.hex()}")
                    if answer[0] != unit:
                        raise ModbusProtocolError(
                            f"{self.name}: asked unit {unit}, unit {answer[0]} answered"
                        )
                    return answer[1:-2]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout(unit, timeout)
                # select, not port.timeout: setting that reprograms the termios every time.
                if not select.select([port.fileno()], [], [], remaining)[0]:
                    continue
                chunk = port.read(max(1, port.in_waiting))
                if not chunk:
                    raise ModbusLinkError(f"{self.name}: the port closed (adapter unplugged?)")
                buffer += chunk
        except (serial.SerialException, OSError, termios.error) as exc:
            self.close()
            raise ModbusLinkError(f"{self.name}: {exc}") from exc
        finally:
            self._quiet_since = time.monotonic()


def _is_pty(path: str) -> bool:
    return os.path.realpath(path).startswith("/dev/pts/")


def open_link(cfg: TcpLinkConfig | RtuLinkConfig) -> ModbusLink:
    return TcpLink(cfg) if isinstance(cfg, TcpLinkConfig) else RtuLink(cfg)
