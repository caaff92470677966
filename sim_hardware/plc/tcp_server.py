"""Modbus TCP transport of the simulated PLC: asyncio streams + pymodbus's socket framer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU

from sim_hardware.plc.engine import PlcEngine

log = logging.getLogger("wolfpack.sim.plc")


class PlcTcpServer:
    def __init__(self, engine: PlcEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self.host = host
        self.port = port  # 0 until started on a free port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection (a PLC power cycle)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.drop_connections()

    async def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        framer = FramerSocket(DecodePDU(is_server=True))
        buffer = b""
        try:
            while chunk := await reader.read(4096):
                buffer += chunk
                while True:
                    used, pdu = framer.handleFrame(buffer, 0, 0)
                    buffer = buffer[used:]
                    if pdu is None:
                        break
                    response = await self.engine.answer(pdu)
                    if response is not None:
                        writer.write(framer.buildFrame(response))
        except (ConnectionError, OSError) as exc:
            log.debug("plc tcp connection ended: %s", exc)
        except Exception:
            log.exception("plc tcp: bad request, closing the connection")
        finally:
            self._writers.discard(writer)
            writer.close()
