"""The host end of the MCU link, in asyncio: connect, identify, commands, events, state.

One ``McuLink`` owns one serial port. Commands are queued and coalesced into frames (many
per frame, many frames in flight up to the MCU's receive window), so throughput does not
wait for round trips. The link heartbeats, keeps the clock synchronised, and survives
unplug/replug and MCU resets:

* unplug/replug (EOF/EIO on the port): the link goes LOST -> RECONNECTING, reopens the path
  with backoff, resends the frames the MCU has not acknowledged (the MCU's sequence check
  drops any it had already executed, so nothing runs twice), re-identifies, re-sends the
  setup and reports RESYNCED. Commands in flight simply complete late.
* MCU reset (a new SYN frame, the "started" event): the firmware's state is gone, so every
  command still unanswered fails with McuResetError (it may or may not have run before the
  reset; re-sending could run it twice), the link restarts its sequence space, identifies,
  re-sends the setup and reports RESYNCED.

Rules of docs/mcu-protocol.md that live here: RTO bounds from the baud rate; a keep-alive
while waiting for identify_response; commands the firmware did not list are refused without
being sent; answers come in command order, so a command passed over by a later answer was
skipped by the MCU and fails; an ``action_done`` is delivered only for an action id this
link issued or adopted (a previous host's strokes are the journal's business).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.clocksync import ClockSync
from firmware_bridge.mcu.errors import (
    LinkClosedError,
    McuCommandError,
    McuError,
    McuResetError,
    McuTimeout,
    PortError,
)
from firmware_bridge.mcu.framing import Frame, FrameDecoder
from firmware_bridge.mcu.identity import REQUIRED_COMMANDS, FirmwareIdentity, check_compatible
from firmware_bridge.mcu.reliable import ReliableEndpoint
from firmware_bridge.mcu.rtt import estimator_for, unak_interval
from firmware_bridge.mcu.transport import SerialTransport

log = logging.getLogger("wolfpack.mcu")

EVENT_NAMES = frozenset(s.name for s in m.SPECS if s.id >= 0x80)
RESPONSE_NAMES = frozenset(s.name for s in m.SPECS if 0x40 <= s.id < 0x80)
HEARTBEAT_ID = m.BY_NAME["heartbeat"].id
SCHEDULES = frozenset({"schedule_at_clock", "schedule_at_count"})
BUSY_RETRIES = 3  # fresh action ids tried when the MCU holds one pending (a previous host's)


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    RESYNCED = "resynced"
    CLOSED = "closed"

    @property
    def up(self) -> bool:
        return self in (LinkState.CONNECTED, LinkState.RESYNCED)


@dataclass(frozen=True)
class StateChange:
    state: LinkState
    reason: str
    at: float


@dataclass
class LinkStats:
    reconnects: int = 0
    mcu_resets: int = 0
    failed_by_reset: int = 0
    payload_errors: int = 0
    foreign_action_done: int = 0  # action_done for ids this link neither issued nor adopted
    skipped_commands: int = 0  # commands the MCU passed over (after an unknown one)
    outages: list[tuple[float, float | None]] = field(default_factory=list)


EventCallback = Callable[[m.Message], None]
StateCallback = Callable[[StateChange], None]


class McuLink:
    """Host side of one MCU link. Use ``async with McuLink(...)`` or connect()/close()."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 250000,
        watchdog_ms: int = 500,
        heartbeat_ms: int | None = None,
        clock_interval_s: float = 1.0,
        reconnect: bool = True,
        required_commands: frozenset[str] = REQUIRED_COMMANDS,
        name: str = "mcu",
    ) -> None:
        self.port = port
        self.baud = baud
        self.name = name
        self.watchdog_ms = watchdog_ms
        self.heartbeat_s = (heartbeat_ms or max(5, watchdog_ms // 4)) / 1000
        self.clock_interval_s = clock_interval_s
        self.reconnect = reconnect
        self.required_commands = required_commands
        self.state = LinkState.DISCONNECTED
        self.identity: FirmwareIdentity | None = None
        self.clock = ClockSync(nominal_freq=1.0)
        self.stats = LinkStats()
        # A partial frame is abandoned after ~2 max frames of wire time plus scheduling slack.
        self.decoder = FrameDecoder(partial_timeout_s=0.02 + 2 * 255 * 10 / baud)
        # RTO bounds and the unsynchronised-NAK interval scale with the line (spec 3.1, 3.2).
        self.endpoint = ReliableEndpoint(window=1, rtt=estimator_for(baud, 0.25))
        self.endpoint.unak_interval = unak_interval(baud)
        self.endpoint.byte_time = 10 / baud
        self.endpoint.on_framed = self._on_framed
        self._transport = SerialTransport(port, baud, self._on_data, self._port_lost)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        # Random first req: the SYN identify of each session differs from the last one's.
        self._next_req = random.randint(1, 0xFFFF)
        self._pending: dict[int, tuple[str, asyncio.Future[m.Message]]] = {}
        self._clock_reqs: dict[int, float] = {}
        # Action ids: random start (a previous host's held action_done must not match ours),
        # the ids this MCU run holds for us, and those adopted from a previous host.
        self._next_action = random.randint(1, 0xFFFF)
        self._issued: set[int] = set()
        self._adopted: set[int] = set()
        self._req_action: dict[int, tuple[str, int]] = {}
        self._sent_order: dict[int, None] = {}  # reqs in the order they were framed
        self._event_cbs: list[EventCallback] = []
        self._state_cbs: list[StateCallback] = []
        self._setup: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        self._handshaking = False
        self._handshake_req = 0
        self.endpoint.syn_filter = self._accept_syn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._next_clock_query = 0.0
        self._last_rx = 0.0
        self._closed = False
        # Diagnostics/tests: stop heartbeats (and pure ACKs) to prove the MCU watchdog trips.
        self.suspend_heartbeats = False

    @property
    def bytes_written(self) -> int:
        """Bytes written to the port since the link was created (all frames, all sessions)."""
        return self._transport.bytes_written

    @property
    def bytes_read(self) -> int:
        return self._transport.bytes_read

    # ---- public API ----------------------------------------------------------------------
    async def __aenter__(self) -> McuLink:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_event(self, callback: EventCallback) -> None:
        """Call ``callback(message)`` for every asynchronous MCU event (started, watchdog, ...)."""
        self._event_cbs.append(callback)

    def on_state(self, callback: StateCallback) -> None:
        """Call ``callback(StateChange)`` on every link state change."""
        self._state_cbs.append(callback)

    async def connect(self, timeout: float = 3.0) -> FirmwareIdentity:
        """Open the port, identify the firmware (refusing incompatible ones), send the setup."""
        self._loop = asyncio.get_running_loop()
        self._set_state(LinkState.CONNECTING, f"opening {self.port}")
        self._open()
        self._timer = self._loop.create_task(self._timer_loop())
        try:
            ident = await asyncio.wait_for(self._handshake(), timeout)
        except TimeoutError:
            await self.close()
            raise McuTimeout(
                f"{self.port}: no identify answer within {timeout:.1f} s "
                f"(is a firmware running there, at {self.baud} baud?)"
            ) from None
        except McuError:
            await self.close()
            raise
        self._set_state(LinkState.CONNECTED, f"{ident.firmware} {ident.version}")
        return ident

    async def close(self) -> None:
        """Stop heartbeating and close the port; waiting commands fail with LinkClosedError."""
        if self._closed:
            return
        self._closed = True
        for task in [self._timer, self._recovering, *self._tasks]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._transport.close(drain=True)
        self._fail_pending(LinkClosedError(f"{self.port}: link closed"))
        self._set_state(LinkState.CLOSED, "closed by host")

    def send(self, name: str, **fields: Any) -> None:
        """Queue a command that has no response (delivered in order, exactly once)."""
        refusal = self._unlisted(name)
        if refusal is not None:
            raise refusal
        self._queue(m.encode(name, **fields))

    async def request(self, name: str, timeout: float | None = None, **fields: Any) -> m.Message:
        """Send a command and await its response; McuCommandError if the MCU refused it."""
        fut = self._request_future(name, fields)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise McuTimeout(f"{self.port}: no answer to {name} within {timeout} s") from None

    def request_nowait(self, name: str, **fields: Any) -> asyncio.Future[m.Message]:
        """Like request(), returning the future (for pipelining many commands)."""
        return self._request_future(name, fields)

    def _urgent_request(self, name: str, **fields: Any) -> asyncio.Future[m.Message]:
        """Link housekeeping (identify, setup) that goes ahead of queued commands."""
        return self._request_future(name, fields, urgent=True)

    async def ping(self, data: int = 0) -> float:
        """One round trip through the link; returns the seconds it took."""
        t = time.monotonic()
        await self.request("ping", data=data & 0xFFFFFFFF)
        return time.monotonic() - t

    async def configure_output(self, pin: int, safe_value: int = 0) -> None:
        """Declare an output and its safe value (the watchdog drives it there); re-sent after
        every reset and replug."""
        self._setup[("config_output", pin)] = (
            "config_output",
            {"pin": pin, "safe_value": safe_value},
        )
        await self.request("config_output", pin=pin, safe_value=safe_value)

    async def add_setup(self, key: tuple[Any, ...], name: str, **fields: Any) -> m.Message:
        """Send an idempotent configuration command now and again after every reset and
        replug (a machine's own setup, e.g. the arm's config_motion); ``key`` replaces an
        earlier entry with the same key."""
        self._setup[key] = (name, dict(fields))
        return await self.request(name, **fields)

    async def set_encoder_report(self, encoder: int, interval_ms: int) -> None:
        self._setup[("set_encoder_report", encoder)] = (
            "set_encoder_report",
            {"encoder": encoder, "interval_ms": interval_ms},
        )
        await self.request("set_encoder_report", encoder=encoder, interval_ms=interval_ms)

    async def set_output(self, pin: int, value: int) -> None:
        await self.request("set_output", pin=pin, value=value)

    async def read_encoder(self, encoder: int = 0) -> tuple[int, int]:
        """(count, MCU clock) of an encoder."""
        msg = await self.request("get_encoder", encoder=encoder)
        return msg["count"], msg["clock"]

    async def read_inputs(self) -> int:
        return (await self.request("get_inputs"))["bits"]

    async def mcu_stats(self) -> dict[str, int]:
        msg = await self.request("get_stats")
        return {k: v for k, v in msg.fields.items() if k != "req"}

    async def schedule_at_clock(
        self, clock: int, pin: int, value: int = 1, duration_s: float = 0.0
    ) -> int:
        """The MCU sets ``pin`` to ``value`` when its clock reaches ``clock`` (and back after
        ``duration_s`` if > 0). Returns the action id; McuCommandError if it is in the past."""
        return await self._schedule(
            "schedule_at_clock",
            clock=clock,
            pin=pin,
            value=value,
            duration=self._ticks(duration_s),
        )

    async def schedule_at_count(
        self, count: int, pin: int, value: int = 1, duration_s: float = 0.0, encoder: int = 0
    ) -> int:
        """The MCU fires when ``encoder`` reaches ``count`` (a diverter stroke at a parcel
        position). McuCommandError if the encoder is already past it."""
        return await self._schedule(
            "schedule_at_count",
            encoder=encoder,
            count=count,
            pin=pin,
            value=value,
            duration=self._ticks(duration_s),
        )

    async def _schedule(self, name: str, **fields: Any) -> int:
        """Schedule with a fresh action id; an id the MCU still holds pending for a previous
        host (error 4) is skipped for the next one."""
        for attempt in range(BUSY_RETRIES + 1):
            action = self._new_action()
            try:
                await self.request(name, action=action, **fields)
            except McuCommandError as exc:
                if exc.code != m.ERR_BUSY or attempt == BUSY_RETRIES:
                    raise
                log.info("%s: action id %d is pending on the MCU for another host", self.port,
                         action)  # fmt: skip
                continue
            return action
        raise AssertionError("unreachable")

    async def schedule_at_host_time(
        self, host_t: float, pin: int, value: int = 1, duration_s: float = 0.0
    ) -> int:
        """Schedule at a host monotonic time, converted to the MCU clock by the clock sync."""
        return await self.schedule_at_clock(self.clock.clock_at(host_t), pin, value, duration_s)

    async def cancel_action(self, action: int) -> None:
        await self.request("cancel_action", action=action)

    def cancel_actions_now(self, actions: list[int]) -> list[asyncio.Future[m.Message]]:
        """Cancel many actions at once (an e-stop): every cancel is queued ahead of other
        commands and written to the port before this returns, not one round trip after
        another. The futures answer each (McuCommandError not_found: it already fired)."""
        futs = [self._request_future("cancel_action", {"action": a}, urgent=True)
                for a in actions]  # fmt: skip
        if futs and self._loop is not None:
            self._flush()
        return futs

    async def sync_clock(self, samples: int = 8) -> ClockSync:
        """Take ``samples`` clock samples now (more are taken every clock_interval_s)."""
        for _ in range(samples):
            await self._clock_sample()
        return self.clock

    # ---- internals: requests ---------------------------------------------------------------
    def _ticks(self, seconds: float) -> int:
        freq = self.identity.clock_freq if self.identity else 1
        return max(0, round(seconds * freq))

    def skip_actions_through(self, action: int) -> None:
        """Give out action ids after ``action`` (ids a previous host used on this MCU)."""
        if 1 <= action < 0xFFFF:
            self._next_action = max(self._next_action, action + 1)

    def adopt_actions(self, actions: Any) -> None:
        """Take over action ids a previous host issued on this MCU (from a journal): their
        ``action_done`` is delivered, and this link never issues them. Call it before
        ``connect()``: the MCU sends what fired while no host listened right after identify."""
        for action in actions:
            if 1 <= int(action) <= 0xFFFF:
                self._adopted.add(int(action))

    @property
    def pending_actions(self) -> frozenset[int]:
        """Action ids issued or adopted whose ``action_done`` has not come."""
        return frozenset(self._issued | self._adopted)

    def _new_action(self) -> int:
        for _ in range(0x10000):
            action = self._next_action
            self._next_action = (self._next_action % 0xFFFF) + 1
            if action not in self._issued and action not in self._adopted:
                return action
        raise McuError(f"{self.port}: every action id is pending")

    def _forget_actions(self) -> None:
        """The MCU dropped every pending action (reset, watchdog)."""
        self._issued.clear()
        self._adopted.clear()

    def _request_future(
        self, name: str, fields: dict[str, Any], urgent: bool = False
    ) -> asyncio.Future[m.Message]:
        if self._closed:
            raise LinkClosedError(f"{self.port}: link is closed")
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[m.Message] = loop.create_future()
        refusal = self._unlisted(name)
        if refusal is not None:
            fut.set_exception(refusal)
            return fut
        req = self._next_req
        self._next_req = (req % 0xFFFF) + 1
        message = m.encode(name, req=req, **fields)
        self._pending[req] = (name, fut)
        if name in SCHEDULES:
            self._issued.add(fields["action"])
            self._req_action[req] = (name, fields["action"])
        elif name == "cancel_action":
            self._req_action[req] = (name, fields["action"])
        self._queue(message, urgent)
        return fut

    def _unlisted(self, name: str) -> McuCommandError | None:
        """A command the identified firmware does not implement is never sent (spec 4)."""
        ident = self.identity
        if ident is None or name in ("identify", "get_commands") or name in ident.commands:
            return None
        return McuCommandError(
            name, m.ERR_UNKNOWN_COMMAND,
            f"firmware {ident.firmware} {ident.version} does not implement {name} (not sent)",
        )  # fmt: skip

    def _on_framed(self, message: bytes) -> None:
        if len(message) >= 3 and message[0] < 0x40 and message[0] != HEARTBEAT_ID:
            self._sent_order[message[1] | message[2] << 8] = None

    def _answered(self, req: int) -> None:
        """Answers come in command order: every command framed before ``req`` and still
        unanswered was skipped by the MCU (the rest of a payload after an unknown one)."""
        order = self._sent_order
        if req not in order:
            return
        while order:
            first = next(iter(order))
            del order[first]
            if first == req:
                return
            entry = self._pending.pop(first, None)
            self._action_answer(first, failed=True)
            if entry is None or entry[1].done():
                continue
            self.stats.skipped_commands += 1
            entry[1].set_exception(
                McuCommandError(
                    entry[0], m.ERR_UNKNOWN_COMMAND,
                    "not executed: the MCU skipped the rest of its frame after a command it "
                    "could not decode",
                )
            )  # fmt: skip

    def _action_answer(self, req: int, failed: bool) -> None:
        entry = self._req_action.pop(req, None)
        if entry is None:
            return
        name, action = entry
        if name in SCHEDULES:
            if failed:
                self._issued.discard(action)
        else:  # cancel_action: ok, or not found (its action_done came first)
            self._issued.discard(action)
            self._adopted.discard(action)

    def _queue(self, message: bytes, urgent: bool = False) -> None:
        if urgent:
            self.endpoint.queue_urgent(message)
        else:
            self.endpoint.queue(message)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def _clock_sample(self) -> None:
        sent = time.monotonic()
        msg = await self.request("get_clock", timeout=2.0)
        self.clock.add(sent, time.monotonic(), msg["clock"])

    # ---- internals: I/O --------------------------------------------------------------------
    def _open(self) -> None:
        assert self._loop is not None
        self._transport.open(self._loop)

    def _close_port(self) -> None:
        self._transport.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._transport.is_open or self.suspend_heartbeats:
            return
        data = self.endpoint.take_output(time.monotonic())
        if data:
            self._transport.write(data)

    def _write(self, data: bytes) -> None:
        self._transport.write(data)

    def _on_data(self, data: bytes) -> None:
        now = time.monotonic()
        self._last_rx = now
        frames, bad = self.decoder.feed(data, now)
        ep = self.endpoint
        for frame in frames:
            payload, new_syn = ep.on_frame(frame, now)
            if new_syn and not self._handshaking:
                self._mcu_reset_detected()
            if payload:
                self._dispatch(payload)
        if bad:
            ep.request_nak()
        self._flush()

    def _dispatch(self, payload: bytes) -> None:
        msgs: list[m.Message] = []
        pos = 0
        while pos < len(payload):
            try:
                msg, pos = m.decode_one(payload, pos)
            except m.MessageError as exc:
                # The rest of this payload is unreadable; the messages before it stand.
                self.stats.payload_errors += 1
                log.error("%s: undecodable payload from MCU: %s", self.port, exc)
                break
            msgs.append(msg)
        for msg in msgs:
            name = msg.name
            if name in RESPONSE_NAMES:
                req = msg.fields["req"]
                self._answered(req)
                self._action_answer(req, failed=name == "error")
                entry = self._pending.pop(req, None)
                if entry is None:
                    continue
                cmd, fut = entry
                if fut.done():
                    continue
                if name == "error":
                    fut.set_exception(McuCommandError(cmd, msg["code"], msg["message"]))
                else:
                    fut.set_result(msg)
            elif name in EVENT_NAMES:
                if name == "action_done" and not self._own_action(msg["action"]):
                    continue
                if name == "watchdog_tripped":
                    self._forget_actions()
                    log.warning(
                        "%s: MCU watchdog tripped after %d ms without host frames; "
                        "actuators are safe",
                        self.port,
                        msg["silent_ms"],
                    )
                for cb in list(self._event_cbs):
                    try:
                        cb(msg)
                    except Exception:
                        log.exception("event callback failed")

    def _own_action(self, action: int) -> bool:
        """Whether an action_done is for an id this link issued or adopted (spec 3.3)."""
        if action in self._issued:
            self._issued.discard(action)
            return True
        if action in self._adopted:
            self._adopted.discard(action)
            return True
        self.stats.foreign_action_done += 1
        log.warning("%s: action_done for action %d, which this host neither issued nor "
                    "adopted (a previous host's); ignored", self.port, action)  # fmt: skip
        return False

    # ---- internals: timers, loss, recovery -------------------------------------------------
    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if not self._transport.is_open:
                continue
            ep = self.endpoint
            if self.suspend_heartbeats:
                continue
            if self.state.up and now - ep.last_tx >= self.heartbeat_s:
                if ep.in_flight < ep.window and not ep.queued:
                    ep.queue(m.encode("heartbeat"))
                else:
                    ep.force_ack()  # window full: a pure ACK is a valid frame too
            elif (
                self._handshaking
                and now - ep.last_tx >= self.heartbeat_s
                and now - self._last_rx >= self.heartbeat_s
            ):
                # Waiting for identify_response and the line is quiet: keep a watchdog an
                # earlier host armed fed, and ask for the answer again (not while bytes
                # arrive: at 9600 baud the answer itself takes ~230 ms).
                ep.keepalive_unak()
                self._flush()
            if (
                self.state.up
                and self.clock_interval_s > 0
                and now >= self._next_clock_query
                and not self._clock_reqs
            ):
                self._next_clock_query = now + self.clock_interval_s
                self._spawn(self._clock_sample_quiet())
            deadline = ep.rto_deadline()
            if (deadline is not None and now >= deadline) or ep.queued:
                self._flush()

    async def _clock_sample_quiet(self) -> None:
        self._clock_reqs[0] = time.monotonic()
        try:
            await self._clock_sample()
        except McuError as exc:
            log.debug("clock sample failed: %s", exc)
        finally:
            self._clock_reqs.clear()

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept_syn(self, frame: Frame) -> bool:
        """While handshaking, only the MCU's answer to our SYN starts its session."""
        if not self._handshaking:
            return True  # a new MCU session while connected: the MCU reset
        pos = 0
        while pos < len(frame.payload):
            try:
                msg, pos = m.decode_one(frame.payload, pos)
            except m.MessageError:
                return False
            if msg.name == "identify_response" and msg["req"] == self._handshake_req:
                return True
        return False

    async def _handshake(self) -> FirmwareIdentity:
        """SYN + identify with a window of 1, then open the window and send the setup."""
        self._handshaking = True
        try:
            self.endpoint.restart()
            self._sent_order.clear()
            self.endpoint.rx_expected = None  # only the answer to our SYN starts the session
            self.endpoint.window = 1
            self._handshake_req = self._next_req
            msg = await self.request("identify")
        finally:
            self._handshaking = False
        ident = await self._all_commands(FirmwareIdentity.from_message(msg))
        check_compatible(ident, self.required_commands, self.port)
        self.identity = ident
        self.endpoint.window = ident.rx_window
        self.endpoint.max_payload = ident.max_payload
        self.clock.reset(float(ident.clock_freq))
        await self._send_setup()
        await self.sync_clock(6)
        self._next_clock_query = time.monotonic() + self.clock_interval_s
        return ident

    async def _all_commands(self, ident: FirmwareIdentity) -> FirmwareIdentity:
        """A firmware whose command names do not fit identify_response lists get_commands
        there; the rest is read page by page (spec 5)."""
        if "get_commands" not in ident.commands:
            return ident
        names: list[str] = []
        while True:
            ans = await self._urgent_request("get_commands", offset=len(names))
            got = [c for c in ans["names"].split(",") if c]
            names += got
            if not got or len(names) >= ans["total"]:
                break
        merged = tuple(dict.fromkeys(ident.commands + tuple(names)))
        return dataclasses.replace(ident, commands=merged)

    async def _send_setup(self) -> None:
        futs = [self._urgent_request("set_watchdog", timeout_ms=self.watchdog_ms)]
        futs += [self._urgent_request(name, **f) for name, f in self._setup.values()]
        await asyncio.gather(*futs)

    def _fail_pending(self, exc: McuError) -> int:
        pending, self._pending = self._pending, {}
        n = 0
        for _, fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                n += 1
        return n

    def _set_state(self, state: LinkState, reason: str) -> None:
        if state is self.state and state is not LinkState.RESYNCED:
            return
        self.state = state
        change = StateChange(state, reason, time.monotonic())
        if state in (LinkState.CONNECTING, LinkState.CLOSED):
            lvl = logging.DEBUG
        elif state.up:
            lvl = logging.INFO
        else:
            lvl = logging.WARNING
        log.log(lvl, "%s: link %s (%s)", self.port, state.value, reason)
        if state is LinkState.LOST:
            self.stats.outages.append((change.at, None))
        elif state.up and self.stats.outages and self.stats.outages[-1][1] is None:
            self.stats.outages[-1] = (self.stats.outages[-1][0], change.at)
        for cb in list(self._state_cbs):
            try:
                cb(change)
            except Exception:
                log.exception("state callback failed")

    def _port_lost(self, reason: str) -> None:
        """Called by the transport after it closed itself on EIO/EOF/write error."""
        if self._closed:
            return
        self._set_state(LinkState.LOST, f"{self.port} {reason}")
        if not self.reconnect:
            self._fail_pending(McuError(f"{self.port}: {reason}"))
            return
        current = asyncio.current_task()
        if self._recovering is not None and not self._recovering.done():
            if self._recovering is current:
                return  # the replug loop itself noticed; it reopens the port
            self._recovering.cancel()  # e.g. re-identifying after a reset: reopen first
        assert self._loop is not None
        self._recovering = self._loop.create_task(self._replug_loop())

    async def _replug_loop(self) -> None:
        backoff = 0.02
        self._set_state(LinkState.RECONNECTING, f"waiting for {self.port} to come back")
        while not self._closed:
            try:
                self._open()
            except PortError:
                await asyncio.sleep(backoff)
                backoff = min(0.5, backoff * 1.5)
                continue
            self.stats.reconnects += 1
            self._write(self.endpoint.resend_now(time.monotonic()))
            try:
                msg = await asyncio.wait_for(self._urgent_request("identify"), 2.0)
            except McuResetError:
                return  # the reset path took over
            except (McuError, TimeoutError) as exc:
                if self._transport.is_open:
                    # The port is back but nothing answers in the old session: the MCU most
                    # likely restarted and its 'started' frame was already acknowledged.
                    log.warning("%s: no identify answer after reopening (%s)", self.port, exc)
                    self._mcu_reset_detected("the MCU did not answer in its old session")
                    return
                await asyncio.sleep(backoff)
                continue
            if not self._transport.is_open:
                continue  # lost again while identifying
            ident = await self._all_commands(FirmwareIdentity.from_message(msg))
            check_compatible(ident, self.required_commands, self.port)
            if self.identity and ident != self.identity:
                log.warning("%s: a different firmware answered after replug: %s", self.port, ident)
            self.identity = ident
            await self._send_setup()
            self._set_state(LinkState.RESYNCED, "replugged; setup re-sent")
            return

    def _mcu_reset_detected(self, why: str = "the MCU restarted") -> None:
        """Start a new session: the MCU's state is gone (or cannot be trusted)."""
        self.stats.mcu_resets += 1
        failed = self._fail_pending(
            McuResetError(
                f"{self.port}: {why} while this command was in flight; it may or may not "
                "have run before that and was not re-sent"
            )
        )
        self.stats.failed_by_reset += failed
        self._forget_actions()
        self._req_action.clear()
        self._set_state(LinkState.LOST, f"{why} ({failed} commands failed)")
        current = asyncio.current_task()
        if self._recovering is not None and not self._recovering.done():
            if self._recovering is not current:
                self._recovering.cancel()
        assert self._loop is not None
        self._recovering = self._loop.create_task(self._after_reset())

    async def _after_reset(self) -> None:
        self._set_state(LinkState.RECONNECTING, "re-identifying after MCU reset")
        while not self._closed:
            try:
                await asyncio.wait_for(self._handshake(), 3.0)
            except (TimeoutError, McuError) as exc:
                log.warning("%s: re-identify after reset failed: %s; retrying", self.port, exc)
                await asyncio.sleep(0.2)
                continue
            self._set_state(LinkState.RESYNCED, "MCU reset; re-identified, setup re-sent")
            return
