"""Inbound commands: a registry of handlers, and the checks every command passes first.

A command is refused with an error result (never an exception that reaches the node) when it
is too large, not JSON, not a command object, unknown, against its argument schema, or outside
a configured limit. Later layers add their commands with ``register`` (the cell controller:
set belt speed, reset safety, reload config)::

    registry.register("set_belt_speed", set_speed,
                      args_schema={"type": "object", "required": ["speed_mps"],
                                   "properties": {"speed_mps": {"type": "number"}}})
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from fleet_link import schemas
from fleet_link.config import LimitConfig
from fleet_link.topics import check_level

log = logging.getLogger("fleet_link.commands")

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]
_OPEN_OBJECT = {"type": "object"}


class CommandError(Exception):
    """Raise from a handler to answer with a specific error code (e.g. 'out_of_range')."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


@dataclass(frozen=True)
class _Spec:
    name: str
    handler: Handler
    validator: Draft202012Validator
    description: str


@dataclass(frozen=True)
class Outcome:
    """What a command produced: the request id (None if unreadable) and the result body."""

    request_id: str | None
    body: dict[str, Any]


def error_body(name: str, code: str, message: str, path: str = "") -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if path:
        err["path"] = path
    return {"command": name, "ok": False, "error": err}


class CommandRegistry:
    def __init__(
        self,
        limits: dict[str, dict[str, LimitConfig]] | None = None,
        max_payload_bytes: int = 65536,
    ) -> None:
        self._specs: dict[str, _Spec] = {}
        self.limits = dict(limits or {})
        self.max_payload_bytes = max_payload_bytes

    def register(
        self,
        name: str,
        handler: Handler,
        args_schema: dict[str, Any] | None = None,
        description: str = "",
    ) -> None:
        """Add a command; ``args_schema`` is a JSON Schema of its ``args`` object."""
        check_level(name, "command name")
        if name in self._specs:
            raise ValueError(f"command {name!r} is already registered")
        validator = schemas.validator_for(args_schema or _OPEN_OBJECT)
        self._specs[name] = _Spec(name, handler, validator, description)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def parse_request_id(self, payload: bytes) -> str | None:
        """The request id of a payload, if one can be read (for idempotency lookups)."""
        try:
            obj = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        rid = obj.get("request_id") if isinstance(obj, dict) else None
        return rid if isinstance(rid, str) and 0 < len(rid) <= 128 else None

    def execute(self, name: str, payload: bytes) -> Outcome:
        """Check and run one command; every failure becomes an error body."""
        if len(payload) > self.max_payload_bytes:
            return Outcome(
                None,
                error_body(
                    name,
                    "too_large",
                    f"command is {len(payload)} bytes; at most {self.max_payload_bytes} accepted",
                ),
            )
        try:
            obj = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Outcome(None, error_body(name, "malformed_json", f"not valid JSON: {exc}"))
        rid = self.parse_request_id(payload)
        found = schemas.validate("command.json", obj)
        if found:
            return Outcome(rid, error_body(name, "invalid_schema", "; ".join(found)))
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(self.names()) or "none"
            return Outcome(
                rid, error_body(name, "unknown_command", f"no command {name!r}; known: {known}")
            )
        args = obj.get("args", {})
        found = schemas.problems(spec.validator, args)
        if found:
            return Outcome(
                rid, error_body(name, "invalid_schema", "; ".join(f"args.{p}" for p in found))
            )
        for arg, limit in self.limits.get(name, {}).items():
            refusal = _outside(arg, args.get(arg), limit)
            if refusal:
                return Outcome(rid, error_body(name, "out_of_range", refusal, f"args.{arg}"))
        try:
            result = spec.handler(args) or {}
        except CommandError as exc:
            return Outcome(rid, error_body(name, exc.code, exc.message, exc.path))
        except Exception as exc:
            log.exception("command %s failed", name)
            return Outcome(rid, error_body(name, "handler_failed", f"{type(exc).__name__}: {exc}"))
        return Outcome(rid, {"command": name, "ok": True, "result": result})


def _outside(arg: str, value: Any, limit: LimitConfig) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if limit.min is not None and value < limit.min:
        return f"{arg}={value} is below the configured minimum {limit.min}"
    if limit.max is not None and value > limit.max:
        return f"{arg}={value} is above the configured maximum {limit.max}"
    return ""
