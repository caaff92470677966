"""What a consumer (the brain SDK, the monitor) accepts from a site: the payload schemas.

Every message is checked against the schema of its channel kind (``fleet_link/schemas``)
before anything reads it, so a ``state`` whose ``acked`` is a list is a counted rejection,
not an ``AttributeError`` in the consumer. jsonschema costs 50-170 us a message; the common
case is proven conforming first by hand-written checks that accept only what the schema
accepts (tests/fleet_link/test_hostile_inputs.py holds them to that, on generated payloads),
and only a payload they do not vouch for goes to jsonschema, whose verdict is final.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fleet_link import schemas

SCHEMA_OF_KIND = {
    "state": "state.json",
    "telemetry": "telemetry.json",
    "events": "event.json",
    "cmd_result": "command-result.json",
}
# data schemas of event kinds a consumer of this package reads (the monitor: faults)
SCHEMA_OF_EVENT = {
    "fault": "event-fault.json",
    "safety": "event-safety.json",
}

_LEVEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # envelope.json, event.json, telemetry.json
_REASONS = frozenset(("periodic", "change", "forced"))


def _event(obj: dict[str, Any]) -> bool:
    kind = obj.get("kind")
    return type(kind) is str and bool(_LEVEL.match(kind)) and type(obj.get("data")) is dict


def _scalar(v: object) -> bool:
    return v is None or type(v) in (int, float, str, bool)


def _telemetry(obj: dict[str, Any]) -> bool:
    group, values = obj.get("group"), obj.get("values")
    return (
        type(group) is str
        and bool(_LEVEL.match(group))
        and type(obj.get("reason")) is str
        and obj["reason"] in _REASONS
        and type(values) is dict
        and all(_scalar(v) for v in values.values())
    )


def _cmd_result(obj: dict[str, Any]) -> bool:
    if "request_id" not in obj or not (obj["request_id"] is None or type(obj["request_id"]) is str):
        return False
    if type(obj.get("command")) is not str or type(obj.get("ok")) is not bool:
        return False
    if "result" in obj and type(obj["result"]) is not dict:
        return False
    if "replayed" in obj and type(obj["replayed"]) is not bool:
        return False
    if "error" in obj:
        err = obj["error"]
        if type(err) is not dict:
            return False
        code, message = err.get("code"), err.get("message")
        if type(code) is not str or not code or type(message) is not str:
            return False
        if "path" in err and type(err["path"]) is not str:
            return False
    return True


def _envelope(obj: dict[str, Any]) -> bool:
    node, session, seq = obj.get("node"), obj.get("session"), obj.get("seq")
    return (
        type(node) is str
        and bool(_LEVEL.match(node))
        and type(session) is int
        and session >= 0
        and type(seq) is int
        and seq >= 0
        and type(obj.get("ts")) is str
    )


_FAST: dict[str, Callable[[dict[str, Any]], bool]] = {
    "events": _event,
    "telemetry": _telemetry,
    "cmd_result": _cmd_result,
}


def vouched(kind: str, obj: dict[str, Any]) -> bool:
    """True only when the hand-written checks prove ``obj`` conforms to its kind's schema."""
    fast = _FAST.get(kind)
    return fast is not None and _envelope(obj) and fast(obj)


def problems(kind: str, obj: Any) -> list[str]:
    """What is wrong with a whole message (envelope and body) of a channel kind; [] if it
    conforms. An unknown kind is a problem too."""
    name = SCHEMA_OF_KIND.get(kind)
    if name is None:
        return [f"(top level): no schema for channel kind {kind!r}"]
    if isinstance(obj, dict) and vouched(kind, obj):
        return []
    return schemas.validate(name, obj)


def event_data_problems(event_kind: str, data: Any) -> list[str]:
    """Problems of an event's ``data`` against its kind's schema ([] for kinds without one)."""
    name = SCHEMA_OF_EVENT.get(event_kind)
    return schemas.validate(name, data) if name else []
