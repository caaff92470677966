"""The topic namespace ``wolfpack/v1/<site>/<node>/...`` (docs/mqtt.md is its specification).

Channels are the topic suffix after the node: ``state``, ``telemetry/<group>``,
``events/<kind>``, ``cmd/<name>``, ``cmd_result/<name>``. Sequence numbers count per channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "wolfpack/v1"
_LEVEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = ("state", "telemetry", "events", "cmd", "cmd_result")


class TopicError(ValueError):
    """A topic outside the namespace or with a bad level."""


def check_level(value: str, what: str) -> str:
    """One topic level: lower-case letters, digits, '-' and '_' (no wildcards, no '/')."""
    if not _LEVEL.match(value):
        raise TopicError(
            f"{what} {value!r} is not a valid topic level: expected 1-64 lower-case letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class Topic:
    site: str
    node: str
    channel: str  # "state", "events/parcel", "cmd/ping", ...

    @property
    def kind(self) -> str:
        return self.channel.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The part after the kind: the event kind, telemetry group or command name."""
        return self.channel.split("/", 1)[1] if "/" in self.channel else ""

    def __str__(self) -> str:
        return f"{ROOT}/{self.site}/{self.node}/{self.channel}"


def channel(kind: str, name: str = "") -> str:
    """Build a channel, e.g. channel('events', 'parcel') -> 'events/parcel'."""
    if kind not in KINDS:
        raise TopicError(f"unknown channel kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "state":
        if name:
            raise TopicError("the state channel has no name")
        return "state"
    return f"{kind}/{check_level(name, kind + ' name')}"


def topic(site: str, node: str, chan: str) -> str:
    check_level(site, "site")
    check_level(node, "node")
    return f"{ROOT}/{site}/{node}/{chan}"


def node_prefix(site: str, node: str) -> str:
    return f"{ROOT}/{check_level(site, 'site')}/{check_level(node, 'node')}"


def site_filter(site: str, node: str = "+") -> str:
    """Subscription filter for everything of a site (or of one node)."""
    return f"{ROOT}/{check_level(site, 'site')}/{node}/#"


def parse(text: str) -> Topic:
    """Parse a topic of the namespace; raise TopicError naming what is wrong."""
    parts = text.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != ROOT:
        raise TopicError(f"{text!r} is not under {ROOT}/<site>/<node>/")
    site, node, kind = parts[2], parts[3], parts[4]
    check_level(site, "site")
    check_level(node, "node")
    if kind not in KINDS:
        raise TopicError(f"{text!r}: unknown channel kind {kind!r}")
    rest = parts[5:]
    if kind == "state":
        if rest:
            raise TopicError(f"{text!r}: the state channel has no sub-levels")
        return Topic(site, node, "state")
    if len(rest) != 1:
        raise TopicError(f"{text!r}: expected exactly one level after {kind!r}")
    return Topic(site, node, f"{kind}/{check_level(rest[0], kind + ' name')}")
