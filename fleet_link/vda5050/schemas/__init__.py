"""The official VDA 5050 2.1.0 JSON schemas (MIT, see LICENSE.md), loaded once, and validators.

This package carries an unchanged copy (``*.schema.json``), so a vehicle validates what it
receives with nothing outside the installed package; a test checks the copy against the one
beside the repository so an edited schema cannot slip in.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

TOPICS = ("order", "instantActions", "state", "visualization", "connection", "factsheet")


@cache
def schema(topic: str) -> dict[str, Any]:
    """The official schema of ``topic`` (one of :data:`TOPICS`)."""
    if topic not in TOPICS:
        raise ValueError(f"no VDA 5050 schema for topic {topic!r} (known: {', '.join(TOPICS)})")
    text = resources.files(__name__).joinpath(f"{topic}.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


@cache
def validator(topic: str) -> Draft202012Validator:
    """A validator of the official schema (no format checks: the standard's own examples use
    timestamps with two fraction digits, which every RFC 3339 checker accepts anyway)."""
    return Draft202012Validator(schema(topic))


def tightened(topic: str) -> dict[str, Any]:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties, so a misspelt optional field fails (used by the tests on what we publish)."""
    doc = copy.deepcopy(schema(topic))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return doc


def first_error(topic: str, message: Any) -> str | None:
    """'where: why' of the first schema violation of ``message``, or None if it is valid."""
    best = None
    for err in validator(topic).iter_errors(message):
        if best is None or len(err.absolute_path) > len(best.absolute_path):
            best = err
    if best is None:
        return None
    where = "/".join(str(p) for p in best.absolute_path) or "(top level)"
    return f"{where}: {best.message[:200]}"
