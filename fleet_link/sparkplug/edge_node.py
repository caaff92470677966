"""A Sparkplug B 3.0 edge node on its own MQTT session (clean session, as Sparkplug requires).

One worker thread owns all Sparkplug state (seq, aliases, what was last published, the
host's STATE); paho's network thread only hands it what arrives. ``update`` is what the
application calls: it queues a sample and returns at once, so a slow broker never holds up
the caller. The worker publishes births when the session (and, when configured, the primary
host) allows, and a DDATA/NDATA of just the metrics that changed after that.

Session rules followed (Sparkplug 3.0, docs/sparkplug.md): a new bdSeq for every CONNECT,
registered as the NDEATH will (QoS 1, not retained) and repeated in the NBIRTH that follows;
seq 0 on NBIRTH, one up per later message, wrapping after 255; NCMD ``Node Control/Rebirth``
answered with a new NBIRTH (same bdSeq: same session) and every DBIRTH; with a primary host,
births only after its STATE says online, and NDEATH + disconnect when it says offline (then
a new session that waits for the host again). A STATE older than the last one is ignored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from fleet_link.config import MqttConfig
from fleet_link.link import apply_credentials
from fleet_link.sparkplug.payload import (
    BDSEQ,
    REBIRTH,
    AliasTable,
    BdSeqStore,
    DataType,
    MetricDef,
    SeqCounter,
    bdseq_payload,
    changed,
    decode,
    encode,
    get_value,
    parse_state,
)
from fleet_link.sparkplug.topics import (
    NAMESPACE,
    STATE,
    SparkplugTopicError,
    check_id,
    parse_topic,
    state_topic,
    topic,
)

log = logging.getLogger("fleet_link.sparkplug")

CommandCallback = Callable[[str | None, dict[str, Any]], None]
_REBIRTH_DEF = MetricDef(REBIRTH, DataType.Boolean)
_BDSEQ_DEF = MetricDef(BDSEQ, DataType.Int64)
_MAX_QUEUED = 10_000


class SparkplugEdgeNode:
    def __init__(
        self,
        cfg: MqttConfig,
        group_id: str,
        edge_node_id: str,
        *,
        client_id: str,
        devices: Mapping[str, Sequence[MetricDef]],
        node_metrics: Sequence[MetricDef] = (),
        primary_host_id: str | None = None,
        bdseq_path: Path | None = None,
        on_command: CommandCallback | None = None,
    ) -> None:
        self.cfg = cfg
        self.group_id = check_id(group_id, "group_id")
        self.edge_node_id = check_id(edge_node_id, "edge_node_id")
        self.primary_host_id = (
            check_id(primary_host_id, "primary_host_id") if primary_host_id else None
        )
        self.client_id = client_id
        self.node_metrics = [_REBIRTH_DEF, *node_metrics]
        self.devices = {check_id(d, "device_id"): list(m) for d, m in devices.items()}
        self._defs: dict[str | None, dict[str, MetricDef]] = {
            None: {m.name: m for m in self.node_metrics},
            **{d: {m.name: m for m in ms} for d, ms in self.devices.items()},
        }
        self.on_command = on_command
        self.bdseq = BdSeqStore(bdseq_path)
        self.aliases = AliasTable()
        for dev, defs in self._defs.items():  # aliases fixed up front: stable across rebirths
            for name in defs:
                self.aliases.alias(dev, name)
        self.seq = SeqCounter()
        self._values: dict[str | None, dict[str, Any]] = {d: {} for d in self._defs}
        self._values[None][REBIRTH] = False
        self._sent: dict[str | None, dict[str, Any]] = {d: {} for d in self._defs}
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._connecting_bdseq = -1
        self.session_bdseq: int | None = None  # the bdSeq of the connected session
        self.connected = False
        self.born = threading.Event()
        self.host_online: bool | None = None
        self._host_ts = -1
        self._reconnect_at: float | None = None
        self.counts = {"births": 0, "rebirths": 0, "data": 0, "ndeath_sent": 0,
                       "host_offline_disconnects": 0, "dropped": 0, "bad_samples": 0,
                       "bad_messages": 0, "errors": 0}  # fmt: skip

    # ---- the application's side ----------------------------------------------------------
    def start(self) -> SparkplugEdgeNode:
        self._thread = threading.Thread(target=self._run, name="sparkplug", daemon=True)
        self._thread.start()
        return self

    def update(self, device: str | None, values: Mapping[str, Any]) -> None:
        """New values of some metrics of ``device`` (None: the node); returns at once."""
        if self._queue.qsize() >= _MAX_QUEUED:
            self.counts["dropped"] += 1
            return
        self._queue.put(("sample", device, dict(values)))

    def rebirth(self) -> None:
        self._queue.put(("rebirth",))

    def stop(self, timeout: float = 5.0) -> None:
        """NDEATH (this is an intentional disconnect: the broker drops the will), DISCONNECT."""
        if self._thread is None:
            return
        self._queue.put(("stop", timeout))
        self._thread.join(timeout + 1.0)
        self._thread = None

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "connected": self.connected, "born": self.born.is_set(),
                "bdseq": self.session_bdseq, "seq": self.seq.value,
                "host_online": self.host_online}  # fmt: skip

    # ---- the worker thread -----------------------------------------------------------------
    def _run(self) -> None:
        self._connect()
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                if item is None:
                    pass
                elif item[0] == "stop":
                    self._shutdown(item[1])
                    return
                else:
                    getattr(self, f"_on_{item[0]}")(*item[1:])
                if self._reconnect_at is not None and time.monotonic() >= self._reconnect_at:
                    self._reconnect_at = None
                    self._connect()
            except Exception:  # one bad turn must not end Sparkplug for the process
                self.counts["errors"] += 1
                log.exception("sparkplug: %s failed", item[0] if item else "reconnect")

    def _connect(self) -> None:
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        apply_credentials(client, cfg)
        client.reconnect_delay_set(max(1, round(cfg.reconnect_min_s)),
                                   max(1, round(cfg.reconnect_max_s)))  # fmt: skip
        client.on_pre_connect = self._pre_connect
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        if v5:
            client.connect_async(cfg.host, cfg.port, cfg.keepalive_s, clean_start=True)
        else:
            client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        self._client = client
        client.loop_start()

    # paho's network thread: hand over, nothing else (except the will, which must be set
    # before each CONNECT, reconnects included)
    def _pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        bdseq = self.bdseq.next()
        self._connecting_bdseq = bdseq
        client.will_set(self._topic("NDEATH"), bdseq_payload(bdseq), qos=1, retain=False)

    def _paho_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            log.warning("sparkplug: broker refused the connection: %s", reason)
            return
        self._queue.put(("connected", self._connecting_bdseq))

    def _paho_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._queue.put(("disconnected", str(reason)))

    def _paho_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(("message", msg.topic, msg.payload))

    # events, on the worker thread
    def _on_connected(self, bdseq: int) -> None:
        assert self._client is not None
        self.connected = True
        self.session_bdseq = bdseq
        dcmd = f"{NAMESPACE}/{self.group_id}/DCMD/{self.edge_node_id}/+"
        subs = [(self._topic("NCMD"), 1), (dcmd, 1)]
        if self.primary_host_id is not None:
            subs.append((state_topic(self.primary_host_id), 1))
            self.host_online = None  # the retained STATE of this session decides
        self._client.subscribe(subs)
        log.info("sparkplug: connected as %s/%s, bdSeq %d%s", self.group_id, self.edge_node_id,
                 bdseq, f"; waiting for host {self.primary_host_id}"
                 if self.primary_host_id else "")  # fmt: skip
        if self.primary_host_id is None:
            self._births()

    def _on_disconnected(self, why: str) -> None:
        if self.connected:
            log.warning("sparkplug: disconnected (%s)", why)
        self.connected = False
        self.born.clear()

    def _on_message(self, text: str, data: bytes) -> None:
        try:
            t = parse_topic(text)
        except SparkplugTopicError as exc:
            self.counts["bad_messages"] += 1
            log.warning("sparkplug: ignored a message: %s", exc)
            return
        if t.message_type == STATE:
            self._on_state(data)
        elif t.message_type in ("NCMD", "DCMD"):
            self._on_command(t.device_id, data)

    def _on_state(self, data: bytes) -> None:
        try:
            state = parse_state(data)
        except ValueError as exc:
            self.counts["bad_messages"] += 1
            log.warning("sparkplug: host %s: %s", self.primary_host_id, exc)
            return
        if state.timestamp < self._host_ts:
            return  # an older STATE than one already seen (3.0: ignore it)
        self._host_ts = state.timestamp
        self.host_online = state.online
        if state.online:
            if self.connected and not self.born.is_set():
                self._births()
        elif self.born.is_set():
            log.warning("sparkplug: host %s went offline: NDEATH, disconnect, reconnect and "
                        "wait for it", self.primary_host_id)  # fmt: skip
            self.counts["host_offline_disconnects"] += 1
            self._end_session(2.0)
            self._reconnect_at = time.monotonic() + self.cfg.reconnect_min_s

    def _on_command(self, device: str | None, data: bytes) -> None:
        if device is not None and device not in self.devices:
            self.counts["bad_messages"] += 1
            log.warning("sparkplug: DCMD for unknown device %r ignored", device)
            return
        try:
            payload = decode(data)
        except ValueError as exc:
            self.counts["bad_messages"] += 1
            log.warning("sparkplug: %s ignored: %s", "NCMD" if device is None else "DCMD", exc)
            return
        metrics: dict[str, Any] = {}
        for m in payload.metrics:
            name = m.name
            if not name and m.HasField("alias"):  # a host may command by alias
                found = self.aliases.lookup(m.alias)
                if found is None or found[0] != device:
                    continue
                name = found[1]
            if name:
                metrics[name] = get_value(m)
        if device is None and metrics.pop(REBIRTH, None) is True:
            self.counts["rebirths"] += 1
            log.info("sparkplug: rebirth requested")
            self._on_rebirth()
        if metrics and self.on_command is not None:
            self.on_command(device, metrics)

    def _on_rebirth(self) -> None:
        if self.connected and (self.primary_host_id is None or self.host_online):
            self._births()

    def _on_sample(self, device: str | None, values: dict[str, Any]) -> None:
        defs = self._defs.get(device)
        if defs is None:
            self.counts["bad_samples"] += 1
            return
        current = self._values[device]
        for name, value in values.items():
            if name in defs:
                current[name] = value
            else:
                self.counts["bad_samples"] += 1
        if not self.born.is_set():
            return
        sent = self._sent[device]
        out = []
        for name, value in values.items():
            mdef = defs.get(name)
            if mdef is None or (name in sent and not changed(mdef, sent[name], value)):
                continue
            out.append((mdef, self.aliases.alias(device, name), value, False))
        if not out:
            return
        try:
            body = encode(out, seq=(self.seq.value + 1) % 256)
        except ValueError as exc:  # a value that does not fit its type: not sent, said once
            self.counts["bad_samples"] += 1
            log.warning("sparkplug: %s sample refused: %s", device or "node", exc)
            return
        self.seq.next()
        kind = "NDATA" if device is None else "DDATA"
        if self._publish(self._topic(kind, device), body):
            self.counts["data"] += 1
            for mdef, _alias, value, _named in out:
                sent[mdef.name] = value

    # ---- births and deaths -----------------------------------------------------------------
    def _births(self) -> None:
        assert self.session_bdseq is not None
        self._values[None][REBIRTH] = False
        node = [(_BDSEQ_DEF, None, self.session_bdseq, True)] + [
            (d, self.aliases.alias(None, d.name), self._values[None].get(d.name), True)
            for d in self.node_metrics
        ]
        if not self._publish(self._topic("NBIRTH"), encode(node, seq=self.seq.birth())):
            return
        self._sent[None] = dict(self._values[None])
        for dev, defs in self.devices.items():
            values = self._values[dev]
            metrics = [(d, self.aliases.alias(dev, d.name), values.get(d.name), True)
                       for d in defs]  # fmt: skip
            self._publish(self._topic("DBIRTH", dev), encode(metrics, seq=self.seq.next()))
            self._sent[dev] = dict(values)
        self.counts["births"] += 1
        self.born.set()
        log.info("sparkplug: NBIRTH (bdSeq %d) and %d DBIRTH sent", self.session_bdseq,
                 len(self.devices))  # fmt: skip

    def _end_session(self, timeout: float) -> None:
        """NDEATH with this session's bdSeq, then DISCONNECT (the broker then drops the will)."""
        client = self._client
        if client is None:
            return
        if self.connected and self.session_bdseq is not None:
            info = client.publish(self._topic("NDEATH"), bdseq_payload(self.session_bdseq),
                                  qos=1, retain=False)  # fmt: skip
            try:
                info.wait_for_publish(timeout)
                self.counts["ndeath_sent"] += 1
            except (RuntimeError, ValueError) as exc:
                log.warning("sparkplug: NDEATH not sent (%s); the broker sends the will", exc)
        self.born.clear()
        self.connected = False
        client.disconnect()
        client.loop_stop()
        self._client = None

    def _shutdown(self, timeout: float) -> None:
        self._end_session(min(timeout, 3.0))

    def _publish(self, text: str, body: bytes) -> bool:
        client = self._client
        if client is None or not self.connected:
            return False
        info = client.publish(text, body, qos=0, retain=False)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("sparkplug: publish to %s failed: %s", text, mqtt.error_string(info.rc))
            return False
        return True

    def _topic(self, kind: str, device: str | None = None) -> str:
        return topic(self.group_id, kind, self.edge_node_id, device)
