"""Sparkplug B 3.0 edge node beside the native ``wolfpack/v1`` namespace (docs/sparkplug.md).

The payloads are the Eclipse Tahu protobuf definitions (``sparkplug_b.proto``, EPL-2.0, see
``NOTICE.md``) compiled by protoc into ``sparkplug_b_pb2.py``; nothing here encodes protobuf
by hand.
"""

from fleet_link.sparkplug.config import SparkplugConfig
from fleet_link.sparkplug.edge_node import SparkplugEdgeNode
from fleet_link.sparkplug.payload import DataType, MetricDef
from fleet_link.sparkplug.topics import parse_topic, state_topic, topic

__all__ = [
    "DataType",
    "MetricDef",
    "SparkplugConfig",
    "SparkplugEdgeNode",
    "parse_topic",
    "state_topic",
    "topic",
]
