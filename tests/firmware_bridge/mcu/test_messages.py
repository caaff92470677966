"""The message codec: every message round-trips; any payload decodes or fails clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.mcu import messages as m

_RANGES = {
    "B": st.integers(0, 0xFF),
    "H": st.integers(0, 0xFFFF),
    "I": st.integers(0, 0xFFFFFFFF),
    "i": st.integers(-(2**31), 2**31 - 1),
    "Q": st.integers(0, 2**64 - 1),
    "q": st.integers(-(2**63), 2**63 - 1),
    "s": st.text(max_size=60),
}


def _message(spec: m.MessageSpec) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({name: _RANGES[kind] for name, kind in spec.fields})


@st.composite
def messages(draw):
    spec = draw(st.sampled_from(m.SPECS))
    return spec.name, draw(_message(spec))


@given(st.lists(messages(), min_size=1, max_size=10))
def test_any_messages_round_trip_through_a_payload(msgs):
    payload = b"".join(m.encode(name, **fields) for name, fields in msgs)
    decoded = m.decode_payload(payload)
    assert [(d.name, d.fields) for d in decoded] == msgs


@given(st.binary(max_size=300))
def test_arbitrary_payloads_decode_or_raise_message_error(payload):
    try:
        decoded = m.decode_payload(payload)
    except m.MessageError as exc:
        assert str(exc).startswith("byte ")
    else:
        assert b"".join(m.encode(d.name, **d.fields) for d in decoded) == payload


def test_encode_errors_name_the_field():
    with pytest.raises(m.MessageError, match="ping: missing field 'data'"):
        m.encode("ping", req=1)
    with pytest.raises(m.MessageError, match=r"unknown field"):
        m.encode("ping", req=1, data=2, bogus=3)
    with pytest.raises(m.MessageError, match="ping"):
        m.encode("ping", req=1, data=-1)
    with pytest.raises(m.MessageError, match="unknown message 'nope'"):
        m.encode("nope")


def test_decode_error_names_the_offset():
    good = m.encode("ping", req=1, data=2)
    with pytest.raises(m.MessageError, match="byte 7: unknown message id 0xff"):
        m.decode_payload(good + b"\xff")
    with pytest.raises(m.MessageError, match=r"byte 7: ping needs 7 bytes, 2 left"):
        m.decode_payload(good + good[:2])


def test_ids_are_unique_and_in_their_ranges():
    assert len({s.id for s in m.SPECS}) == len(m.SPECS)
    assert len({s.name for s in m.SPECS}) == len(m.SPECS)
    assert all(0 < s.id < 0xC0 for s in m.SPECS)
