"""Bounded JSON decoding for everything that arrives over MQTT, and counted rejections.

Any client with a credential of the site can publish on it, and a retained message stays for
every consumer that starts later. Plain ``json.loads`` is not safe for that: a 5000-digit
integer raises ``ValueError`` (CPython's int-digits limit), deep nesting raises
``RecursionError``, ``1e999`` becomes ``inf``, bytes are accepted as UTF-16 or UTF-32. Here
every limit is checked before the work it bounds (size before decoding, depth before parsing,
digits before ``int()``) and every failure is one :class:`DecodeError` with a reason code, so
callers can count by reason and answer or skip, never die.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 40  # a uint64 has 20; nothing the fleet sends needs more
MAX_FLOAT_CHARS = 64

# reason codes (also the counters' keys)
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
MALFORMED = "malformed_json"
TOO_DEEP = "too_deep"
HUGE_NUMBER = "huge_number"
NOT_OBJECT = "not_object"
INVALID_SCHEMA = "invalid_schema"


class DecodeError(ValueError):
    """A payload refused by the bounded decoder; ``reason`` is one of the codes above."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one decoder accepts; the defaults suit every message a node publishes."""

    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_int_digits: int = MAX_INT_DIGITS


DEFAULT = Limits()


class _Refused(Exception):
    """Raised inside the json hooks; turned into a DecodeError (json wraps nothing)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_ESCAPE = re.compile(r"\\[\s\S]")  # a backslash and the character it escapes
_STRING = re.compile(r'"[^"]*+"')  # with escapes gone, a string has no quote inside
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_DELTA = tuple(1 if c in b"[{" else -1 if c in b"]}" else 0 for c in range(256))


def nesting_depth(text: str, at_most: int = -1) -> int:
    """Deepest bracket nesting of JSON text outside strings: linear (no regex backtracking,
    no recursion), loops only in C. A text with no more than ``at_most`` opening brackets
    cannot nest deeper: their count is returned at once (an upper bound)."""
    opening = text.count("[") + text.count("{")
    if opening <= at_most or opening == 0:
        return opening
    bare = _STRING.sub("", _ESCAPE.sub("", text))
    brackets = _NOT_BRACKET.sub("", bare).encode("ascii")
    return max(accumulate(map(_DELTA.__getitem__, brackets), initial=0))


def _int_hook(limit: int) -> Any:
    def parse_int(s: str) -> int:
        digits = len(s) - (s[0] == "-")
        if digits > limit:
            raise _Refused(HUGE_NUMBER, f"an integer of {digits} digits (at most {limit})")
        return int(s)

    return parse_int


def _parse_float(s: str) -> float:
    if len(s) > MAX_FLOAT_CHARS:
        raise _Refused(HUGE_NUMBER, f"a number of {len(s)} characters (at most {MAX_FLOAT_CHARS})")
    value = float(s)
    if not math.isfinite(value):
        raise _Refused(HUGE_NUMBER, f"{s[:20]} is out of the range of a double")
    return value


def _parse_constant(s: str) -> float:
    raise _Refused(MALFORMED, f"{s} is not JSON")


_DECODERS: dict[int, json.JSONDecoder] = {}


def _decoder(max_int_digits: int) -> json.JSONDecoder:
    dec = _DECODERS.get(max_int_digits)
    if dec is None:
        dec = json.JSONDecoder(
            parse_int=_int_hook(max_int_digits),
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
        _DECODERS[max_int_digits] = dec
    return dec


def loads(payload: bytes | bytearray | memoryview | str, limits: Limits = DEFAULT) -> Any:
    """Decode JSON within ``limits``; raise DecodeError (never anything else)."""
    size = len(payload)
    if size > limits.max_bytes:
        raise DecodeError(TOO_LARGE, f"{size} bytes (at most {limits.max_bytes})")
    if isinstance(payload, str):
        text = payload
    else:
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(NOT_UTF8, f"not UTF-8: byte {exc.start} is invalid") from None
    depth = nesting_depth(text, limits.max_depth)
    if depth > limits.max_depth:
        raise DecodeError(TOO_DEEP, f"nested {depth} deep (at most {limits.max_depth})")
    try:
        return _decoder(limits.max_int_digits).decode(text)
    except _Refused as exc:
        raise DecodeError(exc.reason, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise DecodeError(MALFORMED, f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # belt and braces
        raise DecodeError(MALFORMED, f"not decodable: {type(exc).__name__}") from None


def loads_object(
    payload: bytes | bytearray | memoryview | str, limits: Limits = DEFAULT
) -> dict[str, Any]:
    """As :func:`loads`, and the top level must be a JSON object."""
    obj = loads(payload, limits)
    if not isinstance(obj, dict):
        raise DecodeError(NOT_OBJECT, f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _json_type(obj: object) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    return "an array"


_RID = re.compile(rb'"request_id"\s*:\s*"([^"\\\x00-\x1f]{1,128})"')


def recover_request_id(payload: bytes, scan: int = 1024 * 1024) -> str | None:
    """Best effort: the request id of a payload the decoder refused, so the refusal can still
    be answered to whoever waits on it (first ``scan`` bytes, plain ids only)."""
    found = _RID.search(payload, 0, scan)
    if found is None:
        return None
    try:
        return found.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None


class Rejections:
    """Rejected messages counted per reason; logged at the first and then every ``log_every``
    of a reason, so a flood of garbage cannot flood the log too."""

    def __init__(self, logger: logging.Logger, what: str, log_every: int = 1000) -> None:
        self._log = logger
        self._what = what
        self._every = max(1, log_every)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def count(self, reason: str, where: str, message: str) -> None:
        with self._lock:
            self.counts[reason] += 1
            n = self.counts[reason]
        if n == 1 or n % self._every == 0:
            self._log.warning(
                "%s rejected (%s, %d so far): %s: %s",
                self._what,
                reason,
                n,
                where[:200],
                message[:300],
            )

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def describe(counts: Mapping[str, int]) -> str:
    """'3 (too_deep 2, huge_number 1)' for a line of the monitor."""
    total = sum(counts.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{total} ({parts})" if parts else "0"
