"""The reliable layer between two real endpoints over an in-memory lossy line, virtual time.

This checks the sans-IO state machine on its own; the system tests run it over real ptys.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu.framing import FrameDecoder
from firmware_bridge.mcu.reliable import ReliableEndpoint
from firmware_bridge.mcu.rtt import RttEstimator


class _Side:
    def __init__(self, window: int) -> None:
        self.ep = ReliableEndpoint(window=window, max_payload=60, rtt=RttEstimator(0.05, 0.02))
        self.dec = FrameDecoder(partial_timeout_s=0.005)
        self.delivered: list[bytes] = []
        self.syns = 0

    def receive(self, data: bytes, now: float) -> None:
        frames, bad = self.dec.feed(data, now)
        for f in frames:
            payload, syn = self.ep.on_frame(f, now)
            self.syns += syn
            if payload:
                self.delivered.append(payload)
        if bad:
            self.ep.request_nak()


def _damage(data: bytes, rng: random.Random, rate: float) -> bytes:
    out = bytearray()
    for b in data:
        r = rng.random()
        if r < rate / 2:
            continue  # dropped
        out.append(b ^ rng.randrange(1, 256) if r < rate else b)
    return bytes(out)


def _run(n_msgs: int, rate: float, seed: int, window: int = 4) -> tuple[_Side, _Side, float]:
    rng = random.Random(seed)
    host, mcu = _Side(window), _Side(16)
    host.ep.restart()
    mcu.ep.restart()
    # Each side's first frame is a SYN data frame (the MCU's 'started'): an unsynchronised
    # side takes ACKs only from the peer's SYN frame (docs/mcu-protocol.md 3.2).
    mcu.ep.queue(b"started")
    msgs = [i.to_bytes(4, "big") * (1 + i % 5) for i in range(n_msgs)]
    for msg in msgs:
        host.ep.queue(msg)
    t = 0.0
    while t < 60 and b"".join(p for p in mcu.delivered) != b"".join(msgs):
        t += 0.001
        to_mcu = host.ep.take_output(t)
        if to_mcu:
            mcu.receive(_damage(to_mcu, rng, rate), t)
        to_host = mcu.ep.take_output(t)
        if to_host:
            host.receive(_damage(to_host, rng, rate), t)
    return host, mcu, t


def _messages_of(side: _Side) -> bytes:
    return b"".join(side.delivered)


@settings(max_examples=60)
@given(st.integers(0, 2**32), st.sampled_from([0.0, 0.001, 0.005, 0.01]))
def test_every_message_arrives_once_in_order_on_a_lossy_line(seed, rate):
    host, mcu, t = _run(60, rate, seed)
    expected = b"".join(i.to_bytes(4, "big") * (1 + i % 5) for i in range(60))
    assert _messages_of(mcu) == expected, f"not delivered after {t:.3f} s"
    assert host.ep.counters.messages_sent == 60


def test_clean_line_needs_no_retransmits_and_never_exceeds_the_window():
    host, mcu, _ = _run(200, 0.0, 1, window=3)
    assert host.ep.counters.retransmits == 0 and host.ep.counters.timeouts == 0
    assert mcu.ep.counters.naks_sent == 0


def test_nak_is_sent_once_per_expected_sequence():
    rx = ReliableEndpoint(window=1)
    rx.rx_expected = 10
    for _ in range(5):
        rx.request_nak()
    out = rx.take_output(0.0)
    assert rx.counters.naks_sent == 1 and out[4] == 0x02
    rx.request_nak()
    assert rx.take_output(0.0) == b""  # still no progress: no second NAK


def test_duplicates_are_acked_but_not_delivered():
    from firmware_bridge.mcu.framing import Frame

    rx = ReliableEndpoint()
    rx.rx_expected = 5
    payload, _ = rx.on_frame(Frame(5, 0, 0, b"a"), 0.0)
    assert payload == b"a"
    payload, _ = rx.on_frame(Frame(5, 0, 0, b"a"), 0.0)
    assert payload is None and rx.counters.duplicates == 1
    out = rx.take_output(0.0)
    assert out[3] == 6  # ACK carries the next expected SEQ


def test_karn_rule_ignores_retransmitted_frames_for_rtt():
    ep = ReliableEndpoint(window=4, rtt=RttEstimator(initial_rto=0.1, min_rto=0.01))
    ep.restart()
    ep.queue(b"x")
    ep.take_output(0.0)
    ep.take_output(0.2)  # RTO expired: retransmitted
    assert ep.counters.retransmits == 1
    from firmware_bridge.mcu.framing import Frame

    ep.rx_expected = 0
    ep.on_frame(Frame(0, 1, 0, b""), 0.25)
    assert ep.in_flight == 0 and ep.rtt.samples == 0
