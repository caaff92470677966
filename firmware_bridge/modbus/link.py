"""One Modbus line: a TCP connection or an RS-485 port, one transaction at a time.

This is the lean path: pymodbus builds and parses the PDUs and frames (``FramerSocket``,
``FramerRTU``), and a plain blocking socket / pyserial port carries them. Measured in
``bench/modbus.py``: pymodbus's async client holds a lock per request and its sync client
adds retry and logging machinery; this path gives each request its own timeout (so every
device on a shared line keeps its own), checks transaction ids, and keeps the RTU silent
interval (3.5 characters) that pymodbus's async RTU client does not enforce.

Links reconnect by themselves: a failed connection is closed and the next request opens it
again (a restarted server, a re-plugged USB adapter, a pty that reappeared).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import termios
import threading
import time

import serial
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU

from firmware_bridge.modbus.config import RtuLinkConfig, TcpLinkConfig
from firmware_bridge.modbus.errors import (
    ModbusExceptionError,
    ModbusLinkError,
    ModbusProtocolError,
    ModbusTimeoutError,
)


class ModbusLink:
    """Base: serialises transactions (a lock) and turns answers into PDUs or errors."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.transactions = 0

    def execute(self, request: ModbusPDU, timeout: float) -> ModbusPDU:
        """Send ``request`` (its ``dev_id`` is the unit), return the matching answer.

        Raises ModbusExceptionError for an exception response, ModbusTimeoutError when no
        answer came within ``timeout`` seconds, ModbusLinkError when the line is down.
        """
        with self.lock:
            response = self._transact(request, timeout)
            self.transactions += 1
        where = f"{self.name} unit {request.dev_id}"
        if isinstance(response, ExceptionResponse) or response.function_code & 0x80:
            raise ModbusExceptionError(where, request.function_code, response.exception_code)
        if response.function_code != request.function_code:
            raise ModbusProtocolError(
                f"{where}: asked function {request.function_code}, "
                f"answer is function {response.function_code}"
            )
        return response

    def _transact(self, request: ModbusPDU, timeout: float) -> ModbusPDU:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TcpLink(ModbusLink):
    def __init__(self, cfg: TcpLinkConfig) -> None:
        super().__init__(f"{cfg.host}:{cfg.port}")
        self.cfg = cfg
        self._sock: socket.socket | None = None
        self._framer = FramerSocket(DecodePDU(is_server=False))
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

    def _transact(self, request: ModbusPDU, timeout: float) -> ModbusPDU:
        deadline = time.monotonic() + timeout
        sock = self._connect(timeout)
        self._tid = self._tid % 0xFFFF + 1
        request.transaction_id = self._tid
        try:
            sock.sendall(self._framer.buildFrame(request))
            while True:
                used, pdu = self._framer.handleFrame(self._buffer, 0, 0)
                if used:
                    self._buffer = self._buffer[used:]
                if pdu is not None:
                    if pdu.transaction_id == self._tid and pdu.dev_id == request.dev_id:
                        return pdu
                    continue  # a late answer to a request that timed out: drop it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModbusTimeoutError(
                        f"{self.name} unit {request.dev_id}: no answer within {timeout:.3f} s"
                    )
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    raise ModbusLinkError(f"{self.name}: connection closed by the server")
                self._buffer += chunk
        except OSError as exc:
            self.close()
            raise ModbusLinkError(f"{self.name}: {exc}") from exc
        except ModbusLinkError:
            self.close()
            raise


class RtuLink(ModbusLink):
    """An RS-485 line: several unit ids, one frame on the wire at a time, gaps kept."""

    def __init__(self, cfg: RtuLinkConfig) -> None:
        super().__init__(cfg.port)
        self.cfg = cfg
        self._port: serial.Serial | None = None
        self._framer = FramerRTU(DecodePDU(is_server=False))
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

    def _transact(self, request: ModbusPDU, timeout: float) -> ModbusPDU:
        port = self._open()
        gap = self._quiet_since + self.cfg.interframe_s - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        try:
            port.reset_input_buffer()  # a late answer from a timed-out request is garbage now
            port.write(self._framer.buildFrame(request))
            deadline = time.monotonic() + timeout
            buffer = b""
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModbusTimeoutError(
                        f"{self.name} unit {request.dev_id}: no answer within {timeout:.3f} s"
                    )
                # select, not port.timeout: setting that reprograms the termios every time.
                if not select.select([port.fileno()], [], [], remaining)[0]:
                    continue
                chunk = port.read(max(1, port.in_waiting))
                if not chunk:
                    raise ModbusLinkError(f"{self.name}: the port closed (adapter unplugged?)")
                buffer += chunk
                _used, pdu = self._framer.handleFrame(buffer, 0, 0)
                if pdu is not None:
                    if pdu.dev_id != request.dev_id:
                        raise ModbusProtocolError(
                            f"{self.name}: asked unit {request.dev_id}, unit {pdu.dev_id} answered"
                        )
                    return pdu
                if _used:
                    raise ModbusProtocolError(f"{self.name}: CRC error in answer {buffer.hex()}")
        except (serial.SerialException, OSError, termios.error) as exc:
            self.close()
            raise ModbusLinkError(f"{self.name}: {exc}") from exc
        finally:
            self._quiet_since = time.monotonic()


def _is_pty(path: str) -> bool:
    try:
        return os.path.realpath(path).startswith("/dev/pts/")
    except OSError:
        return False


def open_link(cfg: TcpLinkConfig | RtuLinkConfig) -> ModbusLink:
    return TcpLink(cfg) if isinstance(cfg, TcpLinkConfig) else RtuLink(cfg)
