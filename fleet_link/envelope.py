"""The envelope every published message carries, so a consumer can find gaps and duplicates.

``{"node", "session", "seq", "ts", ...body}``: the node id, the session number of the node
when the message was created, a per-channel sequence number that never goes back (it is
persisted across restarts), and a UTC timestamp in RFC 3339 with milliseconds.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleet_link import safe_json

ENVELOPE_KEYS = ("node", "session", "seq", "ts")


_BAD_ENVELOPE = "invalid_envelope"


class EnvelopeError(ValueError):
    """A payload that is not a valid envelope; the message says which field and why, and
    ``reason`` is a code to count by (those of :mod:`fleet_link.safe_json`, or
    'invalid_envelope')."""

    def __init__(self, message: str, reason: str = _BAD_ENVELOPE) -> None:
        super().__init__(message)
        self.reason = reason


_second_cache: tuple[int, str] = (-1, "")


def utc_stamp(epoch: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-23T11:22:26.123Z."""
    global _second_cache
    epoch = time.time() if epoch is None else epoch
    whole = int(epoch // 1)
    cached_second, prefix = _second_cache
    if whole != cached_second:  # formatting the date is most of the cost: once a second
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))
        _second_cache = (whole, prefix)
    return f"{prefix}{int((epoch - whole) * 1000):03d}Z"


def parse_stamp(text: str) -> float:
    """Epoch seconds of an RFC 3339 UTC stamp written by utc_stamp (or any ISO 8601 with Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Envelope:
    node: str
    session: int
    seq: int
    ts: str
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "session": self.session,
            "seq": self.seq,
            "ts": self.ts,
            **self.body,
        }


_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once: json.dumps
# with arguments builds a new encoder per call


def encode(node: str, session: int, seq: int, body: dict[str, Any], ts: str | None = None) -> bytes:
    """Compact JSON bytes of the envelope; body keys must not shadow envelope keys.

    The same bytes as ``json.dumps({"node", "session", "seq", "ts", **body})``, written as the
    envelope's head followed by the body's members (the body is the larger part)."""
    if type(body) is not dict:
        body = dict(body)
    if "node" in body or "session" in body or "seq" in body or "ts" in body:
        clash = [k for k in ENVELOPE_KEYS if k in body]
        raise EnvelopeError(f"body may not carry envelope keys {clash}")
    head = _head(node, session, seq, ts or utc_stamp())
    rest = _JSON.encode(body)  # "{...}": raises TypeError/ValueError like json.dumps
    if len(rest) == 2:
        return (head + "}").encode()
    return (head + "," + rest[1:]).encode()


def _head(node: str, session: int, seq: int, ts: str) -> str:
    if type(session) is not int or type(seq) is not int or type(node) is not str:
        # anything unusual (a bool, a float, None): exactly as json.dumps writes it
        return _JSON.encode({"node": node, "session": session, "seq": seq, "ts": ts})[:-1]
    return f'{{"node":{_json_str(node)},"session":{session},"seq":{seq},"ts":{_json_str(ts)}'


_json_str = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str


MAX_INT64 = 2**63 - 1  # session and seq are SQLite integers on the node
_NODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def decode(payload: bytes, limits: safe_json.Limits = safe_json.DEFAULT) -> Envelope:
    """Parse and check an envelope within ``limits``; raise EnvelopeError saying what is wrong
    (its ``reason`` a code to count by). Nothing else escapes, whatever the bytes."""
    try:
        obj = safe_json.loads_object(payload, limits)
    except safe_json.DecodeError as exc:
        raise EnvelopeError(exc.message, exc.reason) from None
    node = obj.get("node")
    if not isinstance(node, str) or not _NODE.match(node):
        raise EnvelopeError("'node' must be a node id (a topic level)", _BAD_ENVELOPE)
    for key in ("session", "seq"):
        value = obj.get(key)
        if type(value) is not int or not 0 <= value <= MAX_INT64:
            raise EnvelopeError(
                f"{key!r} must be an integer in 0..2^63-1, got {_short(value)}", _BAD_ENVELOPE
            )
    ts = obj.get("ts")
    if not isinstance(ts, str) or len(ts) > 64:
        raise EnvelopeError("'ts' must be an RFC 3339 UTC timestamp string", _BAD_ENVELOPE)
    try:
        parse_stamp(ts)
    except ValueError:
        raise EnvelopeError(f"'ts' is not an RFC 3339 timestamp: {ts!r}", _BAD_ENVELOPE) from None
    body = {k: v for k, v in obj.items() if k not in ENVELOPE_KEYS}
    return Envelope(node, obj["session"], obj["seq"], ts, body)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
