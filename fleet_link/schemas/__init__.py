"""JSON Schemas of every payload (the single source of truth; docs/asyncapi.yaml points here).

``validate("command.json", obj)`` returns the problems found, each with the JSON path.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def registry() -> Registry:
    """Every shipped schema by its ``$id`` (to resolve a ``$ref`` the way the validators do)."""
    return _registry()


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), registry=_registry())


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for an inline schema (a command's args), able to $ref the shipped ones."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def problems(v: Draft202012Validator, obj: Any) -> list[str]:
    """Readable problems, e.g. "args.speed: 'fast' is not of type 'number'"."""
    found = []
    for err in sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        found.append(f"{where}: {err.message}")
    return found


def validate(name: str, obj: Any) -> list[str]:
    return problems(validator(name), obj)
