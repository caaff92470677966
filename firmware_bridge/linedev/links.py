"""The two ways to reach a line device: a serial port (reusing the MCU link's non-blocking
transport) and a TCP client. Both deliver bytes through ``on_data`` and report a loss once
through ``on_lost`` with its reason; neither knows about frames."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Protocol

from firmware_bridge.linedev.config import SerialLinkConfig, TcpLinkConfig
from firmware_bridge.mcu.errors import PortError
from firmware_bridge.mcu.transport import SerialTransport


class LinkOpenError(Exception):
    """The line could not be opened; the message says which and why."""


class Link(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


async def open_serial(
    cfg: SerialLinkConfig, on_data: Callable[[bytes], None], on_lost: Callable[[str], None]
) -> Link:
    transport = SerialTransport(cfg.port, cfg.baud, on_data, on_lost)
    try:
        transport.open(asyncio.get_running_loop())
    except PortError as exc:
        raise LinkOpenError(str(exc)) from exc
    return transport


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, on_data: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self._on_data = on_data
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.closing = True
            self._on_lost(f"peer closed the connection ({exc})" if exc else "peer closed")


class TcpLink:
    def __init__(self, protocol: _TcpProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        t = self._protocol.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def close(self) -> None:
        self._protocol.closing = True
        if self._protocol.transport is not None:
            self._protocol.transport.close()


async def open_tcp(
    cfg: TcpLinkConfig, on_data: Callable[[bytes], None], on_lost: Callable[[str], None]
) -> Link:
    loop = asyncio.get_running_loop()
    protocol = _TcpProtocol(on_data, on_lost)
    try:
        async with asyncio.timeout(cfg.connect_timeout_s):
            await loop.create_connection(lambda: protocol, cfg.host, cfg.port)
    except TimeoutError:
        raise LinkOpenError(
            f"{cfg.describe}: no answer within {cfg.connect_timeout_s:g} s"
        ) from None
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)  # "Connection refused"
        raise LinkOpenError(f"{cfg.describe}: cannot connect: {why}") from exc
    with contextlib.suppress(OSError):
        sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return TcpLink(protocol)
