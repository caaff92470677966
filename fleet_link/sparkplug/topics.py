"""The Sparkplug B topic namespace: ``spBv1.0/<group>/<type>/<edge node>[/<device>]`` and
``spBv1.0/STATE/<host id>`` (docs/sparkplug.md).

Sparkplug ids are free UTF-8 but one topic level each: no '/', and none of the MQTT
wildcards '+' and '#'. Node messages (NBIRTH, NDEATH, NDATA, NCMD) have no device level;
device messages (DBIRTH, DDEATH, DDATA, DCMD) must have one.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "spBv1.0"
NODE_TYPES = ("NBIRTH", "NDEATH", "NDATA", "NCMD")
DEVICE_TYPES = ("DBIRTH", "DDEATH", "DDATA", "DCMD")
MESSAGE_TYPES = NODE_TYPES + DEVICE_TYPES
STATE = "STATE"
_FORBIDDEN = ("/", "+", "#", "\0")


class SparkplugTopicError(ValueError):
    """A topic outside the Sparkplug B namespace, or a bad id in one."""


def check_id(value: str, what: str) -> str:
    """A group, edge node, device or host id: one non-empty topic level without wildcards."""
    if not isinstance(value, str) or not value:
        raise SparkplugTopicError(f"{what} is empty; a Sparkplug id is one non-empty topic level")
    bad = [c for c in _FORBIDDEN if c in value]
    if bad:
        raise SparkplugTopicError(
            f"{what} {value!r} contains {bad[0]!r}; a Sparkplug id is one topic level "
            "without '/', '+' or '#'"
        )
    if len(value.encode("utf-8")) > 256:
        raise SparkplugTopicError(f"{what} is over 256 bytes")
    return value


@dataclass(frozen=True)
class SparkplugTopic:
    """One parsed topic: a node or device message, or a host's STATE (``host_id`` set)."""

    message_type: str
    group_id: str = ""
    edge_node_id: str = ""
    device_id: str | None = None
    host_id: str | None = None

    def __str__(self) -> str:
        if self.message_type == STATE:
            assert self.host_id is not None
            return state_topic(self.host_id)
        return topic(self.group_id, self.message_type, self.edge_node_id, self.device_id)


def topic(group_id: str, message_type: str, edge_node_id: str, device_id: str | None = None) -> str:
    """The topic of one node or device message."""
    if message_type not in MESSAGE_TYPES:
        raise SparkplugTopicError(f"unknown Sparkplug message type {message_type!r}")
    check_id(group_id, "group_id")
    check_id(edge_node_id, "edge_node_id")
    if message_type in DEVICE_TYPES:
        if device_id is None:
            raise SparkplugTopicError(f"a {message_type} topic needs a device id")
        check_id(device_id, "device_id")
        return f"{NAMESPACE}/{group_id}/{message_type}/{edge_node_id}/{device_id}"
    if device_id is not None:
        raise SparkplugTopicError(f"a {message_type} topic has no device id")
    return f"{NAMESPACE}/{group_id}/{message_type}/{edge_node_id}"


def state_topic(host_id: str) -> str:
    """Where a host application publishes its retained online/offline STATE."""
    return f"{NAMESPACE}/{STATE}/{check_id(host_id, 'host_id')}"


def parse_topic(text: str) -> SparkplugTopic:
    """A Sparkplug B topic, checked level by level; SparkplugTopicError says what is wrong."""
    levels = text.split("/")
    if levels[0] != NAMESPACE:
        raise SparkplugTopicError(f"topic {text!r} is not under {NAMESPACE}/")
    if len(levels) == 3 and levels[1] == STATE:
        return SparkplugTopic(STATE, host_id=check_id(levels[2], "host_id"))
    if len(levels) not in (4, 5):
        raise SparkplugTopicError(
            f"topic {text!r}: expected {NAMESPACE}/<group>/<type>/<edge node>[/<device>]"
        )
    group_id, message_type, edge_node_id = levels[1], levels[2], levels[3]
    if message_type not in MESSAGE_TYPES:
        raise SparkplugTopicError(f"topic {text!r}: unknown message type {message_type!r}")
    device_id = levels[4] if len(levels) == 5 else None
    if (message_type in DEVICE_TYPES) != (device_id is not None):
        raise SparkplugTopicError(
            f"topic {text!r}: {message_type} "
            + ("needs a device id" if device_id is None else "has no device level")
        )
    check_id(group_id, "group_id")
    check_id(edge_node_id, "edge_node_id")
    if device_id is not None:
        check_id(device_id, "device_id")
    return SparkplugTopic(message_type, group_id, edge_node_id, device_id)
