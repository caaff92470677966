"""docs/asyncapi.yaml as a test reads it: which channel a topic is, and that channel's payload
schema as a jsonschema validator over the shipped files (fleet_link/schemas/).

Used by the contract tests: payloads built by the real code (test_contract_payloads.py) and
every message of a simulated run (tests/system/test_contract_capture.py) are checked against
what the document says for their topic, not against a file the test picks.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing._core import Resolver
from ruamel.yaml import YAML

from fleet_link import schemas

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "asyncapi.yaml"
SCHEMA_PREFIX = "../fleet_link/schemas/"
BASE = "https://wolfpack.example/schemas/mqtt/"
_LEVEL = "[a-z0-9][a-z0-9_-]{0,63}"
_PARAM = re.compile(r"\{([A-Za-z0-9_]+)\}")
# Sparkplug B channels: protobuf payloads and Sparkplug's own QoS, checked by an independent
# Sparkplug host in tests/system/test_sparkplug_host.py (docs/sparkplug.md), not here.
SPARKPLUG = "spBv1.0/"


@cache
def document() -> dict[str, Any]:
    return YAML(typ="safe").load(DOC.read_text(encoding="utf-8"))


def file_refs(node: object) -> set[str]:
    """Schema file names a part of the document (or a schema) refers to with ``$ref``."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.add(ref.removeprefix(SCHEMA_PREFIX))
        for value in node.values():
            found |= file_refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= file_refs(value)
    return found


@dataclass(frozen=True)
class Channel:
    """One channel of the document: its address as a pattern, and its message's payload."""

    id: str
    address: str
    pattern: re.Pattern[str]
    free: int  # parameters that match any level, besides site and node
    message: str
    payload: dict[str, Any]  # with file $refs made relative to the shipped schemas' base

    def validator(self) -> Draft202012Validator:
        return _validator(self.id, json.dumps(self.payload, sort_keys=True))

    def problems(self, obj: Any) -> list[str]:
        return schemas.problems(self.validator(), obj)


@cache
def _validator(channel_id: str, payload: str) -> Draft202012Validator:
    schema = {"$id": f"{BASE}asyncapi/{channel_id}.json", **json.loads(payload)}
    schema = _rebase(schema)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=schemas.registry())


def _rebase(node: Any) -> Any:
    """File refs (``../fleet_link/schemas/x.json``) as the shipped schemas' ``$id``s."""
    if isinstance(node, dict):
        out = {k: _rebase(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX):
            out["$ref"] = BASE + ref.removeprefix(SCHEMA_PREFIX)
        return out
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _local(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def channels(values: dict[str, str] | None = None) -> list[Channel]:
    """Every channel, the most specific first. A parameter with an ``enum`` matches those
    values, one with a ``default`` (a name the config can change) the value in ``values`` or
    its default, any other one any topic level."""
    doc = document()
    values = values or {}
    out = []
    for cid, chan in doc["channels"].items():
        address = chan["address"]
        if address.startswith(SPARKPLUG):
            continue
        params = {k: _local(doc, v) for k, v in (chan.get("parameters") or {}).items()}
        free = 0
        regex = ""
        pos = 0
        for m in _PARAM.finditer(address):
            regex += re.escape(address[pos : m.start()])
            pos = m.end()
            name = m.group(1)
            spec = params.get(name, {})
            if name in values or "default" in spec:
                regex += re.escape(values.get(name, spec.get("default", "")))
            elif "enum" in spec:
                regex += "(?:" + "|".join(re.escape(str(v)) for v in spec["enum"]) + ")"
            else:
                regex += _LEVEL
                free += name not in ("site", "node")
        regex += re.escape(address[pos:])
        (mid, msg), *more = chan["messages"].items()
        assert not more, f"{cid}: one message per channel expected"
        msg = _local(doc, msg)
        out.append(
            Channel(
                cid, address, re.compile(regex + r"\Z"), free, mid, copy.deepcopy(msg["payload"])
            )
        )
    return sorted(out, key=lambda c: c.free)


@cache
def sparkplug_topics() -> re.Pattern[str]:
    """The Sparkplug B channels' addresses (each parameter one topic level) as one pattern."""
    alternatives = []
    for chan in document()["channels"].values():
        address = chan["address"]
        if address.startswith(SPARKPLUG):
            parts = _PARAM.split(address)  # text, name, text, name, ..., text
            alternatives.append(
                "".join(re.escape(p) if i % 2 == 0 else "[^/#+]+" for i, p in enumerate(parts))
            )
    return re.compile("(?:" + "|".join(alternatives) + r")\Z")


def channel_of(topic: str, chans: list[Channel]) -> Channel | None:
    for chan in chans:
        if chan.pattern.match(topic):
            return chan
    return None


# ---- fields sent that no schema describes ---------------------------------------------------
_Part = tuple[dict[str, Any], Resolver]


def _parts(schema: Any, resolver: Resolver) -> list[_Part]:
    """The schema and the members of its allOf / anyOf / oneOf, references followed."""
    if not isinstance(schema, dict):
        return []
    if isinstance(schema.get("$ref"), str):
        resolved = resolver.lookup(schema["$ref"])
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _parts(resolved.contents, resolved.resolver) + _parts(rest, resolver)
    out: list[_Part] = [(schema, resolver)]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            out += _parts(sub, resolver)
    return out


def undocumented(schema: dict[str, Any], value: Any, where: str = "") -> list[str]:
    """Paths of object members in ``value`` that ``schema`` does not describe (a member of an
    object whose schema lists ``properties`` or ``patternProperties`` but none for that one).
    Objects without them (free maps) are followed through ``additionalProperties`` when that
    is a schema."""
    resolver = schemas.registry().resolver(base_uri=BASE)
    return _undocumented(_parts(_rebase(schema), resolver), value, where)


def _undocumented(parts: list[_Part], value: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        described = {k for s, _r in parts for k in s.get("properties", {})}
        patterns = [(re.compile(k), v, r) for s, r in parts
                    for k, v in s.get("patternProperties", {}).items()]  # fmt: skip
        maps = [(s["additionalProperties"], r) for s, r in parts
                if isinstance(s.get("additionalProperties"), dict)]  # fmt: skip
        if not described and not patterns and not maps:
            return []  # a free-form object
        for key, member in value.items():
            path = f"{where}.{key}" if where else key
            matching = [p for rx, s, r in patterns if rx.search(key) for p in _parts(s, r)]
            if key in described or matching:
                subs = [
                    p for s, r in parts if key in s.get("properties", {})
                    for p in _parts(s["properties"][key], r)
                ]  # fmt: skip
                found += _undocumented(subs + matching, member, path)
            elif maps:
                found += _undocumented([p for s, r in maps for p in _parts(s, r)], member, path)
            else:
                found.append(path)
    elif isinstance(value, list):
        items = [p for s, r in parts if isinstance(s.get("items"), dict)
                 for p in _parts(s["items"], r)]  # fmt: skip
        for i, member in enumerate(value):
            found += _undocumented(items, member, f"{where}[{i}]")
    return found


def check(topic: str, payload: bytes, chans: list[Channel]) -> list[str]:
    """Everything wrong with one message: no channel for its topic, not JSON, against its
    channel's schema, or members no schema describes (a placeholder marked ``truncated`` is
    checked against the schema only: its data is partial by design)."""
    chan = channel_of(topic, chans)
    if chan is None and topic.startswith(SPARKPLUG) and sparkplug_topics().match(topic):
        return []  # documented; its protobuf payload is the Sparkplug host test's to check
    if chan is None:
        return [f"{topic}: no channel of docs/asyncapi.yaml has this topic"]
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        return [f"{topic}: not JSON: {exc}"]
    if isinstance(obj, dict) and obj.get("truncated") is True:
        return [f"{topic} (placeholder): {p}" for p in schemas.validate("envelope.json", obj)]
    found = [f"{topic} ({chan.id}): {p}" for p in chan.problems(obj)]
    found += [
        f"{topic} ({chan.id}): {p} is sent but no schema describes it"
        for p in undocumented(chan.payload, obj)
    ]
    return found
