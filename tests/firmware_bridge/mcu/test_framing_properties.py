"""Property tests of the framing: round trips, and no crash / no bad frame on any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.mcu.crc import crc16
from firmware_bridge.mcu.framing import (
    KNOWN_FLAGS,
    MAX_PAYLOAD,
    OVERHEAD,
    SYNC,
    FrameDecoder,
    encode_frame,
)

payloads = st.binary(max_size=MAX_PAYLOAD)
seqs = st.integers(0, 255)
flags = st.sampled_from([0, 1, 2, 3])
frame_args = st.tuples(seqs, seqs, payloads, flags)


def _assert_genuine(frame, stream: bytes) -> None:
    """A decoded frame must be a CRC-valid substring of what was fed."""
    raw = encode_frame(frame.seq, frame.ack, frame.payload, frame.flags)
    assert raw in stream
    assert crc16(raw[1:-2]) == int.from_bytes(raw[-2:], "big")
    assert frame.flags & ~KNOWN_FLAGS == 0


@given(frame_args)
def test_any_payload_round_trips(args):
    seq, ack, payload, fl = args
    raw = encode_frame(seq, ack, payload, fl)
    assert len(raw) == len(payload) + OVERHEAD and raw[0] == SYNC
    frames, bad = FrameDecoder().feed(raw)
    assert not bad
    assert [(f.seq, f.ack, f.payload, f.flags) for f in frames] == [(seq, ack, payload, fl)]


@given(st.lists(frame_args, max_size=8), st.lists(st.binary(max_size=40), max_size=9))
def test_frames_between_garbage_are_found_in_order(frames, garbage):
    stream = b""
    for i, args in enumerate(frames):
        junk = garbage[i] if i < len(garbage) else b""
        stream += junk.replace(bytes([SYNC]), b"") + encode_frame(*args)
    got, _ = FrameDecoder().feed(stream)
    assert [(f.seq, f.ack, f.payload, f.flags) for f in got] == [tuple(a) for a in frames]


@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
def test_arbitrary_bytes_never_crash_nor_yield_a_bad_frame(stream, cuts):
    dec = FrameDecoder()
    pos, t = 0, 0.0
    for cut in [*cuts, len(stream)]:
        chunk = stream[pos : pos + cut]
        pos += cut
        t += 0.001
        frames, _ = dec.feed(chunk, t)
        for f in frames:
            _assert_genuine(f, stream)


@given(
    st.lists(frame_args, min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=12),
    st.integers(0, 2000),
)
def test_bit_flips_and_truncation_never_yield_a_bad_frame(frames, flips, truncate):
    clean = b"".join(encode_frame(*a) for a in frames)
    buf = bytearray(clean)
    for pos, bit in flips:
        buf[pos % len(buf)] ^= 1 << bit
    stream = bytes(buf[: max(1, len(buf) - truncate % len(buf))])
    got, _ = FrameDecoder().feed(stream)
    for f in got:
        _assert_genuine(f, stream)


@given(st.lists(frame_args, max_size=6), st.lists(st.integers(1, 64), min_size=1, max_size=30))
def test_chunking_does_not_change_the_result(frames, cuts):
    stream = b"".join(encode_frame(*a) for a in frames)
    dec = FrameDecoder()
    got = []
    pos, i = 0, 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        got += dec.feed(stream[pos : pos + n], 0.0)[0]
        pos += n
        i += 1
    assert [(f.seq, f.ack, f.payload, f.flags) for f in got] == [tuple(a) for a in frames]


def test_a_stale_partial_frame_is_abandoned_so_the_next_frame_is_not_swallowed():
    dec = FrameDecoder(partial_timeout_s=0.02)
    # A corrupt tail: SYNC with a long length and nothing after it.
    frames, _ = dec.feed(bytes([SYNC, 200, 1, 2]), now=0.0)
    assert frames == [] and dec.pending == 4
    good = encode_frame(1, 2, b"hello")
    frames, bad = dec.feed(good, now=0.1)
    assert [f.payload for f in frames] == [b"hello"]
    assert bad and dec.stats.abandoned_partials == 1


def test_length_over_the_maximum_is_rejected_at_once():
    dec = FrameDecoder()
    frames, bad = dec.feed(bytes([SYNC, MAX_PAYLOAD + 1]) + encode_frame(0, 0, b"x"))
    assert [f.payload for f in frames] == [b"x"] and bad
    assert dec.stats.length_errors == 1
