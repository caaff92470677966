"""Inbound commands: a registry of handlers, and the checks every command passes first.

A command is refused with an error result (never an exception that reaches the node) when it
is too large, too deep, holds a huge number, is not JSON, not a command object, unknown,
against its argument schema, outside a configured limit, or over its rate limit. Later layers
add their commands with ``register`` (the cell controller: set belt speed, reset safety,
reload config)::

    registry.register("set_belt_speed", set_speed,
                      args_schema={"type": "object", "required": ["speed_mps"],
                                   "properties": {"speed_mps": {"type": "number"}}})

:class:`CommandInbox` admits commands on the network thread (size, rate limit per command
name) into two lanes, each served by its own thread: ``priority`` (the brain's ``route``
answers, latency critical) and ``bulk`` (everything else), so a flood of other commands never
queues in front of a route. Every command gets an answer: its result or a refusal.

Commands that arrive late or twice are never acted on by surprise: a **retained** command
(the broker stored it and hands it to the node at every subscribe) is refused ``retained``; a
command whose ``ts`` is older than ``mqtt.commands.max_age_s`` when its turn comes is refused
``stale`` (a ``start`` an offline client queued must not start a belt minutes later). Neither
refusal is remembered under the request id: sent again properly, the command runs. A
repeated request id of the same command is answered with the first result, marked
``"replayed": true`` (fleet_link/link.py keeps the results).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator

from fleet_link import safe_json, schemas
from fleet_link.config import CommandsConfig, LimitConfig, RateLimitConfig
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

    @property
    def remember(self) -> bool:
        """Kept for idempotent replays: everything but a refusal that may pass later."""
        return (
            self.request_id is not None
            and self.body.get("error", {}).get("code") not in NOT_REMEMBERED
        )


@dataclass(frozen=True)
class Prepared:
    """A command decoded and checked against ``command.json``, or already refused."""

    request_id: str | None
    command: dict[str, Any] | None
    refusal: Outcome | None


RATE_LIMITED = "rate_limited"
RETAINED = "retained"  # the broker delivered a stored (retained) command: never run
STALE = "stale"  # its ts is older than mqtt.commands.max_age_s (or as far in the future)
# refusals about the delivery, not the request: sent again properly, the command may run
NOT_REMEMBERED = frozenset((RATE_LIMITED, RETAINED, STALE))
# decoder reasons -> the error codes of command-result.json
_DECODE_CODE = {
    safe_json.NOT_UTF8: "malformed_json",
    safe_json.MALFORMED: "malformed_json",
    safe_json.NOT_OBJECT: "invalid_schema",
}
# refusals of well-formed text by a limit: the request id is worth digging out of the raw bytes
_RECOVER_ID = frozenset((safe_json.TOO_LARGE, safe_json.TOO_DEEP, safe_json.HUGE_NUMBER))


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
        max_depth: int = 32,
        max_age_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``max_age_s``: a command whose ``ts`` is further than this from ``wall_clock()``
        when it runs is refused ``stale`` (0: no check)."""
        self.max_age_s = max_age_s
        self._wall = wall_clock
        self._specs: dict[str, _Spec] = {}
        self._priority: set[str] = set()
        self.limits = dict(limits or {})
        self.max_payload_bytes = max_payload_bytes
        self.decode_limits = safe_json.Limits(max_payload_bytes, max_depth)
        self.rejected = safe_json.Rejections(log, "command")

    def register(
        self,
        name: str,
        handler: Handler,
        args_schema: dict[str, Any] | None = None,
        description: str = "",
        *,
        priority: bool = False,
    ) -> None:
        """Add a command; ``args_schema`` is a JSON Schema of its ``args`` object.
        ``priority``: served on the priority lane (see :class:`CommandInbox`)."""
        check_level(name, "command name")
        if name in self._specs:
            raise ValueError(f"command {name!r} is already registered")
        validator = schemas.validator_for(args_schema or _OPEN_OBJECT)
        self._specs[name] = _Spec(name, handler, validator, description)
        if priority:
            self._priority.add(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def known(self, name: str) -> bool:
        return name in self._specs

    def is_priority(self, name: str) -> bool:
        return name in self._priority

    def prepare(self, name: str, payload: bytes) -> Prepared:
        """Decode within the limits and check against ``command.json``; never raises."""
        try:
            obj = safe_json.loads(payload, self.decode_limits)
        except safe_json.DecodeError as exc:
            self.rejected.count(exc.reason, f"cmd/{name}", exc.message)
            rid = safe_json.recover_request_id(payload) if exc.reason in _RECOVER_ID else None
            code = _DECODE_CODE.get(exc.reason, exc.reason)
            return Prepared(rid, None, Outcome(rid, error_body(name, code, exc.message)))
        raw = obj.get("request_id") if isinstance(obj, dict) else None
        rid = raw if isinstance(raw, str) and 0 < len(raw) <= 128 else None
        found = schemas.validate("command.json", obj)
        if found:
            self.rejected.count(safe_json.INVALID_SCHEMA, f"cmd/{name}", "; ".join(found[:3]))
            return Prepared(
                rid, None, Outcome(rid, error_body(name, "invalid_schema", "; ".join(found)))
            )
        return Prepared(rid, obj, None)

    def execute(self, name: str, payload: bytes) -> Outcome:
        """Check and run one command; every failure becomes an error body."""
        return self.run(name, self.prepare(name, payload))

    def run(self, name: str, prepared: Prepared) -> Outcome:
        """Run a prepared command (or return its refusal); every failure becomes an error."""
        if prepared.refusal is not None:
            return prepared.refusal
        rid, obj = prepared.request_id, prepared.command or {}
        unreadable, stale = self._stale(obj.get("ts"))
        if unreadable:
            return Outcome(rid, error_body(name, "invalid_schema", unreadable, "ts"))
        if stale:
            return Outcome(rid, error_body(name, "stale", stale, "ts"))
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

    def _stale(self, ts: object) -> tuple[str, str]:
        """(why ``ts`` is unreadable, why it is stale): empty texts when the command is fresh
        or has no ``ts`` (a command without one is not checked) or the check is off."""
        if ts is None or self.max_age_s <= 0:
            return "", ""
        when = stamp_epoch(ts)
        if when is None:
            return f"ts: {str(ts)[:40]!r} is not an RFC 3339 time with a zone", ""
        age = self._wall() - when
        if age > self.max_age_s:
            return "", (
                f"sent {age:.1f} s ago (ts {ts}), older than mqtt.commands.max_age_s "
                f"{self.max_age_s:g}: not run; send it again with a fresh ts"
            )
        if age < -self.max_age_s:
            return "", (
                f"ts {ts} is {-age:.1f} s in the future (more than mqtt.commands.max_age_s "
                f"{self.max_age_s:g}): the sender's clock or the node's is wrong; not run"
            )
        return "", ""


def stamp_epoch(ts: object) -> float | None:
    """Epoch seconds of an RFC 3339 time with a zone (``Z`` or an offset); None if ``ts`` is
    not one. Never raises."""
    if not isinstance(ts, str) or not 10 <= len(ts) <= 64:
        return None
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        return None
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _outside(arg: str, value: Any, limit: LimitConfig) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if limit.min is not None and value < limit.min:
        return f"{arg}={value} is below the configured minimum {limit.min}"
    if limit.max is not None and value > limit.max:
        return f"{arg}={value} is above the configured maximum {limit.max}"
    return ""


PRIORITY = "priority"
BULK = "bulk"
LANES = (PRIORITY, BULK)
_UNKNOWN = "\x00unknown"  # the bucket all unregistered names share (no bucket per junk name)


class TokenBucket:
    """``burst`` at once, refilled at ``per_s``; ``take`` is O(1) and never blocks."""

    def __init__(self, cfg: RateLimitConfig, clock: Callable[[], float]) -> None:
        self.rate = cfg.per_s
        self.capacity = float(cfg.burst)
        self.tokens = self.capacity
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Inbound:
    """A command as it arrived; ``refusal`` set when admission already answered it."""

    name: str
    payload: bytes
    received: float
    refusal: Outcome | None = None


class CommandInbox:
    """Admission of commands on the network thread, and the lanes their threads serve.

    ``offer`` is cheap and never raises: it only measures, counts and queues. A command over
    its name's token bucket, or one that finds its lane full, is queued as a refusal without
    its payload (``rate_limited``), so a flood costs a small answer each, none is lost in
    silence, and it is never remembered as the request's result (a retry may pass).
    """

    def __init__(
        self,
        registry: CommandRegistry,
        cfg: CommandsConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.cfg = cfg
        self._clock = clock
        self._priority = frozenset(cfg.priority)
        self._buckets: dict[str, TokenBucket] = {}
        self._lanes: dict[str, deque[Inbound]] = {lane: deque() for lane in LANES}
        self._held: dict[str, int] = dict.fromkeys(LANES, 0)  # queued items with a payload
        self._ready = {lane: threading.Condition() for lane in LANES}
        self.received: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # reason -> count
        self.lost = 0  # beyond every bound (100x max_queued refusals waiting): not answered
        self._logged = 0.0

    def lane_of(self, name: str) -> str:
        if name in self._priority or self.registry.is_priority(name):
            return PRIORITY
        return BULK

    def offer(self, name: str, payload: bytes, retained: bool = False) -> str:
        """Admit one command (network thread); returns the lane it went to. ``retained``: the
        broker delivered it from its store (MQTT retain flag): answered ``retained``, not run."""
        lane = self.lane_of(name)
        self.received[lane] += 1
        now = self._clock()
        refusal: Outcome | None = None
        if retained:
            self.refused[RETAINED] += 1
            log.warning("retained command %s refused (the broker stores it: clear it)", name)
            rid = safe_json.recover_request_id(payload, self.cfg.max_payload_bytes)
            refusal = Outcome(
                rid,
                error_body(
                    name,
                    "retained",
                    "a retained command is never run (the broker would deliver it again at "
                    "every reconnect); clear it (mosquitto_pub -r -n -t <its topic>) and send "
                    "it without the retain flag",
                ),
            )
        elif not self._bucket(name).take():
            refusal = self._refuse(name, payload, f"over the rate limit of {name!r}")
        elif self._held[lane] >= self.cfg.max_queued:
            refusal = self._refuse(
                name, payload, f"{self._held[lane]} commands already waiting on the {lane} lane"
            )
        item = Inbound(name, b"" if refusal else payload, now, refusal)
        with self._ready[lane]:
            queue = self._lanes[lane]
            if refusal is not None and len(queue) >= 100 * self.cfg.max_queued:
                self.lost += 1
                self._log_lost(name)
                return lane
            queue.append(item)
            if refusal is None:
                self._held[lane] += 1
            self._ready[lane].notify()
        return lane

    def take(self, lane: str, timeout: float) -> Inbound | None:
        """The next command of a lane, waiting up to ``timeout``; None if there is none."""
        with self._ready[lane]:
            queue = self._lanes[lane]
            if not queue:
                self._ready[lane].wait(timeout)
                if not queue:
                    return None
            item = queue.popleft()
            if item.refusal is None:
                self._held[lane] -= 1
            return item

    def depth(self, lane: str) -> int:
        return len(self._lanes[lane])

    def stats(self) -> dict[str, Any]:
        """Counters: received per lane, refused per reason (decoder and admission), waiting."""
        refused = Counter(self.refused)
        refused.update(self.registry.rejected.snapshot())
        return {
            "received": dict(self.received),
            "refused": dict(refused),
            "waiting": {lane: len(q) for lane, q in self._lanes.items()},
            "lost": self.lost,
        }

    def _bucket(self, name: str) -> TokenBucket:
        key = name if self.registry.known(name) or name in self.cfg.rate_limits else _UNKNOWN
        bucket = self._buckets.get(key)
        if bucket is None:
            limit = self.cfg.rate_limits.get(key, self.cfg.default_rate_limit)
            bucket = self._buckets[key] = TokenBucket(limit, self._clock)
        return bucket

    def _refuse(self, name: str, payload: bytes, why: str) -> Outcome:
        self.refused[RATE_LIMITED] += 1
        n = self.refused[RATE_LIMITED]
        if n == 1 or n % 1000 == 0:
            log.warning("command %s refused (%s; %d refused so far)", name, why, n)
        rid = safe_json.recover_request_id(payload, self.cfg.max_payload_bytes)
        return Outcome(rid, error_body(name, RATE_LIMITED, f"{why}; send it again later"))

    def _log_lost(self, name: str) -> None:
        now = self._clock()
        if now - self._logged > 10.0:
            self._logged = now
            log.error("command %s not answered: %d refusals already waiting", name, self.lost)
