"""The simulated scanner: it reads the labels it is told about and reports each read as a line.

A belt world calls ``scan(text)`` when a parcel passes under the scanner. Free-running, the
scanner answers at once with the label or, at ``no_read_rate``, its no-read token. In trigger
mode ``scan`` only puts the label in view; the host's trigger command reads what is in view
(the label, the no-read token at the rate, or the token when nothing is there). The line is a
real pty behind a stable symlink (the simulated MCU's wire, reused) and/or a TCP server that
sends every reading to every connected client. Faults: ``set_silent`` (the scanner stops
answering), ``unplug`` (pty gone and TCP clients dropped for a while), ``send_raw`` (garbage),
and line noise: ``set_noise(rate)`` adds a garbage line to each reading at that rate (and
``send_noise()`` sends one now), a mix of printable junk (``1NOISExx``), NUL-only lines,
control bytes and over-long lines, as a loose connector or EMI on a serial run makes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from dataclasses import dataclass

from firmware_bridge.linedev.framing import Framing, encode, forbidden_bytes
from sim_hardware.mcu.wire import PtyWire


@dataclass(frozen=True)
class ScannerOptions:
    link: str | None = None  # pty symlink path
    tcp_port: int | None = None  # TCP server port (0: any free port)
    host: str = "127.0.0.1"
    framing: Framing = "crlf"
    encoding: str = "ascii"
    no_read_rate: float = 0.0
    no_read_token: str = "NoRead"
    trigger_command: str | None = None  # trigger mode when set
    decode_ms: float = 0.0  # time from a label in view (or a trigger) to the reading on the line
    baud: int | None = None  # model the pty's wire time at this baud rate
    seed: int | None = None
    noise_rate: float = 0.0  # share of readings that come with a garbage line (set_noise)

    def __post_init__(self) -> None:
        if self.link is None and self.tcp_port is None:
            raise ValueError("the scanner needs a pty link path, a TCP port, or both")
        if not 0.0 <= self.no_read_rate <= 1.0:
            raise ValueError(f"no_read_rate {self.no_read_rate} must be within [0, 1]")
        check_noise_rate(self.noise_rate)


NOISE_KINDS = ("junk", "nul", "control", "oversize")
OVERSIZE = 300  # bytes: longer than a line device's default max_line_length (256)


def check_noise_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate {rate} must be within [0, 1]")
    return rate


def noise_payload(rng: random.Random, framing: Framing) -> tuple[str, bytes]:
    """One garbage line's payload and its kind (never a delimiter of ``framing``, so each
    garbage line is one frame of its own and the readings around it stay intact)."""
    kind = rng.choice(NOISE_KINDS)
    if kind == "junk":  # printable: only a label pattern tells it from a label
        data = b"1NOISE" + bytes(rng.choice(b"0123456789abcdefxyz") for _ in range(2))
    elif kind == "nul":
        data = b"\x00" * rng.randint(1, 8)
    elif kind == "control":
        data = bytes(rng.choice(b"\x00\x01\x07\x08\x0b\x0c\x1b\x7fAB01") for _ in range(5))
        data = bytes([rng.choice(b"\x01\x1b\x7f")]) + data  # at least one control byte
    else:
        data = bytes(rng.choice(b"ABCDEFGH0123456789") for _ in range(OVERSIZE))
    bad = forbidden_bytes(framing)
    return kind, bytes(b for b in data if b not in bad) or b"\x00"


@dataclass
class ScannerStats:
    scans: int = 0
    reads: int = 0
    no_reads: int = 0
    triggers: int = 0
    clients: int = 0
    unplugs: int = 0
    noise: int = 0  # garbage lines sent (set_noise, send_noise)


class _Client(asyncio.Protocol):
    def __init__(self, scanner: SimScanner) -> None:
        self._scanner = scanner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._scanner._clients.add(self)
        self._scanner.stats.clients += 1

    def data_received(self, data: bytes) -> None:
        self._scanner._on_receive(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._scanner._clients.discard(self)


class SimScanner:
    """Create and ``start()`` inside a running loop; every method runs on that loop's thread."""

    def __init__(self, options: ScannerOptions) -> None:
        self.options = options
        self.stats = ScannerStats()
        self._rng = random.Random(options.seed)
        # noise draws of their own: turning noise on leaves the no-read draws as they were
        self._noise_rng = random.Random(None if options.seed is None else options.seed + 1)
        self.noise_kinds: dict[str, int] = dict.fromkeys(NOISE_KINDS, 0)
        self._wire = (
            PtyWire(options.link, options.baud, on_receive=self._on_receive)
            if options.link is not None
            else None
        )
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trigger = (
            options.trigger_command.encode(options.encoding) if options.trigger_command else None
        )
        self._rx = bytearray()
        self._view: str | None = None
        self._silent = False
        self._replug: asyncio.TimerHandle | None = None
        self.tcp_port: int | None = None
        self.sent: list[str] = []  # every reading sent, label or token, in order
        self.received = bytearray()  # what the host sent (triggers), last 4 KiB

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> SimScanner:
        self._loop = asyncio.get_running_loop()
        if self._wire is not None:
            self._wire.plug(self._loop)
        if self.options.tcp_port is not None:
            await self._listen(self.options.tcp_port)
        return self

    async def _listen(self, port: int) -> None:
        assert self._loop is not None
        self._server = await self._loop.create_server(
            lambda: _Client(self), self.options.host, port, reuse_address=True
        )
        self.tcp_port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._replug is not None:
            self._replug.cancel()
        if self._wire is not None:
            self._wire.close()
        self._drop_clients()
        if self._server is not None:
            self._server.close()
            self._server = None

    def describe(self) -> str:
        o = self.options
        where = []
        if o.link:
            where.append(f"pty {o.link}")
        if self.tcp_port is not None:
            where.append(f"tcp {o.host}:{self.tcp_port}")
        mode = f"trigger {o.trigger_command!r}" if o.trigger_command else "free-running"
        return (
            f"simulated scanner on {' and '.join(where)}: {o.framing}, {mode}, "
            f"no-read rate {o.no_read_rate:g} (token {o.no_read_token!r})"
            + (f", noise rate {o.noise_rate:g}" if o.noise_rate else "")
        )

    # ---- the world ------------------------------------------------------------------------------
    def scan(self, text: str | None) -> bool:
        """A label (None: unreadable) passes the scanner. Returns True if it was read
        (free-running) or put in view (trigger mode); False if the scanner reported a no-read
        or is silent."""
        self.stats.scans += 1
        if self._trigger is not None:
            self._view = text
            return not self._silent
        if self._silent:
            return False
        return self._report(text)

    def clear_view(self) -> None:
        self._view = None

    def set_silent(self, silent: bool) -> None:
        """A scanner that has hung: it sends nothing and ignores triggers."""
        self._silent = silent

    def unplug(self, seconds: float) -> None:
        """The cable is pulled: the pty vanishes and TCP clients are dropped; back after
        ``seconds`` (the TCP server listens again on the same port)."""
        assert self._loop is not None
        self.stats.unplugs += 1
        if self._wire is not None:
            self._wire.unplug()
        self._drop_clients()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._replug = self._loop.call_later(seconds, self._plug_again)

    def _plug_again(self) -> None:
        assert self._loop is not None
        self._replug = None
        if self._wire is not None:
            self._wire.plug(self._loop)
        if self.tcp_port is not None:
            self._loop.create_task(self._listen(self.tcp_port))

    def set_noise(self, rate: float) -> None:
        """From now on each reading comes with a garbage line at ``rate`` (0 stops it), just
        before or just after the reading (drawn at random)."""
        self.options = dataclasses.replace(self.options, noise_rate=check_noise_rate(rate))

    def send_noise(self, lines: int = 1) -> None:
        """Put ``lines`` garbage lines on the line now."""
        self._send(b"".join(self._noise_line() for _ in range(lines)))

    def _noise_line(self) -> bytes:
        kind, payload = noise_payload(self._noise_rng, self.options.framing)
        self.stats.noise += 1
        self.noise_kinds[kind] += 1
        return encode(payload, self.options.framing)

    def send_raw(self, data: bytes) -> None:
        """Put raw bytes on the line (noise, a misconfigured device, an oversize line)."""
        self._send(data)

    @property
    def connected_clients(self) -> int:
        return len(self._clients)

    @property
    def plugged(self) -> bool:
        return (self._wire is None or self._wire.plugged) and (
            self.options.tcp_port is None or self._server is not None
        )

    # ---- the line -------------------------------------------------------------------------------
    def _report(self, label: str | None) -> bool:
        read = label is not None and self._rng.random() >= self.options.no_read_rate
        text = label if read and label is not None else self.options.no_read_token
        if read:
            self.stats.reads += 1
        else:
            self.stats.no_reads += 1
        self.sent.append(text)
        data = encode(text.encode(self.options.encoding), self.options.framing)
        if self.options.noise_rate > 0 and self._noise_rng.random() < self.options.noise_rate:
            noise = self._noise_line()
            data = noise + data if self._noise_rng.random() < 0.5 else data + noise
        if self.options.decode_ms > 0 and self._loop is not None:
            self._loop.call_later(self.options.decode_ms / 1000.0, self._send, data)
        else:
            self._send(data)
        return read

    def _send(self, data: bytes) -> None:
        if self._wire is not None:
            self._wire.send(data)
        for client in list(self._clients):
            if client.transport is not None and not client.transport.is_closing():
                client.transport.write(data)

    def _on_receive(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > 4096:
            del self.received[: len(self.received) - 4096]
        if self._trigger is None:
            return
        self._rx += data
        while True:
            at = self._rx.find(self._trigger)
            if at < 0:
                break
            del self._rx[: at + len(self._trigger)]
            self.stats.triggers += 1
            if not self._silent:
                label, self._view = self._view, None
                self._report(label)
        keep = len(self._trigger) - 1
        if len(self._rx) > keep:
            del self._rx[: len(self._rx) - keep]

    def _drop_clients(self) -> None:
        for client in list(self._clients):
            if client.transport is not None:
                with contextlib.suppress(Exception):
                    client.transport.abort()
        self._clients.clear()
