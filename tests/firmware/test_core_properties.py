"""The C core against the Python reference (firmware_bridge/mcu), in-process through ctypes
(firmware/build/host/libwpcore.so: the core with a test HAL whose clock the test sets).

Properties (hypothesis): the C CRC and frame encoder equal the Python ones; the MCU's boot
frame is the spec's test vector; and on a line that corrupts and drops bytes at random places
in both directions, the Python host's pings are executed by the C core exactly once, in order,
and every answer comes back (the C decoder, receive state machine, NAKs and go-back-N).
"""

from __future__ import annotations

import binascii
import ctypes
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.framing import FrameDecoder, encode_frame
from firmware_bridge.mcu.reliable import ReliableEndpoint
from firmware_bridge.mcu.rtt import RttEstimator
from tests.firmware.conftest import TESTLIB

TICKS = 1_000_000  # the test HAL's clock: 1 MHz


@pytest.fixture(scope="module")
def core(firmware_make) -> Iterator[ctypes.CDLL]:
    lib = ctypes.CDLL(str(TESTLIB))
    lib.wp_crc16.restype = ctypes.c_uint16
    lib.wp_crc16.argtypes = [ctypes.c_char_p, ctypes.c_uint16]
    lib.wp_frame_encode.restype = ctypes.c_uint16
    lib.wp_frame_encode.argtypes = [ctypes.c_char_p] + [ctypes.c_uint8] * 3 + [
        ctypes.c_char_p, ctypes.c_uint8,
    ]  # fmt: skip
    lib.wp_rx.argtypes = [ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint64]
    lib.wp_poll.argtypes = [ctypes.c_uint64]
    lib.t_init.argtypes = [ctypes.c_uint64]
    lib.t_set_clock.argtypes = [ctypes.c_uint64]
    lib.t_take_tx.restype = ctypes.c_uint32
    lib.t_take_tx.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
    yield lib


def _take(lib: ctypes.CDLL) -> bytes:
    buf = ctypes.create_string_buffer(1 << 16)
    n = lib.t_take_tx(buf, len(buf))
    return buf.raw[:n]


@given(st.binary(max_size=300))
def test_crc_equals_the_python_reference(core, data):
    assert core.wp_crc16(data, len(data)) == binascii.crc_hqx(data, 0xFFFF)


def test_crc_check_value(core):
    assert core.wp_crc16(b"123456789", 9) == 0x29B1


@given(st.integers(0, 255), st.integers(0, 255), st.sampled_from([0, 1, 2, 3]),
       st.binary(max_size=248))  # fmt: skip
def test_frame_encoder_equals_the_python_reference(core, seq, ack, flags, payload):
    out = ctypes.create_string_buffer(255)
    n = core.wp_frame_encode(out, seq, ack, flags, payload, len(payload))
    expected = encode_frame(seq if payload else 0, ack, payload, flags)
    assert out.raw[:n] == expected


def test_the_boot_frame_is_the_spec_vector(core):
    core.t_init(0)  # clock 0 at boot
    core.wp_poll(0)
    started = _take(core)
    assert started == bytes.fromhex("7e 0a 00 00 01 80 00 00 00 00 00 00 00 00 00 88 be")


def _run(core: ctypes.CDLL, n: int, faults: dict[str, dict[int, int]]) -> tuple[list[int], int]:
    """Connect a Python host endpoint to the C core over a faulty line (byte offset -> xor
    value, 0 drops the byte) and pipeline ``n`` pings; the answers in arrival order."""
    core.t_init(0)
    host = ReliableEndpoint(window=1, rtt=RttEstimator(initial_rto=0.25, min_rto=0.04,
                                                       max_rto=0.5))  # fmt: skip
    # as McuLink does (spec 3.3): while connecting, only the SYN frame with the answer to our
    # own identify starts the MCU's session (not a 'started' still on the wire)
    host.syn_filter = lambda frame: frame.payload[:3] == b"\x41\x01\x00"
    decoder = FrameDecoder()
    host.restart()
    host.queue(m.encode("identify", req=1))
    sent = {"to_mcu": 0, "to_host": 0}
    answers: list[int] = []
    connected = False

    def line(direction: str, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            pos = sent[direction]
            sent[direction] += 1
            x = faults[direction].get(pos)
            if x is None:
                out.append(b)
            elif x:
                out.append(b ^ x)
        return bytes(out)

    t = 0.0
    for _ in range(5_000):  # 5 s of simulated time at most
        t += 0.001
        clock = int(t * TICKS)
        core.t_set_clock(clock)
        data = line("to_mcu", host.take_output(t))
        if data:
            core.wp_rx(data, len(data), clock)
        core.wp_poll(clock)
        frames, bad = decoder.feed(line("to_host", _take(core)), t)
        for frame in frames:
            payload, _syn = host.on_frame(frame, t)
            pos = 0
            while payload and pos < len(payload):
                msg, pos = m.decode_one(payload, pos)
                if msg.name == "identify_response" and not connected:
                    connected = True
                    host.window = msg["rx_window"]
                    for i in range(n):
                        host.queue(m.encode("ping", req=2 + i, data=i))
                elif msg.name == "pong":
                    answers.append(msg["data"])
        if bad:
            host.request_nak()
        if connected and len(answers) >= n and host.idle:
            break
    return answers, sent["to_mcu"] + sent["to_host"]


# byte offset -> xor value (0: the byte is dropped); a run moves 1-3 KB each way
line_faults = st.dictionaries(st.integers(0, 2500), st.integers(0, 255), max_size=6)


@settings(max_examples=150)
@given(st.integers(1, 120), line_faults, line_faults)
def test_pings_through_a_faulty_line_are_answered_once_each_in_order(core, n, to_mcu, to_host):
    answers, _bytes = _run(core, n, {"to_mcu": to_mcu, "to_host": to_host})
    assert answers == list(range(n))


def test_a_clean_line_needs_no_retransmission(core):
    answers, total = _run(core, 500, {"to_mcu": {}, "to_host": {}})
    assert answers == list(range(500))
    stats = _take(core)  # nothing left unsent
    assert stats == b"" and total > 0


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_any_bytes_leave_the_core_sending_only_valid_frames(core, chunks, connect_first):
    """Garbage, truncated and corrupted frames from the host side never make the core send
    anything but well-formed frames (its output decodes with no bad byte), nor crash it."""
    core.t_init(0)
    clock = 0
    if connect_first:  # synchronised, then garbage: NAKs and retransmits, all well-formed
        syn = encode_frame(0, 0, m.encode("identify", req=7), 1)
        core.wp_rx(syn, len(syn), clock)
    decoder = FrameDecoder()
    for chunk in chunks:
        clock += 3_000
        core.t_set_clock(clock)
        core.wp_rx(chunk, len(chunk), clock)
        core.wp_poll(clock)
    core.t_set_clock(clock + 2_000_000)
    core.wp_poll(clock + 2_000_000)  # timers too
    frames, _ = decoder.feed(_take(core), 0.0)
    assert decoder.stats.bad_frames == 0 and decoder.stats.garbage_bytes == 0
    assert decoder.pending == 0 and frames  # at least the boot frame
