"""Property tests of the line-device framing: round trip, garbage, oversize, accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.linedev.framing import (
    FRAMINGS,
    Frame,
    FrameError,
    LineDecoder,
    encode,
    forbidden_bytes,
)

MAX = 64


def _payloads(framing: str, max_len: int = MAX) -> st.SearchStrategy[bytes]:
    bad = forbidden_bytes(framing)  # type: ignore[arg-type]
    return st.binary(max_size=max_len).map(lambda b: bytes(c for c in b if c not in bad))


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


def _decode(dec: LineDecoder, chunks: list[bytes], flush: bool = True) -> list:
    out = []
    for c in chunks:
        out += dec.feed(c)
    if flush:
        out += dec.flush()
    return out


@pytest.mark.parametrize("framing", FRAMINGS)
@given(data=st.data(), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_lines_round_trip_through_any_chunking(framing, data, cuts):
    lines = data.draw(st.lists(_payloads(framing), max_size=20))
    stream = b"".join(encode(p, framing) for p in lines)
    out = _decode(LineDecoder(framing, MAX), _chunk(stream, cuts))
    assert all(isinstance(o, Frame) for o in out), out
    assert [o.payload for o in out] == lines


@pytest.mark.parametrize("framing", FRAMINGS)
@given(garbage=st.binary(max_size=600), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_garbage_never_crashes_and_every_byte_is_accounted_for(framing, garbage, cuts):
    dec = LineDecoder(framing, 16)
    out = _decode(dec, _chunk(garbage, cuts))
    # outputs tile the stream in order: nothing skipped, nothing counted twice
    covered = sum(o.size for o in out) + dec.ignored
    assert covered == len(garbage) and dec.pending == 0
    pos = 0
    for o in out:
        assert o.offset >= pos
        pos = o.offset + o.size
    for o in out:
        if isinstance(o, Frame):
            assert len(o.payload) <= 16
            assert not any(b in o.payload for b in forbidden_bytes(framing))
        else:
            assert len(o.raw) <= 16 and o.detail


@pytest.mark.parametrize("framing", FRAMINGS)
@given(
    before=st.data(),
    long_len=st.integers(min_value=MAX + 1, max_value=5 * MAX),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_an_oversize_line_is_one_error_and_its_neighbours_survive(framing, before, long_len, cuts):
    filler = b"A" * long_len
    a = before.draw(_payloads(framing))
    b = before.draw(_payloads(framing))
    stream = encode(a, framing) + encode(filler, framing) + encode(b, framing)
    out = _decode(LineDecoder(framing, MAX), _chunk(stream, cuts))
    assert len(out) == 3
    assert out[0] == Frame(a, 0, len(encode(a, framing)))
    assert isinstance(out[1], FrameError) and out[1].kind == "oversize"
    assert out[1].raw == filler[:MAX] and str(long_len) in out[1].detail
    assert isinstance(out[2], Frame) and out[2].payload == b


@given(n=st.integers(min_value=0, max_value=MAX))
def test_crlf_accepts_exactly_max_len_before_the_cr(n):
    out = LineDecoder("crlf", MAX).feed(b"x" * n + b"\r\n")
    assert out == [Frame(b"x" * n, 0, n + 2)]


def test_crlf_also_reads_bare_lf_lines():
    assert [f.payload for f in LineDecoder("crlf").feed(b"A1\nB2\r\n")] == [b"A1", b"B2"]


def test_stx_inside_a_frame_reports_the_cut_part_and_keeps_the_next():
    out = LineDecoder("stx-etx").feed(b"\x02ABC\x02DEF\x03")
    assert isinstance(out[0], FrameError) and out[0].kind == "cut" and out[0].raw == b"ABC"
    assert out[1] == Frame(b"DEF", 4, 5)


def test_whitespace_between_frames_is_ignored_other_bytes_are_reported():
    dec = LineDecoder("stx-etx")
    out = dec.feed(b"\x02A\x03\r\n\x02B\x03junk\x02C\x03")
    assert [o.payload for o in out if isinstance(o, Frame)] == [b"A", b"B", b"C"]
    errors = [o for o in out if isinstance(o, FrameError)]
    assert len(errors) == 1 and errors[0].kind == "outside-frame" and errors[0].raw == b"junk"
    assert dec.ignored == 2


def test_flush_reports_a_partial_line_as_incomplete_and_starts_afresh():
    dec = LineDecoder("crlf")
    assert dec.feed(b"PART") == []
    (err,) = dec.flush()
    assert err.kind == "incomplete" and err.raw == b"PART"
    assert dec.feed(b"NEW\r\n") == [Frame(b"NEW", 4, 5)]


def test_encode_refuses_a_payload_that_holds_a_delimiter():
    with pytest.raises(ValueError, match="0x0a"):
        encode(b"a\nb", "crlf")
    with pytest.raises(ValueError, match="unknown framing"):
        LineDecoder("etx")  # type: ignore[arg-type]
