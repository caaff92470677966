"""Sparkplug B payloads through the Eclipse Tahu protobuf definitions (sparkplug_b.proto,
compiled with protoc: sparkplug_b_pb2.py), plus the small state a node keeps around them:
the message sequence number, the metric aliases, the bdSeq of each MQTT session and the
host applications' STATE.

No encoding is written by hand here: values go into the generated message's fields; what is
ours is which field each data type uses (the Sparkplug 3.0 rules: 8-32 bit integers in
``int_value``, 64-bit ones and DateTime in ``long_value``, signed ones as two's complement).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from fleet_link.sparkplug import sparkplug_b_pb2 as pb

log = logging.getLogger("fleet_link.sparkplug")

Payload = pb.Payload
Metric = pb.Payload.Metric

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"


class DataType(IntEnum):
    """The Sparkplug data types this node uses (numbers from sparkplug_b.proto)."""

    Int8 = pb.Int8
    Int16 = pb.Int16
    Int32 = pb.Int32
    Int64 = pb.Int64
    UInt8 = pb.UInt8
    UInt16 = pb.UInt16
    UInt32 = pb.UInt32
    UInt64 = pb.UInt64
    Float = pb.Float
    Double = pb.Double
    Boolean = pb.Boolean
    String = pb.String
    DateTime = pb.DateTime
    Text = pb.Text


_INT_BITS = {
    DataType.Int8: (8, True), DataType.Int16: (16, True), DataType.Int32: (32, True),
    DataType.Int64: (64, True), DataType.UInt8: (8, False), DataType.UInt16: (16, False),
    DataType.UInt32: (32, False), DataType.UInt64: (64, False), DataType.DateTime: (64, False),
}  # fmt: skip


@dataclass(frozen=True)
class MetricDef:
    """One metric a node or device publishes: its name and Sparkplug data type."""

    name: str
    datatype: DataType
    deadband: float = 0.0  # Float/Double: a change up to this is not reported

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a metric needs a name")


def set_value(metric: Any, datatype: DataType, value: Any) -> None:
    """Put ``value`` in the field of ``metric`` its data type uses; None is ``is_null``.
    ValueError when the value does not fit the type (so a bad sample is refused, not sent)."""
    metric.datatype = int(datatype)
    if value is None:
        metric.is_null = True
        return
    if datatype in _INT_BITS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{datatype.name} takes an int, not {type(value).__name__}")
        bits, signed = _INT_BITS[datatype]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {datatype.name} ({low}..{high})")
        if bits == 64:
            metric.long_value = value & 0xFFFF_FFFF_FFFF_FFFF
        else:
            metric.int_value = value & 0xFFFF_FFFF
    elif datatype is DataType.Boolean:
        if not isinstance(value, bool):
            raise ValueError(f"Boolean takes a bool, not {type(value).__name__}")
        metric.boolean_value = value
    elif datatype in (DataType.Float, DataType.Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{datatype.name} takes a number, not {type(value).__name__}")
        if datatype is DataType.Float:
            metric.float_value = float(value)
        else:
            metric.double_value = float(value)
    elif datatype in (DataType.String, DataType.Text):
        if not isinstance(value, str):
            raise ValueError(f"{datatype.name} takes a str, not {type(value).__name__}")
        metric.string_value = value
    else:  # pragma: no cover - DataType lists only the types handled above
        raise ValueError(f"data type {datatype!r} is not supported")


def get_value(metric: Any) -> Any:
    """The value of a decoded metric as Python (signed types back from two's complement);
    None when it is null or carries no value."""
    if metric.HasField("is_null") and metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if field is None:
        return None
    raw = getattr(metric, field)
    try:
        datatype = DataType(metric.datatype)
    except ValueError:
        return raw
    if datatype in _INT_BITS and field in ("int_value", "long_value"):
        bits, signed = _INT_BITS[datatype]
        raw &= (1 << bits) - 1
        if signed and raw >= 1 << (bits - 1):
            raw -= 1 << bits
    return raw


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(
    metrics: Iterable[tuple[MetricDef, int | None, Any, bool]],
    *,
    seq: int | None,
    timestamp: int | None = None,
) -> bytes:
    """A payload of ``(definition, alias, value, with_name)`` metrics. Births give names and
    aliases; data messages give aliases only (``with_name`` False) once aliases are known."""
    ts = now_ms() if timestamp is None else timestamp
    out = Payload(timestamp=ts)
    if seq is not None:
        out.seq = seq
    for mdef, alias, value, with_name in metrics:
        m = out.metrics.add()
        if with_name or alias is None:
            m.name = mdef.name
        if alias is not None:
            m.alias = alias
        m.timestamp = ts
        set_value(m, mdef.datatype, value)
    return out.SerializeToString()


def decode(data: bytes) -> Any:
    """A Payload from bytes; ValueError (with the protobuf's reason) when it is not one."""
    msg = Payload()
    try:
        msg.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"not a Sparkplug B payload: {exc}") from None
    return msg


def bdseq_payload(bdseq: int) -> bytes:
    """The NDEATH: only the bdSeq of the session it ends (no seq; its timestamp is that of
    the CONNECT, so hosts go by the bdSeq)."""
    return encode([(MetricDef(BDSEQ, DataType.Int64), None, bdseq, True)], seq=None)


class SeqCounter:
    """The node's message sequence number: 0 at each NBIRTH, one up for every later message
    of the node and its devices, 255 then 0."""

    def __init__(self) -> None:
        self.value = 0

    def birth(self) -> int:
        self.value = 0
        return 0

    def next(self) -> int:
        self.value = (self.value + 1) % 256
        return self.value


class AliasTable:
    """Aliases unique across the node and all its devices, stable for the life of the
    process (a rebirth reuses them): births map name to alias, data uses the alias."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str | None, str], int] = {}
        self._by_alias: dict[int, tuple[str | None, str]] = {}

    def alias(self, device: str | None, name: str) -> int:
        key = (device, name)
        found = self._by_key.get(key)
        if found is None:
            found = self._by_key[key] = len(self._by_key) + 1
            self._by_alias[found] = key
        return found

    def lookup(self, alias: int) -> tuple[str | None, str] | None:
        return self._by_alias.get(alias)


class BdSeqStore:
    """The bdSeq of each MQTT session: one up per CONNECT (0-255, wrapping), kept in a file
    so a restarted node does not reuse the number of the session whose NDEATH a host may
    still be about to see. Without a file (or when it cannot be written) it counts in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._last: int | None = None
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8").strip()
                value = int(text)
                if 0 <= value <= 255:
                    self._last = value
                else:
                    log.warning("%s: bdSeq %d out of 0..255; starting again at 0", path, value)
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable bdSeq (%s); starting again at 0", path, exc)

    @property
    def last(self) -> int | None:
        return self._last

    def next(self) -> int:
        value = 0 if self._last is None else (self._last + 1) % 256
        self._last = value
        if self.path is not None:
            try:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(f"{value}\n", encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:  # still correct within this process
                log.warning("%s: bdSeq not saved (%s)", self.path, exc)
        return value


@dataclass(frozen=True)
class HostState:
    """A host application's STATE (Sparkplug 3.0: JSON ``{"online": bool, "timestamp": ms}``)."""

    online: bool
    timestamp: int


def parse_state(data: bytes) -> HostState:
    """A STATE payload; ValueError saying why when it is not a 3.0 one."""
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"STATE payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("STATE payload is not a JSON object")
    online, ts = body.get("online"), body.get("timestamp")
    if not isinstance(online, bool):
        raise ValueError("STATE payload has no boolean 'online'")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise ValueError("STATE payload has no non-negative integer 'timestamp'")
    return HostState(online, ts)


def state_payload(online: bool, timestamp: int | None = None) -> bytes:
    return json.dumps(
        {"online": online, "timestamp": now_ms() if timestamp is None else timestamp}
    ).encode()


def changed(mdef: MetricDef, old: Any, new: Any) -> bool:
    """Report by exception: is ``new`` worth a DDATA after ``old`` was published?"""
    if old is None or new is None:
        return (old is None) != (new is None)
    if mdef.datatype in (DataType.Float, DataType.Double) and not isinstance(new, bool):
        if isinstance(new, float) and math.isnan(new):
            return not (isinstance(old, float) and math.isnan(old))
        return abs(float(new) - float(old)) > mdef.deadband
    return bool(new != old)


def metric_names(metrics: Iterable[Any]) -> dict[str, Any]:
    """name -> value of decoded metrics that carry names (births, commands)."""
    return {m.name: get_value(m) for m in metrics if m.name}


def by_alias(metrics: Iterable[Any]) -> Mapping[int, Any]:
    return {m.alias: get_value(m) for m in metrics if m.HasField("alias")}
