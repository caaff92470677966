"""The envelope every published message carries, so a consumer can find gaps and duplicates.

``{"node", "session", "seq", "ts", ...body}``: the node id, the session number of the node
when the message was created, a per-channel sequence number that never goes back (it is
persisted across restarts), and a UTC timestamp in RFC 3339 with milliseconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ENVELOPE_KEYS = ("node", "session", "seq", "ts")


class EnvelopeError(ValueError):
    """A payload that is not a valid envelope; the message says which field and why."""


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


def decode(payload: bytes) -> Envelope:
    """Parse and check an envelope; raise EnvelopeError saying what is wrong."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(obj).__name__}")
    node = obj.get("node")
    if not isinstance(node, str) or not node:
        raise EnvelopeError("'node' must be a non-empty string")
    for key in ("session", "seq"):
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise EnvelopeError(f"{key!r} must be a non-negative integer, got {value!r}")
    ts = obj.get("ts")
    if not isinstance(ts, str):
        raise EnvelopeError("'ts' must be an RFC 3339 UTC timestamp string")
    try:
        parse_stamp(ts)
    except ValueError:
        raise EnvelopeError(f"'ts' is not an RFC 3339 timestamp: {ts!r}") from None
    body = {k: v for k, v in obj.items() if k not in ENVELOPE_KEYS}
    return Envelope(node, obj["session"], obj["seq"], ts, body)
