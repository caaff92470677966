"""Topic namespace and envelope: property tests of the builders and parsers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_link import topics
from fleet_link.envelope import EnvelopeError, decode, encode, parse_stamp, utc_stamp

level = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z")
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(level, level, st.sampled_from(["telemetry", "events", "cmd", "cmd_result"]), level)
def test_topic_round_trip(site: str, node: str, kind: str, name: str):
    chan = topics.channel(kind, name)
    parsed = topics.parse(topics.topic(site, node, chan))
    assert (parsed.site, parsed.node, parsed.channel, parsed.kind, parsed.name) == (
        site,
        node,
        chan,
        kind,
        name,
    )


def test_state_topic():
    assert topics.topic("dc-1", "cell-07", "state") == "wolfpack/v1/dc-1/cell-07/state"
    assert topics.parse("wolfpack/v1/dc-1/cell-07/state").kind == "state"


@pytest.mark.parametrize(
    "bad",
    [
        "wolfpack/v2/s/n/state",
        "wolfpack/v1/s/n",
        "wolfpack/v1/S/n/state",
        "wolfpack/v1/s/n/state/x",
        "wolfpack/v1/s/n/events",
        "wolfpack/v1/s/n/events/a/b",
        "wolfpack/v1/s/n/bogus/x",
        "wolfpack/v1/s/+/events/x",
    ],
)
def test_bad_topics_are_refused_with_a_reason(bad: str):
    with pytest.raises(topics.TopicError) as err:
        topics.parse(bad)
    assert str(err.value)


@given(st.text(max_size=60))
def test_parse_never_fails_otherwise(text: str):
    try:
        topics.parse(text)
    except topics.TopicError:
        pass


@given(
    level,
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.dictionaries(st.sampled_from(["kind", "data", "x", "values"]), json_value),
)
def test_envelope_round_trip(node: str, session: int, seq: int, body: dict):
    env = decode(encode(node, session, seq, body))
    assert (env.node, env.session, env.seq, env.body) == (node, session, seq, body)
    assert abs(parse_stamp(env.ts) - parse_stamp(utc_stamp())) < 60


@given(st.binary(max_size=200))
def test_decode_refuses_garbage_with_envelope_error_only(data: bytes):
    try:
        decode(data)
    except EnvelopeError as exc:
        assert str(exc)


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        ({"session": 1, "seq": 1, "ts": "2026-01-01T00:00:00.000Z"}, "'node'"),
        ({"node": "a", "session": -1, "seq": 1, "ts": "2026-01-01T00:00:00.000Z"}, "'session'"),
        ({"node": "a", "session": 1, "seq": True, "ts": "2026-01-01T00:00:00.000Z"}, "'seq'"),
        ({"node": "a", "session": 1, "seq": 1, "ts": "yesterday"}, "'ts'"),
    ],
)
def test_decode_says_which_field_is_wrong(obj: dict, words: str):
    with pytest.raises(EnvelopeError, match=words):
        decode(json.dumps(obj).encode())


def test_body_cannot_shadow_envelope_keys():
    with pytest.raises(EnvelopeError, match="seq"):
        encode("a", 1, 1, {"seq": 5})
