"""The reliable, ordered, exactly-once layer of the MCU link, without I/O (sans-IO).

Both ends run the same rules (docs/mcu-protocol.md, "Reliability"): every frame with a
payload has a sequence number (mod 256); the receiver accepts only the next expected one,
ACKs cumulatively (the ACK byte of every frame it sends is the next SEQ it expects), ACKs
duplicates again without delivering them, and NAKs a gap or a bad frame at most once per
expected SEQ until progress. The sender keeps at most ``window`` frames unacknowledged and
goes back N (resends every unacknowledged frame) on a NAK or when the RTO expires. While
unsynchronised a receiver sends an *unsynchronised NAK* (SYN|NAK, rate-limited), and the
peer answers it by resending its SYN frame alone, so a lost SYN answer is recovered in one
round trip; ACK fields are taken only where they belong to our sequence space. The host
runs this in asyncio; the simulated firmware runs the same class; real firmware implements
the same state machine in C.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_bridge.mcu.framing import (
    FLAG_NAK,
    FLAG_SYN,
    FLAG_UNAK,
    MAX_PAYLOAD,
    Frame,
    encode_frame,
)
from firmware_bridge.mcu.rtt import RttEstimator

HALF_SEQ = 128


@dataclass
class LinkCounters:
    frames_sent: int = 0
    frames_received: int = 0
    messages_sent: int = 0
    retransmits: int = 0
    timeouts: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    unsynced_dropped: int = 0
    bogus_acks: int = 0
    rejected_syns: int = 0
    unaks_sent: int = 0
    syn_resends: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Sent:
    seq: int
    payload: bytes
    flags: int
    messages: int
    sent_at: float
    transmissions: int = 1


@dataclass
class ReliableEndpoint:
    """One end of the link: queue messages, feed received frames, take bytes to write."""

    window: int = 1
    max_payload: int = MAX_PAYLOAD
    rtt: RttEstimator = field(default_factory=RttEstimator)
    counters: LinkCounters = field(default_factory=LinkCounters)
    # transmit state
    _pending: deque[bytes] = field(default_factory=deque)
    _urgent: deque[bytes] = field(default_factory=deque)
    _unacked: deque[_Sent] = field(default_factory=deque)
    _next_seq: int = 0
    _send_syn: bool = False
    _nak_retx_base: int | None = None
    _resend_pending: bool = False
    _syn_resend_at: float | None = None  # an unsynchronised NAK asked for our SYN frame
    _last_tx: float = 0.0
    # Wire time of one byte (10 / baud; 0: unknown): a SYN frame still leaving the wire is
    # resent only once it has left.
    byte_time: float = 0.0
    # Unsynchronised NAKs at most once per this many seconds (max(5 ms, 14 byte times): a
    # noisy line cannot fill the other direction with them; spec 3.2).
    unak_interval: float = 0.005
    _unak_owed: bool = False
    _unak_forced: bool = False
    _last_unak: float = float("-inf")
    # receive state
    rx_expected: int | None = None  # None: not synchronised, accept only a SYN frame
    _ack_owed: bool = False
    _nak_owed: bool = False
    _nak_sent_for: int | None = None
    _last_syn: tuple[int, bytes] | None = None
    # Decides whether a new SYN frame starts the peer's session (the host, while it waits for
    # the answer to its own SYN, accepts only that answer: an older SYN still on the wire,
    # such as a 'started' resent just before the MCU saw the host's SYN, must not be taken
    # for the new session, or the two sessions' sequence numbers would be confused).
    syn_filter: Callable[[Frame], bool] | None = None
    # Called with each message as it is packed into a new frame (the host records the order
    # in which its commands went out: answers come back in that order, spec section 4).
    on_framed: Callable[[bytes], None] | None = None

    # ---- transmit side -------------------------------------------------------------------
    def queue(self, message: bytes) -> None:
        """Queue one encoded message; it goes out in order, exactly once, in some frame."""
        if len(message) > self.max_payload:
            raise ValueError(f"message of {len(message)} bytes exceeds {self.max_payload}")
        self._pending.append(message)

    def queue_urgent(self, message: bytes) -> None:
        """Queue ahead of every message not yet framed (frames already sent keep their order).

        For idempotent link housekeeping (identify, setup) after a reconnect, so it does not
        wait behind a backlog of commands."""
        if len(message) > self.max_payload:
            raise ValueError(f"message of {len(message)} bytes exceeds {self.max_payload}")
        self._urgent.append(message)

    def restart(self) -> tuple[int, int]:
        """Start a new sequence space: drop everything unsent and unacked; the next frame
        carries SYN. Returns (dropped unacknowledged frames, dropped queued messages)."""
        dropped = (len(self._unacked), len(self._pending) + len(self._urgent))
        self._unacked.clear()
        self._pending.clear()
        self._urgent.clear()
        self._next_seq = 0
        self._send_syn = True
        self._nak_retx_base = None
        self._resend_pending = False
        self._syn_resend_at = None
        self.rtt.reset()
        return dropped

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._urgent)

    @property
    def idle(self) -> bool:
        return not self._unacked and not self._pending and not self._urgent

    @property
    def last_tx(self) -> float:
        return self._last_tx

    def rto_deadline(self) -> float | None:
        """When take_output has something due without new input: a retransmission (the
        RTO, a SYN resend asked for) or an unsynchronised NAK held back by its rate limit."""
        due = []
        if self._unacked:
            due.append(self._unacked[0].sent_at + self.rtt.rto)
            if self._syn_resend_at is not None:
                due.append(self._syn_resend_at)
        if self._unak_owed and self.rx_expected is None:
            due.append(self._last_unak + self.unak_interval)
        return min(due) if due else None

    def _frame_bytes(self, sent: _Sent) -> bytes:
        ack = self.rx_expected if self.rx_expected is not None else 0
        return encode_frame(sent.seq, ack, sent.payload, sent.flags)

    def take_output(self, now: float) -> bytes:
        """Everything due to be written now: retransmits, new frames, a pure ACK/NAK."""
        out = bytearray()
        deadline = self._unacked[0].sent_at + self.rtt.rto if self._unacked else None
        if deadline is not None and now >= deadline:
            self.counters.timeouts += 1
            self.rtt.backoff()
            self._resend_all(out, now)
            self._resend_pending = False
            self._syn_resend_at = None
        elif self._resend_pending:
            self._resend_all(out, now)
            self._resend_pending = False
            self._syn_resend_at = None
        elif self._syn_resend_at is not None and now >= self._syn_resend_at and self._unacked:
            sent = self._unacked[0]  # the peer lacks our SYN frame: that one alone
            sent.transmissions += 1
            sent.sent_at = now
            out += self._frame_bytes(sent)
            self.counters.retransmits += 1
            self.counters.syn_resends += 1
            self.counters.frames_sent += 1
        if self._syn_resend_at is not None and (now >= self._syn_resend_at or not self._unacked):
            self._syn_resend_at = None
        # new frames within the window
        if self._urgent:
            self._urgent.extend(self._pending)
            self._pending, self._urgent = self._urgent, deque()
        pending = self._pending
        maxp = self.max_payload
        framed = self.on_framed
        while pending and len(self._unacked) < self.window:
            message = pending.popleft()
            payload = bytearray(message)
            if framed is not None:
                framed(message)
            count = 1
            while pending and len(payload) + len(pending[0]) <= maxp:
                message = pending.popleft()
                payload += message
                if framed is not None:
                    framed(message)
                count += 1
            flags = 0
            if self._send_syn:
                flags = FLAG_SYN
                self._send_syn = False
            sent = _Sent(self._next_seq, bytes(payload), flags, count, now)
            self._next_seq = (self._next_seq + 1) & 0xFF
            self._unacked.append(sent)
            out += self._frame_bytes(sent)
            self.counters.frames_sent += 1
            self.counters.messages_sent += count
        ack = self.rx_expected if self.rx_expected is not None else 0
        if self._unak_owed and self.rx_expected is None:
            if self._unak_forced or now - self._last_unak >= self.unak_interval:
                out += encode_frame(0, 0, b"", FLAG_UNAK)
                self._last_unak = now
                self.counters.unaks_sent += 1
                self.counters.naks_sent += 1
                self.counters.frames_sent += 1
                self._unak_owed = self._unak_forced = False
            # else: held back by the rate limit, sent when it allows (rto_deadline)
        else:
            self._unak_owed = self._unak_forced = False
        if self._nak_owed:
            out += encode_frame(0, ack, b"", FLAG_NAK)
            self.counters.naks_sent += 1
            self.counters.frames_sent += 1
        elif self._ack_owed and not out:
            out += encode_frame(0, ack, b"")
            self.counters.frames_sent += 1
        self._nak_owed = False
        self._ack_owed = False
        if out:
            self._last_tx = now
        return bytes(out)

    def _resend_all(self, out: bytearray, now: float) -> None:
        for sent in self._unacked:
            sent.transmissions += 1
            sent.sent_at = now
            out += self._frame_bytes(sent)
            self.counters.retransmits += 1
            self.counters.frames_sent += 1

    def resend_now(self, now: float) -> bytes:
        """Resend every unacknowledged frame (after a reconnect)."""
        out = bytearray()
        self._resend_all(out, now)
        if out:
            self._last_tx = now
        return bytes(out)

    def _on_ack(self, ack: int, now: float) -> int:
        unacked = self._unacked
        if not unacked:
            return 0
        n = (ack - unacked[0].seq) & 0xFF
        if n > len(unacked):
            self.counters.bogus_acks += 1
            return 0
        sample: float | None = None
        for _ in range(n):
            sent = unacked.popleft()
            if sent.transmissions == 1 and not sent.flags & FLAG_SYN:
                # (a SYN's ACK rides on the peer's SYN answer, which it may have resent
                # many times on a noisy line: that measures recovery, not the line)
                sample = now - sent.sent_at
        if sample is not None:
            self.rtt.sample(sample)
        if n:
            self._nak_retx_base = None
        return n

    # ---- receive side --------------------------------------------------------------------
    def on_frame(self, frame: Frame, now: float) -> tuple[bytes | None, bool]:
        """Process one valid frame. Returns (payload to deliver or None, is_new_syn)."""
        c = self.counters
        c.frames_received += 1
        if frame.unak:
            c.naks_received += 1
            self._on_unak(now)
            return None, False
        if self.rx_expected is None:
            return self._on_frame_unsynced(frame, now)
        new_syn = (
            frame.syn and not frame.is_control and self._last_syn != (frame.seq, frame.payload)
        )
        if not new_syn or (self._unacked and self._unacked[0].flags & FLAG_SYN):
            # A new SYN's ACK belongs to the peer's new session, unless it answers ours.
            self._on_ack(frame.ack, now)
        if frame.nak:
            c.naks_received += 1
            if self._unacked and self._nak_retx_base != self._unacked[0].seq:
                self._nak_retx_base = self._unacked[0].seq
                self._resend_pending = True
        if frame.is_control:
            return None, False
        if frame.syn:
            if not new_syn:
                # A resent copy of the SYN we accepted (a new session's SYN differs: the
                # host starts its req ids at random, the MCU's 'started' carries its clock).
                c.duplicates += 1
                self._ack_owed = True
                return None, False
            if self.syn_filter is not None and not self.syn_filter(frame):
                c.rejected_syns += 1
                return None, False
            return self._accept_syn(frame)
        expected = self.rx_expected
        d = (frame.seq - expected) & 0xFF
        if d == 0:
            self.rx_expected = (expected + 1) & 0xFF
            self._ack_owed = True
            self._nak_sent_for = None
            return frame.payload, False
        if d < HALF_SEQ:
            c.out_of_order += 1
            self.request_nak()
        else:
            c.duplicates += 1
            self._ack_owed = True
        return None, False

    def _on_frame_unsynced(self, frame: Frame, now: float) -> tuple[bytes | None, bool]:
        """Only a SYN data frame is accepted, and only its ACK counts (spec 3.2)."""
        c = self.counters
        if frame.nak:
            c.naks_received += 1
            self._on_unak(now)
        if frame.is_control:
            return None, False
        if not frame.syn:
            c.unsynced_dropped += 1
            self.request_nak()  # the peer's SYN before it was probably lost
            return None, False
        if self.syn_filter is not None and not self.syn_filter(frame):
            c.rejected_syns += 1
            return None, False
        self._on_ack(frame.ack, now)
        return self._accept_syn(frame)

    def _accept_syn(self, frame: Frame) -> tuple[bytes, bool]:
        self._last_syn = (frame.seq, frame.payload)
        self.rx_expected = (frame.seq + 1) & 0xFF
        self._ack_owed = True
        self._nak_sent_for = None
        self._unak_owed = False
        return frame.payload, True

    def _on_unak(self, now: float) -> None:
        """The peer has no sequence state: resend our SYN frame alone, at once, unless a copy
        of it is still leaving the wire (that copy is the answer; several NAKs caused by one
        corrupted copy then cost one resend, not several)."""
        if not self._unacked or not self._unacked[0].flags & FLAG_SYN:
            return
        oldest = self._unacked[0]
        if now >= oldest.sent_at + (len(oldest.payload) + 7) * self.byte_time:
            self._syn_resend_at = now

    def keepalive_unak(self) -> None:
        """While unsynchronised: send an unsynchronised NAK with the next output, whatever
        the rate limit (the host's keep-alive while it waits for identify_response)."""
        self._unak_owed = self._unak_forced = True

    def force_ack(self) -> None:
        """Send a pure ACK with the next output even if nothing is owed (keep-alive)."""
        self._ack_owed = True

    def request_nak(self) -> None:
        """The decoder saw a bad frame (or a gap): NAK once per expected SEQ; while
        unsynchronised, an unsynchronised NAK (rate-limited when it is sent)."""
        if self.rx_expected is None:
            self._unak_owed = True
            return
        if self._nak_sent_for == self.rx_expected:
            return
        self._nak_sent_for = self.rx_expected
        self._nak_owed = True
