"""The simulated MCU firmware: the MCU side of docs/mcu-protocol.md, byte stream in/out.

It knows nothing of ptys: ``receive(data)`` takes bytes as they come off the (modelled)
wire and ``transmit`` is called with the bytes to send. Time-critical actions run on the
asyncio loop at their target time, with a short spin for the last 2 ms, and every execution
is logged so tests can assert ordering and timing.

The rules of issue 19 live here as in any firmware: the watchdog is armed by
``set_watchdog`` only; outputs are usable once configured and ``config_output`` drives the
safe value at once; a new host SYN stops encoder reports and keeps everything else; the send
queue is bounded (drop policy, overflow fault); unknown command ids answer ``error`` 1 and
skip the rest of the payload; RTO bounds come from the baud rate.

A machine's own firmware features (the arm's motion queue, the vehicle's drive) live in their
own modules as a ``FirmwareExtension`` given to ``register_extension``: this file stays the
link, the I/O and the watchdog every machine shares.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.framing import MAX_PAYLOAD, FrameDecoder
from firmware_bridge.mcu.identity import PROTOCOL_VERSION
from firmware_bridge.mcu.reliable import ReliableEndpoint
from firmware_bridge.mcu.rtt import estimator_for, unak_interval
from sim_hardware.mcu.encoder import BeltEncoder, EncoderSource

log = logging.getLogger("wolfpack.sim.mcu")

FIRMWARE_NAME = "wolfpack-sim-mcu"
FIRMWARE_VERSION = "1.0.0"
RX_WINDOW = 8
TX_WINDOW = 16
SPIN_S = 0.005  # wake this early and spin: the host OS may wake us late
# Events a host that went away never acknowledged, kept for the next host (docs/mcu-protocol.md
# section 3.3): what happened to the machine while no host was listening.
HELD_EVENTS = ("input_edge", "action_done")
MAX_HELD_EVENTS = 256
# The send queue (docs/mcu-protocol.md 3.4): TX_WINDOW frames in flight plus this many bytes
# of messages not yet framed. What may be dropped when it is full, first kind first.
TX_QUEUE_BYTES = 4096
_REPORT_ID = m.BY_NAME["encoder_report"].id
_EVENT_IDS = frozenset(m.BY_NAME[n].id for n in ("input_edge", "action_done", "fault"))
DROPPABLE = frozenset({"encoder_report", "input_edge", "action_done", "fault"})
LATE_FAULT_US = 1000  # a clock action later than this is reported (fault code 2)


@dataclass(frozen=True)
class ActionRecord:
    """One executed scheduled action (or its automatic revert)."""

    action: int
    pin: int
    value: int
    target_kind: str  # "clock" | "count" | "revert"
    target: int
    fired_clock: int
    fired_count: int
    fired_at: float


@dataclass(frozen=True)
class OutputChange:
    at: float
    pin: int
    value: int
    cause: str  # "command" | "action" | "watchdog" | "reset" | "config"
    # A timed pulse: when the MCU's own timer drives the pin back (a hardware compare on a
    # real MCU: exact). Listeners that model the field side apply the end at this time,
    # whenever this process gets round to it; the change that carries it out later comes
    # with ``announced`` set, so it is not applied twice.
    ends_at: float | None = None
    announced: bool = False


class CompareUnit(Protocol):
    """A timer compare output on the encoder count, as a real MCU drives a stroke: the
    hardware sets the pin the instant the count is reached and ends the pulse on its timer,
    however late the firmware's own loop runs. The simulated cell world implements it
    (sim_hardware/world/mcu_link.py), so a stroke lands at its count even when this process
    is descheduled; the firmware's loop only reports what the hardware did."""

    def drives(self, pin: int) -> bool:
        """Whether ``pin`` is wired to something this unit moves."""
        ...

    def arm(self, key: int, pin: int, value: int, count: int, duration_s: float) -> None:
        """At ``count``, drive ``pin`` to ``value`` (for ``duration_s``, then back; 0: stay)."""
        ...

    def disarm(self, key: int, at: float) -> bool:
        """Cancel ``key`` as of host time ``at``; False if its count came first (it fired)."""
        ...

    def time_of_count(self, count: int) -> float | None:
        """The host time the encoder reached ``count`` (None if it has not)."""
        ...


class FirmwareExtension:
    """A machine's firmware feature in its own module (sim_hardware/mcu/motion.py: the arm).

    It declares the command names it implements (each in ``messages.SPECS``, handled by its
    method ``cmd_<name>``) and gets, through ``self.fw`` after ``attach``: the clock
    (``fw.clock()``, ``fw.time_of_clock()``), outputs (``fw.set_output``), inputs
    (``fw.inputs``, and ``on_input`` on every edge), answers and events (``fw.reply``,
    ``fw.reply_error``, ``fw.event``, ``fw.flush``), the loop (``fw.loop``), and the safe-state
    callback ``on_safe`` (the watchdog tripped: stop, as the firmware's own outputs go safe).
    ``on_boot`` runs on every reset: all of its state is lost, as on a real MCU.
    """

    name = "extension"
    commands: tuple[str, ...] = ()
    held_events: tuple[str, ...] = ()  # its events kept for the next host (spec 3.3)
    droppable_events: tuple[str, ...] = ()  # its events a full send queue may drop (spec 3.4)

    def attach(self, fw: SimFirmware) -> None:
        self.fw = fw

    def handle(self, msg: m.Message) -> None:
        getattr(self, "cmd_" + msg.name)(msg)

    def on_start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The firmware started on ``loop`` (timers may be created from now on)."""

    def on_stop(self) -> None:
        """The simulation ends: cancel timers."""

    def on_boot(self, reason: int) -> None:
        """The MCU (re)started: forget everything, actuators in their power-on state."""

    def on_safe(self, cause: str) -> None:
        """The watchdog tripped (``cause`` "watchdog"): stop and make actuators safe now."""

    def on_input(self, pin: int, value: int, t: float) -> None:
        """Digital input ``pin`` changed to ``value`` at host time ``t``."""

    def on_new_host(self) -> None:
        """A new host SYN (spec 3.3): per-session settings such as periodic reports go off."""


@dataclass
class _Scheduled:
    action: int
    kind: str
    target: int
    encoder: int
    pin: int
    value: int
    duration: int
    handle: asyncio.TimerHandle | None = None
    compare: int | None = None  # its key in the compare unit, if the hardware drives it


class SimFirmware:
    """Protocol logic, outputs, inputs, encoders, scheduler and watchdog of the sim MCU."""

    def __init__(
        self,
        transmit: Callable[[bytes], None],
        *,
        clock_freq: int = 1_000_000,
        drift_ppm: float = 40.0,
        outputs: int = 8,
        inputs: int = 8,
        encoder: EncoderSource | None = None,
        watchdog_ms: int = 500,
        log_limit: int = 200_000,
        protocol: int = PROTOCOL_VERSION,
        baud: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.baud = baud  # for the RTO bounds (spec 3.1); None: no wire time modelled
        self._transmit = transmit
        self.clock_freq = clock_freq
        self.drift_ppm = drift_ppm
        self.n_outputs = outputs
        if not 0 < inputs <= 32:  # the `inputs` answer carries them in 32 bits
            raise ValueError(f"{inputs} inputs: the protocol carries 1 to 32")
        self.n_inputs = inputs
        self.encoder: EncoderSource = encoder or BeltEncoder()
        self.default_watchdog_ms = watchdog_ms
        self.executed: deque[tuple[str, dict[str, Any]]] = deque(maxlen=log_limit)
        self.actions_log: list[ActionRecord] = []
        self.output_log: list[OutputChange] = []
        # Called on every output change (the simulated cell world moves its diverters).
        self.output_listeners: list[Callable[[OutputChange], None]] = []
        # Count actions on the pins it drives are executed by this (see CompareUnit).
        self.compare: CompareUnit | None = None
        self._compare_keys = itertools.count(1)
        # How far the field side (the simulated world) has delivered its input edges: reports
        # of the count and compare strokes are given as of then at the latest, so no event of
        # a later moment goes out before an edge of an earlier one. None: the present.
        self.known_until: float | None = None
        self._set_at: dict[int, float] = {}  # pin -> when it was last driven (not a pulse end)
        self.events_sent: list[str] = []
        self.watchdog_trips: list[float] = []
        self.boots = 0
        self._held: list[tuple[str, dict[str, Any]]] = []  # for the next host (see receive)
        self.held_sent = 0
        self.held_dropped = 0
        self.tx_dropped: dict[str, int] = {}  # by kind, until reported in a fault
        self.tx_dropped_total = 0
        self.late_faults = 0
        self.extensions: list[FirmwareExtension] = []
        self._ext_commands: dict[str, FirmwareExtension] = {}
        self.held_events: frozenset[str] = frozenset(HELD_EVENTS)
        self.droppable: frozenset[str] = DROPPABLE
        self._event_ids: frozenset[int] = _EVENT_IDS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wd_task: asyncio.Task[None] | None = None
        self._report_tasks: dict[int, asyncio.Task[None]] = {}
        self._boot()

    # ---- lifecycle -----------------------------------------------------------------------
    def _boot(self, reason: int = m.START_POWER_ON) -> None:
        self.boots += 1
        self.boot_t = time.monotonic()
        self.decoder = FrameDecoder(partial_timeout_s=0.05)
        self.endpoint = ReliableEndpoint(
            window=TX_WINDOW,
            max_payload=MAX_PAYLOAD,
            rtt=estimator_for(self.baud, 0.1),
            unak_interval=unak_interval(self.baud),
            byte_time=10 / self.baud if self.baud else 0.0,
        )
        self.outputs = [0] * self.n_outputs
        self.safe_values = [0] * self.n_outputs
        self.configured = [False] * self.n_outputs  # usable once config_output declared it
        self.inputs = 0
        self.watchdog_ms = self.default_watchdog_ms
        self.last_host_frame: float | None = None
        self.watchdog_enabled = False  # set by the first set_watchdog (spec 8.1)
        self.watchdog_armed = False
        self._scheduled: dict[int, _Scheduled] = {}
        for task in getattr(self, "_report_tasks", {}).values():
            task.cancel()
        self._report_tasks = {}
        self.endpoint.restart()
        for ext in self.extensions:
            ext.on_boot(reason)
        self._event("started", reason=reason, clock=self.clock())

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wd_task = loop.create_task(self._watchdog_loop())
        for ext in self.extensions:
            ext.on_start(loop)
        self.flush()

    def register_extension(self, ext: FirmwareExtension) -> None:
        """Add a machine's firmware feature: its commands are listed by ``identify`` and
        dispatched to it; it hears boots, input edges and the watchdog's safe state."""
        taken = {s.name for s in m.SPECS if hasattr(self, "_cmd_" + s.name)}
        taken |= set(self._ext_commands)
        for name in ext.commands:
            spec = m.BY_NAME.get(name)
            if spec is None or spec.id >= 0x40:
                raise ValueError(f"extension {ext.name}: {name!r} is not a command in messages")
            if name in taken:
                raise ValueError(f"extension {ext.name}: command {name!r} is already handled")
        for name in ext.held_events + ext.droppable_events:
            if name not in m.BY_NAME or m.BY_NAME[name].id < 0x80:
                raise ValueError(f"extension {ext.name}: {name!r} is not an event in messages")
        ext.attach(self)
        self.extensions.append(ext)
        for name in ext.commands:
            self._ext_commands[name] = ext
        self.held_events |= frozenset(ext.held_events)
        self.droppable |= frozenset(ext.droppable_events)
        self._event_ids |= frozenset(m.BY_NAME[n].id for n in ext.droppable_events)
        if self._loop is not None:
            ext.on_start(self._loop)

    # ---- services for extensions ---------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def reply(self, name: str, **fields: Any) -> None:
        """Queue a response (never dropped; spec 3.4)."""
        self._send(name, **fields)

    def reply_error(self, msg: m.Message, code: int, text: str) -> None:
        self._reply_error(msg, code, text)

    def event(self, name: str, **fields: Any) -> None:
        self._event(name, **fields)

    def set_output(self, pin: int, value: int, cause: str) -> None:
        self._set_output(pin, value, cause)

    def stop(self) -> None:
        if self._wd_task:
            self._wd_task.cancel()
        for ext in self.extensions:
            ext.on_stop()
        for task in self._report_tasks.values():
            task.cancel()
        for s in self._scheduled.values():
            if s.handle:
                s.handle.cancel()
        self._disarm_all(time.monotonic())

    def reset(self, reason: int = m.START_SIMULATED) -> None:
        """Simulate a reset: all state lost, outputs safe, clock restarts, 'started' sent."""
        for s in self._scheduled.values():
            if s.handle:
                s.handle.cancel()
        now = time.monotonic()
        self._disarm_all(now)
        for pin in range(self.n_outputs):
            if self.outputs[pin] != 0:
                change = OutputChange(now, pin, 0, "reset")
                self.output_log.append(change)
                for listener in self.output_listeners:
                    listener(change)
        self._boot(reason)
        self.flush()

    # ---- clock ---------------------------------------------------------------------------
    @property
    def tick_rate(self) -> float:
        """Real ticks per host second (the crystal is off by drift_ppm)."""
        return self.clock_freq * (1 + self.drift_ppm * 1e-6)

    def clock(self, t: float | None = None) -> int:
        t = time.monotonic() if t is None else t
        return int((t - self.boot_t) * self.tick_rate)

    def time_of_clock(self, clock: int) -> float:
        return self.boot_t + clock / self.tick_rate

    # ---- byte stream ---------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        now = time.monotonic()
        frames, bad = self.decoder.feed(data, now)
        ep = self.endpoint
        for frame in frames:
            self.last_host_frame = now
            self.watchdog_armed = self.watchdog_enabled
            payload, new_syn = ep.on_frame(frame, now)
            if new_syn:
                # A host (re)started its sequence space: old replies are for nobody, but the
                # events the last host never acknowledged (edges, strokes done while it was
                # dead) are what the new one needs: kept, sent after its identify. Encoder
                # reports were the last host's settings: off until the new one asks.
                self._held = self._unacknowledged_events()
                ep.restart()
                self._stop_reports()
                for ext in self.extensions:
                    ext.on_new_host()
            if payload:
                self._execute(payload)
        if bad:
            ep.request_nak()
        self.flush()

    def _unacknowledged_events(self) -> list[tuple[str, dict[str, Any]]]:
        """The input edges and finished actions queued or in flight, never acknowledged."""
        ep = self.endpoint
        payloads = [sent.payload for sent in ep._unacked]
        payloads += list(ep._urgent) + list(ep._pending)
        kept: list[tuple[str, dict[str, Any]]] = []
        for payload in payloads:
            pos = 0
            while pos < len(payload):
                try:
                    msg, pos = m.decode_one(payload, pos)
                except m.MessageError:
                    break
                if msg.name in self.held_events:
                    kept.append((msg.name, dict(msg.fields)))
        if len(kept) > MAX_HELD_EVENTS:
            self.held_dropped += len(kept) - MAX_HELD_EVENTS
            kept = kept[-MAX_HELD_EVENTS:]
        return kept

    def flush(self) -> None:
        if self.tx_dropped:
            self._report_overflow()
        data = self.endpoint.take_output(time.monotonic())
        if data:
            self._transmit(data)

    def _execute(self, payload: bytes) -> None:
        pos = 0
        while pos < len(payload):
            spec = m.BY_ID.get(payload[pos])
            if spec is None or spec.id >= 0x40 or not self._implements(spec.name):
                self._unknown_command(payload, pos)
                return
            try:
                msg, pos = m.decode_one(payload, pos)
            except m.MessageError as exc:
                self._event("fault", code=m.FAULT_BAD_PAYLOAD, message=str(exc)[:200])
                return
            self.executed.append((msg.name, msg.fields))
            ext = self._ext_commands.get(msg.name)
            if ext is not None:
                ext.handle(msg)
            else:
                getattr(self, "_cmd_" + msg.name)(msg)
            if msg.name == "reset":
                return  # reset ends its payload (spec 4): nothing after it runs

    def _implements(self, name: str) -> bool:
        return name in self._ext_commands or hasattr(self, "_cmd_" + name)

    def _unknown_command(self, payload: bytes, pos: int) -> None:
        """Answer error 1 with the req that follows the id (every command has it first),
        then skip the rest: an unknown command's length is unknown (spec 4)."""
        cid = payload[pos]
        if pos + 3 <= len(payload):
            req = payload[pos + 1] | payload[pos + 2] << 8
            self._send(
                "error", req=req, code=m.ERR_UNKNOWN_COMMAND,
                message=f"unknown command id 0x{cid:02x}",
            )  # fmt: skip
        self._event(
            "fault", code=m.FAULT_BAD_PAYLOAD,
            message=f"unknown command id 0x{cid:02x} at payload byte {pos}: "
            f"{len(payload) - pos} bytes skipped",
        )  # fmt: skip

    def _send(self, name: str, **fields: Any) -> None:
        message = m.encode(name, **fields)
        ep = self.endpoint
        queued = sum(map(len, ep._pending)) + sum(map(len, ep._urgent))
        while queued + len(message) > TX_QUEUE_BYTES:
            dropped = self._drop_one()
            if dropped is None:
                if name in self.droppable:
                    self._count_drop(name)
                    return
                break  # responses, started, watchdog_tripped are never dropped
            queued -= dropped
        ep.queue(message)

    def _drop_one(self) -> int | None:
        """Drop the oldest queued encoder_report, else the oldest queued event (3.4)."""
        pending = self.endpoint._pending
        for ids in (frozenset({_REPORT_ID}), self._event_ids):
            for i, queued in enumerate(pending):
                if queued[0] in ids:
                    del pending[i]
                    self._count_drop(m.BY_ID[queued[0]].name)
                    return len(queued)
        return None

    def _count_drop(self, name: str) -> None:
        self.tx_dropped[name] = self.tx_dropped.get(name, 0) + 1
        self.tx_dropped_total += 1

    def _report_overflow(self) -> None:
        """One fault naming what the full send queue dropped, once there is room for it."""
        ep = self.endpoint
        queued = sum(map(len, ep._pending)) + sum(map(len, ep._urgent))
        if queued + 3 + 200 > TX_QUEUE_BYTES:
            return
        counts = ", ".join(f"{n} {name}" for name, n in sorted(self.tx_dropped.items()))
        self.tx_dropped = {}
        text = f"send queue full: dropped {counts}"[:200]
        self._event("fault", code=m.FAULT_QUEUE_OVERFLOW, message=text)

    def _event(self, name: str, **fields: Any) -> None:
        self.events_sent.append(name)
        self._send(name, **fields)

    def _reply_error(self, msg: m.Message, code: int, text: str) -> None:
        self._send("error", req=msg.fields.get("req", 0), code=code, message=text[:200])

    # ---- commands --------------------------------------------------------------------------
    def command_names(self) -> list[str]:
        return [s.name for s in m.SPECS if s.id < 0x40 and self._implements(s.name)]

    def _cmd_identify(self, msg: m.Message) -> None:
        # get_commands is listed only when the list does not fit: a firmware whose list
        # fits answers exactly as a protocol-1 one (the same identify_response frame)
        names = [n for n in self.command_names() if n != "get_commands"]
        commands = ",".join(names)
        if len(commands) > m.MAX_STRING:
            # what fits, get_commands among it: the host reads the rest (spec 5)
            commands = "get_commands"
            for name in names:
                if name != "get_commands" and len(commands) + 1 + len(name) <= m.MAX_STRING:
                    commands += "," + name
        self._send(
            "identify_response",
            req=msg["req"],
            protocol=self.protocol,
            rx_window=RX_WINDOW,
            max_payload=MAX_PAYLOAD,
            clock_freq=self.clock_freq,
            outputs=self.n_outputs,
            inputs=self.n_inputs,
            encoders=1,
            firmware=FIRMWARE_NAME,
            version=FIRMWARE_VERSION,
            commands=commands,
        )
        self._send_held()

    def _cmd_get_commands(self, msg: m.Message) -> None:
        names = self.command_names()
        page: list[str] = []
        for name in names[msg["offset"] :]:
            if len(",".join([*page, name])) > m.MAX_STRING:
                break
            page.append(name)
        self._send(
            "commands", req=msg["req"], offset=msg["offset"], total=len(names),
            names=",".join(page),
        )  # fmt: skip

    def _send_held(self) -> None:
        held, self._held = self._held, []
        for name, fields in held:
            self._event(name, **fields)
        self.held_sent += len(held)

    def _cmd_ping(self, msg: m.Message) -> None:
        self._send("pong", req=msg["req"], data=msg["data"])

    def _cmd_get_clock(self, msg: m.Message) -> None:
        self._send("clock", req=msg["req"], clock=self.clock())

    def _cmd_heartbeat(self, msg: m.Message) -> None:
        pass  # its frame already fed the watchdog

    def _cmd_set_watchdog(self, msg: m.Message) -> None:
        if msg["timeout_ms"] < 10:
            self._reply_error(msg, m.ERR_BAD_ARGUMENT, "watchdog timeout must be >= 10 ms")
            return
        self.watchdog_ms = msg["timeout_ms"]
        self.watchdog_enabled = self.watchdog_armed = True  # armed by set_watchdog only
        self.last_host_frame = time.monotonic()
        self._send("ok", req=msg["req"])

    def _check_pin(self, msg: m.Message, pin: int) -> bool:
        if pin >= self.n_outputs:
            self._reply_error(
                msg, m.ERR_BAD_ARGUMENT, f"output {pin} does not exist (0..{self.n_outputs - 1})"
            )
            return False
        return True

    def _check_configured(self, msg: m.Message, pin: int) -> bool:
        if not self._check_pin(msg, pin):
            return False
        if not self.configured[pin]:
            self._reply_error(
                msg, m.ERR_NOT_CONFIGURED, f"output {pin} is not configured (config_output first)"
            )
            return False
        return True

    def _cmd_config_output(self, msg: m.Message) -> None:
        pin = msg["pin"]
        if self._check_pin(msg, pin):
            safe = 1 if msg["safe_value"] else 0
            if not self.configured[pin] or self.safe_values[pin] != safe:
                # new or changed: the pin goes to its safe value at once; the same
                # config_output again (setup re-sent after a replug) changes nothing
                self.configured[pin] = True
                self.safe_values[pin] = safe
                self._set_output(pin, safe, "config")
            self._send("ok", req=msg["req"])

    def _cmd_set_output(self, msg: m.Message) -> None:
        if self._check_configured(msg, msg["pin"]):
            self._set_output(msg["pin"], msg["value"], "command")
            self._send("ok", req=msg["req"])

    def _cmd_get_inputs(self, msg: m.Message) -> None:
        self._send("inputs", req=msg["req"], bits=self.inputs)

    def _cmd_get_encoder(self, msg: m.Message) -> None:
        if msg["encoder"] != 0:
            self._reply_error(msg, m.ERR_BAD_ARGUMENT, f"encoder {msg['encoder']} does not exist")
            return
        now = self._known(time.monotonic())
        self._compares_reached(now)
        self._send(
            "encoder_state",
            req=msg["req"],
            encoder=0,
            count=self.encoder.count_at(now),
            clock=self.clock(now),
        )

    def _cmd_set_encoder_report(self, msg: m.Message) -> None:
        enc = msg["encoder"]
        if enc != 0:
            self._reply_error(msg, m.ERR_BAD_ARGUMENT, f"encoder {enc} does not exist")
            return
        old = self._report_tasks.pop(enc, None)
        if old:
            old.cancel()
        if msg["interval_ms"] and self._loop:
            self._report_tasks[enc] = self._loop.create_task(
                self._report_loop(enc, msg["interval_ms"] / 1000)
            )
        self._send("ok", req=msg["req"])

    def _cmd_get_stats(self, msg: m.Message) -> None:
        d, c = self.decoder.stats, self.endpoint.counters
        self._send(
            "stats",
            req=msg["req"],
            rx_frames=d.frames & 0xFFFFFFFF,
            rx_bad=d.bad_frames & 0xFFFFFFFF,
            naks_sent=c.naks_sent & 0xFFFFFFFF,
            retransmits=c.retransmits & 0xFFFFFFFF,
            duplicates=c.duplicates & 0xFFFFFFFF,
            rx_garbage=d.garbage_bytes & 0xFFFFFFFF,
        )

    def _cmd_reset(self, msg: m.Message) -> None:
        if self._loop:
            self._loop.call_later(0.01, self.reset, m.START_RESET_COMMAND)

    def _cmd_cancel_action(self, msg: m.Message) -> None:
        s = self._scheduled.get(msg["action"])
        if s is None:
            self._reply_error(msg, m.ERR_NOT_FOUND, f"no pending action {msg['action']}")
            return
        if s.handle:
            s.handle.cancel()
        now = time.monotonic()
        if s.compare is not None and self.compare is not None:
            reached = self.encoder.count_at(self._known(now)) >= s.target
            if reached or not self.compare.disarm(s.compare, now):
                # the hardware fired it before this command was read: report it first, as
                # the spec's "its action_done came first"
                self._fire(s)
                self._reply_error(msg, m.ERR_NOT_FOUND, f"action {s.action} already fired")
                return
        del self._scheduled[s.action]
        self._send("ok", req=msg["req"])

    def _cmd_schedule_at_clock(self, msg: m.Message) -> None:
        f = msg.fields
        if not self._check_configured(msg, f["pin"]) or not self._check_action(msg):
            return
        now_clock = self.clock()
        if f["clock"] <= now_clock:
            late = now_clock - f["clock"]
            self._reply_error(
                msg,
                m.ERR_IN_PAST,
                f"clock {f['clock']} is {late} ticks ({late / self.clock_freq * 1000:.3f} ms) "
                f"in the past (now {now_clock})",
            )
            return
        s = _Scheduled(f["action"], "clock", f["clock"], 0, f["pin"], f["value"], f["duration"])
        self._arm(s, self.time_of_clock(f["clock"]))
        self._send("ok", req=msg["req"])

    def _cmd_schedule_at_count(self, msg: m.Message) -> None:
        f = msg.fields
        if not self._check_configured(msg, f["pin"]) or not self._check_action(msg):
            return
        if f["encoder"] != 0:
            self._reply_error(msg, m.ERR_BAD_ARGUMENT, f"encoder {f['encoder']} does not exist")
            return
        now = time.monotonic()
        count = self.encoder.count_at(now)
        if f["count"] <= count:
            self._reply_error(
                msg,
                m.ERR_IN_PAST,
                f"encoder count {f['count']} already passed (now {count}, "
                f"{count - f['count']} counts late)",
            )
            return
        s = _Scheduled(f["action"], "count", f["count"], 0, f["pin"], f["value"], f["duration"])
        if self.compare is not None and self.compare.drives(s.pin):
            s.compare = next(self._compare_keys)
            self.compare.arm(s.compare, s.pin, s.value, s.target, s.duration / self.tick_rate)
        eta = self.encoder.eta(f["count"], now)
        self._arm(s, eta if eta is not None else now + 0.001)
        self._send("ok", req=msg["req"])

    def _check_action(self, msg: m.Message) -> bool:
        if msg["action"] in self._scheduled:
            self._reply_error(msg, m.ERR_BUSY, f"action {msg['action']} is already pending")
            return False
        return True

    # ---- scheduler ---------------------------------------------------------------------------
    def _arm(self, s: _Scheduled, at: float) -> None:
        self._scheduled[s.action] = s
        assert self._loop is not None
        delay = at - SPIN_S - time.monotonic()
        s.handle = self._loop.call_later(max(0.0, delay), self._due, s)

    def _due(self, s: _Scheduled) -> None:
        if self._scheduled.get(s.action) is not s:
            return
        if s.kind == "clock":
            target_t = self.time_of_clock(s.target)
            while time.monotonic() < target_t:
                pass
        else:
            eta = self.encoder.eta(s.target, time.monotonic())
            if eta is None or eta - time.monotonic() > SPIN_S:
                # The belt slowed or stopped since arming: wait again.
                now = time.monotonic()
                self._arm(s, eta if eta is not None else now + 0.001)
                return
            if s.compare is not None and self.compare is not None and self._loop is not None:
                # the compare unit sets the pin at the count; this loop reports it once the
                # field side has got there (see advance_known)
                self._compares_reached(self._known(time.monotonic()))
                if self._scheduled.get(s.action) is s:
                    s.handle = self._loop.call_later(0.002, self._due, s)
                return
            while self.encoder.count_at(time.monotonic()) < s.target:
                pass
        self._fire(s)

    def advance_known(self, t: float) -> None:
        """The field side has delivered every input edge up to ``t`` (queued on this loop
        behind those edges): strokes its compare unit fired by then are reported."""
        if self.known_until is None or t > self.known_until:
            self.known_until = t
        self._compares_reached(min(t, time.monotonic()))

    def _known(self, now: float) -> float:
        """``now``, or how far the field side is known if that is earlier (never before this
        boot: the clock starts there)."""
        if self.known_until is None:
            return now
        return min(now, max(self.known_until, self.boot_t))

    def _compares_reached(self, t: float) -> None:
        """Report every stroke the compare unit has fired by ``t`` before anything later:
        on a real MCU its interrupt ran at the count, so no event of a later moment (an input
        edge, an encoder report) goes out ahead of its ``action_done``. The host reads the MCU's
        events as one timeline; this loop, run late, must not reorder it."""
        if self.compare is None or not self._scheduled:
            return
        count = self.encoder.count_at(t)
        due = [s for s in self._scheduled.values() if s.compare is not None and s.target <= count]
        for s in sorted(due, key=lambda s: s.target):
            if s.handle:
                s.handle.cancel()
            self._fire(s)

    def _disarm_all(self, now: float) -> None:
        """Every compare not yet reached is cancelled (a reset, the watchdog, the end)."""
        if self.compare is None:
            return
        for s in self._scheduled.values():
            if s.compare is not None:
                self.compare.disarm(s.compare, now)

    def _fire(self, s: _Scheduled) -> None:
        now = time.monotonic()
        del self._scheduled[s.action]
        hw_at = None
        if s.compare is not None and self.compare is not None:
            hw_at = self.compare.time_of_count(s.target)
        if hw_at is not None:
            # the compare unit set the pin at the count: report its moment, not this loop's
            now = min(hw_at, now)
            clock, count = self.clock(now), s.target
        else:
            clock, count = self.clock(now), self.encoder.count_at(now)
        revert_at = self.time_of_clock(clock + s.duration) if s.duration else None
        self._set_output(s.pin, s.value, "action", ends_at=revert_at,
                         announced=hw_at is not None, at=now)  # fmt: skip
        self.actions_log.append(
            ActionRecord(s.action, s.pin, s.value, s.kind, s.target, clock, count, now)
        )
        self._event(
            "action_done", action=s.action, pin=s.pin, value=s.value, clock=clock, count=count
        )
        late_us = (clock - s.target) * 1e6 / self.clock_freq if s.kind == "clock" else 0.0
        if late_us > LATE_FAULT_US:
            self.late_faults += 1
            self._event(
                "fault", code=m.FAULT_LATE_ACTION,
                message=f"action {s.action} fired {late_us:.0f} us late",
            )  # fmt: skip
        if revert_at is not None and self._loop:
            boot = self.boots
            self._loop.call_later(
                max(0.0, revert_at - time.monotonic()), self._revert, s, 0 if s.value else 1,
                boot, revert_at,
            )  # fmt: skip
        self.flush()

    def _revert(self, s: _Scheduled, value: int, boot: int, revert_at: float) -> None:
        if boot != self.boots or self.outputs[s.pin] == value:
            return
        if self._set_at.get(s.pin, float("-inf")) > revert_at:
            return  # set again after this pulse's end (this call ran late): not ours to end
        now = time.monotonic()
        self._set_output(s.pin, value, "action", announced=True)
        self.actions_log.append(
            ActionRecord(
                s.action, s.pin, value, "revert", s.target, self.clock(now),
                self.encoder.count_at(now), now,
            )
        )  # fmt: skip

    def _set_output(
        self, pin: int, value: int, cause: str, ends_at: float | None = None,
        announced: bool = False, at: float | None = None,
    ) -> None:  # fmt: skip
        """``announced``: the field side has this change already (a pulse's end announced
        with its start, or a compare unit's stroke); ``at``: when it happened (default now)."""
        value = 1 if value else 0
        self.outputs[pin] = value
        now = time.monotonic() if at is None else at
        if not announced or at is not None:
            self._set_at[pin] = now
        change = OutputChange(now, pin, value, cause, ends_at, announced)
        self.output_log.append(change)
        for listener in self.output_listeners:
            listener(change)

    # ---- inputs, reports, watchdog ----------------------------------------------------------
    def set_input(self, pin: int, value: int, at: float | None = None) -> None:
        """Change an input; an edge is reported with the clock and count at ``at`` (default
        now), as an MCU's input capture latches the moment of the edge (the simulated cell
        world finds an edge a few milliseconds after the fact and passes its time)."""
        if not 0 <= pin < self.n_inputs:
            raise ValueError(f"input pin {pin} does not exist (0..{self.n_inputs - 1})")
        bit = 1 << pin
        old = bool(self.inputs & bit)
        self.inputs = (self.inputs | bit) if value else (self.inputs & ~bit)
        if old != bool(value):
            now = time.monotonic() if at is None else min(at, time.monotonic())
            self._compares_reached(now)
            self._event(
                "input_edge",
                pin=pin,
                value=1 if value else 0,
                clock=self.clock(now),
                count=self.encoder.count_at(now),
            )
            for ext in self.extensions:
                ext.on_input(pin, 1 if value else 0, now)
            self.flush()

    def _stop_reports(self) -> None:
        """Every encoder report off (a new host session, a watchdog trip: spec 3.4)."""
        for task in self._report_tasks.values():
            task.cancel()
        self._report_tasks = {}

    async def _report_loop(self, encoder: int, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = self._known(time.monotonic())
            self._compares_reached(now)
            self._event(
                "encoder_report", encoder=encoder, count=self.encoder.count_at(now),
                clock=self.clock(now),
            )  # fmt: skip
            self.flush()

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            deadline = self.endpoint.rto_deadline()
            if (deadline is not None and now >= deadline) or self.endpoint.queued:
                self.flush()
            if not self.watchdog_armed or self.last_host_frame is None:
                continue
            silent = now - self.last_host_frame
            if silent * 1000 >= self.watchdog_ms:
                self._trip_watchdog(now, silent)

    def _trip_watchdog(self, now: float, silent: float) -> None:
        self.watchdog_armed = False
        self.watchdog_trips.append(now)
        for s in self._scheduled.values():
            if s.handle:
                s.handle.cancel()
        self._disarm_all(now)
        self._scheduled.clear()
        self._stop_reports()
        for pin, safe in enumerate(self.safe_values):
            if self.configured[pin]:
                self._set_output(pin, safe, "watchdog")
        for ext in self.extensions:
            ext.on_safe("watchdog")
        log.warning("watchdog: %.0f ms without a host frame; all outputs safe", silent * 1000)
        self._event("watchdog_tripped", clock=self.clock(now), silent_ms=int(silent * 1000))
        self.flush()
