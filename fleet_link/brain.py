"""The brain's side of the fleet link: watch a site, get each message once and in order.

MQTT QoS 1 delivers at least once; a node replays its outbox after a reconnect. The brain
turns that into effectively-once: per (node, channel) it delivers sequence numbers in order
and drops what it already delivered. A gap (the broker died holding messages it had already
acknowledged) is filled by asking the node to ``replay`` the missing range from the messages
it keeps; a gap the node can no longer fill is reported as a :class:`Gap` after
``gap_timeout_s``. The retained state's ``acked`` map reveals messages lost at the tail.

Anyone with a credential of the site can publish on it, and a retained message reaches every
brain started later, so each message passes the bounded decoder (size, depth, integer digits:
:mod:`fleet_link.safe_json`) and its channel's schema (:mod:`fleet_link.inbound`) before use.
A refused one is counted by reason in ``rejected`` (see ``stats()``) and skipped; nothing a
message holds, and nothing a callback raises, stops the brain.

    brain = Brain("mqtt://broker:1883", site="dc-berlin", on_message=print).start()
    result = brain.command("cell-07", "ping", {}, timeout=5)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link import inbound, safe_json, topics
from fleet_link.config import parse_broker_url
from fleet_link.envelope import EnvelopeError, decode, utc_stamp

log = logging.getLogger("fleet_link.brain")


@dataclass(frozen=True)
class Message:
    """One event, telemetry message or command result, delivered once and in order."""

    node: str
    channel: str  # "events/parcel", "telemetry/belt", "cmd_result/ping"
    session: int
    seq: int
    ts: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.channel.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.channel.split("/", 1)[1]

    @property
    def data(self) -> dict[str, Any]:
        """The event's data, the telemetry values, or the command result body."""
        if self.kind == "events":
            return self.body.get("data", {})
        if self.kind == "telemetry":
            return self.body.get("values", {})
        return self.body


@dataclass(frozen=True)
class Gap:
    """Messages of a channel that never arrived and could not be replayed."""

    node: str
    channel: str
    from_seq: int
    to_seq: int


@dataclass
class NodeState:
    """The latest retained state of a node."""

    node: str
    status: str
    session: int
    ts: str
    body: dict[str, Any]
    received: float = field(default_factory=time.time)
    retained: bool | None = None  # the broker's stored copy sent at subscribing; None: unknown

    @property
    def online(self) -> bool:
        return self.status == "online"

    @property
    def outbox_depth(self) -> int:
        return int(self.body.get("outbox", {}).get("depth", 0))

    @property
    def faults(self) -> list[str]:
        return list(self.body.get("faults", []))


@dataclass(frozen=True)
class CommandResult:
    node: str
    command: str
    request_id: str | None
    ok: bool
    result: dict[str, Any]
    error: dict[str, Any] | None
    replayed: bool


class CommandTimeout(TimeoutError):
    pass


class _Channel:
    """Ordering and de-duplication of one (node, channel)."""

    def __init__(self, expected: int | None) -> None:
        self.expected = expected  # next seq to deliver; None until the first message
        self.held: dict[int, Message] = {}
        self.gap_since = 0.0
        self.asked_at = 0.0
        self.progress_at = 0.0  # when this channel last delivered something
        self.duplicates = 0


class Brain:
    def __init__(
        self,
        broker: str,
        site: str,
        *,
        on_message: Callable[[Message], None] | None = None,
        on_state: Callable[[NodeState], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        from_start: bool = False,
        gap_timeout_s: float = 30.0,
        replay_retry_s: float = 2.0,
        request_replays: bool = True,
        limits: safe_json.Limits = safe_json.DEFAULT,
    ) -> None:
        """``from_start``: expect every channel to begin at seq 1 (a fresh node); otherwise
        the first message seen on a channel sets where delivery starts. ``request_replays``
        False: never send 'replay' commands (a read-only monitor), gaps just time out.
        ``limits``: what the decoder accepts of a message (bytes, nesting, integer digits)."""
        self.site = topics.check_level(site, "site")
        self.host, self.port, tls = parse_broker_url(broker)
        self.on_message = on_message
        self.on_state = on_state
        self.on_gap = on_gap
        self.from_start = from_start
        self.gap_timeout_s = gap_timeout_s
        self.replay_retry_s = replay_retry_s
        self.request_replays = request_replays
        self.limits = limits
        self.rejected = safe_json.Rejections(log, "brain: message")
        self.nodes: dict[str, NodeState] = {}
        self.duplicates = 0
        self.gaps: list[Gap] = []
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._pending: dict[str, Future[CommandResult]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"wolfpack-brain-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self._client.max_inflight_messages_set(100)
        if username:
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set(ca_certs=ca_file)
        self._client.reconnect_delay_set(0.2, 5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._sub_mid = -1
        self._client.on_message = self._on_mqtt_message
        self._ticker: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    def start(self, wait_s: float = 10.0) -> Brain:
        self._client.connect_async(self.host, self.port, keepalive=10)
        self._client.loop_start()
        self._ticker = threading.Thread(target=self._tick, name="brain-gaps", daemon=True)
        self._ticker.start()
        if wait_s and not self.connected.wait(wait_s):
            self.stop()
            raise ConnectionError(f"brain could not connect to {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        if self._ticker is not None:
            self._ticker.join(2)

    def __enter__(self) -> Brain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # commands -------------------------------------------------------------------------------
    def send_command(
        self,
        node: str,
        name: str,
        args: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Future[CommandResult]:
        """Publish a command; the future resolves with the node's result."""
        rid = request_id or uuid.uuid4().hex
        future: Future[CommandResult] = Future()
        with self._lock:
            self._pending[rid] = future
        self.send_raw(
            node,
            name,
            json.dumps({"request_id": rid, "ts": utc_stamp(), "args": args or {}}).encode(),
        )
        return future

    def command(
        self,
        node: str,
        name: str,
        args: dict[str, Any] | None = None,
        timeout: float = 10.0,
        request_id: str | None = None,
    ) -> CommandResult:
        """Send a command and wait for its result; raise CommandTimeout when none comes."""
        future = self.send_command(node, name, args, request_id)
        try:
            return future.result(timeout)
        except TimeoutError:
            raise CommandTimeout(f"{node} did not answer {name!r} within {timeout} s") from None

    def send_raw(self, node: str, name: str, payload: bytes) -> None:
        """Publish any payload on a node's command topic (tests of the node's refusals)."""
        topic = topics.topic(self.site, node, topics.channel("cmd", name))
        self._client.publish(topic, payload, qos=1)

    def expect_result(self, request_id: str) -> Future[CommandResult]:
        """A future for the result of a command sent with send_raw."""
        future: Future[CommandResult] = Future()
        with self._lock:
            self._pending[request_id] = future
        return future

    def stats(self) -> dict[str, Any]:
        """Counters for a health page: rejected messages by reason, duplicates, gaps."""
        rejected = self.rejected.snapshot()
        return {
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "duplicates": self.duplicates,
            "gaps": len(self.gaps),
        }

    # receiving ------------------------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the brain: %s", reason)
            return
        _rc, self._sub_mid = client.subscribe(topics.site_filter(self.site), qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, *_rest: object) -> None:
        if mid == self._sub_mid:  # connected means: subscribed, nothing from now on is missed
            self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected.clear()

    def _on_mqtt_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        """paho's callback: nothing may escape it (paho would stop the loop for good)."""
        try:
            self._receive(msg.topic, msg.payload, retained=bool(msg.retain))
        except Exception as exc:  # a bug of ours or of a callback: count it, keep listening
            log.exception("message on %s could not be handled", msg.topic)
            self.rejected.count("internal_error", msg.topic, f"{type(exc).__name__}: {exc}")

    def _receive(self, topic: str, payload: bytes, retained: bool | None = None) -> None:
        """Decode, check and dispatch one message (also the entry of the property tests)."""
        try:
            parsed = topics.parse(topic)
        except topics.TopicError as exc:
            self.rejected.count("bad_topic", topic, str(exc))
            return
        if parsed.kind == "cmd":  # commands to nodes (ours among them): not for the brain
            return
        try:
            env = decode(payload, self.limits)
        except EnvelopeError as exc:
            self.rejected.count(exc.reason, topic, str(exc))
            return
        found = inbound.problems(parsed.kind, env.to_dict())
        if found:
            self.rejected.count(safe_json.INVALID_SCHEMA, topic, "; ".join(found[:3]))
            return
        if parsed.kind == "state":
            self._take_state(parsed.node, env.session, env.ts, env.body, retained)
            return
        message = Message(parsed.node, parsed.channel, env.session, env.seq, env.ts, env.body)
        for ready in self._order(message):
            self._deliver(ready)

    def _take_state(
        self, node: str, session: int, ts: str, body: dict[str, Any],
        retained: bool | None = None,
    ) -> None:
        state = NodeState(node, str(body.get("status", "unknown")), session, ts, body,
                          retained=retained)  # fmt: skip
        with self._lock:
            # The newest arrival wins: a last will carries the time and seq of the connect it
            # was registered at, yet the broker publishes it after every later state.
            self.nodes[node] = state
            for chan, acked in body.get("acked", {}).items():
                ch = self._channels.get((node, chan))
                if ch is None and self.from_start:
                    ch = self._channels[(node, chan)] = _Channel(1)
                if ch is not None and ch.expected is not None and acked >= ch.expected:
                    ch.gap_since = ch.gap_since or time.monotonic()
        if self.on_state:
            try:
                self.on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    def _order(self, m: Message) -> list[Message]:
        with self._lock:
            ch = self._channels.get((m.node, m.channel))
            if ch is None:
                ch = _Channel(1 if self.from_start else m.seq)
                self._channels[(m.node, m.channel)] = ch
            if m.seq < ch.expected or m.seq in ch.held:
                ch.duplicates += 1
                self.duplicates += 1
                return []
            ch.held[m.seq] = m
            ready = []
            while ch.expected in ch.held:
                ready.append(ch.held.pop(ch.expected))
                ch.expected += 1
            if ready:
                ch.progress_at = time.monotonic()
            if ch.held:
                ch.gap_since = ch.gap_since or time.monotonic()
            elif ready:
                ch.gap_since = 0.0
            return ready

    def _deliver(self, m: Message) -> None:
        if m.kind == "cmd_result":
            rid = m.body.get("request_id")
            with self._lock:
                future = self._pending.pop(rid, None) if rid else None
            if future is not None and not future.done():
                future.set_result(
                    CommandResult(
                        m.node,
                        m.name,
                        rid,
                        bool(m.body.get("ok")),
                        m.body.get("result", {}),
                        m.body.get("error"),
                        bool(m.body.get("replayed")),
                    )
                )
        if self.on_message:
            try:
                self.on_message(m)
            except Exception:
                log.exception("on_message callback failed")

    # gaps -----------------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._tick_once()
            except Exception:  # the gap watch must outlive any one bad turn
                log.exception("gap watch turn failed")

    def _tick_once(self) -> None:
        now = time.monotonic()
        asks: list[tuple[str, str, int, int]] = []
        given_up: list[tuple[Gap, list[Message]]] = []
        with self._lock:
            for (node, chan), ch in self._channels.items():
                if not ch.gap_since or ch.expected is None:
                    continue
                top = max(ch.held) - 1 if ch.held else self._acked(node, chan)
                if top < ch.expected:
                    ch.gap_since = 0.0
                    continue
                if not ch.held and now - ch.progress_at < 1.0:
                    continue  # behind the node's 'acked' but still receiving: just lagging
                if now - ch.gap_since > self.gap_timeout_s and ch.held:
                    gap = Gap(node, chan, ch.expected, min(ch.held) - 1)
                    ch.expected = min(ch.held)
                    ready = []
                    while ch.expected in ch.held:
                        ready.append(ch.held.pop(ch.expected))
                        ch.expected += 1
                    ch.gap_since = now if ch.held else 0.0
                    given_up.append((gap, ready))
                elif (
                    self.request_replays
                    and now - ch.asked_at > self.replay_retry_s
                    and now - ch.gap_since > 0.5
                ):
                    ch.asked_at = now
                    asks.append((node, chan, ch.expected, top))
        for node, chan, first, last in asks:
            log.info("asking %s to replay %s %d..%d", node, chan, first, last)
            args = {"channel": chan, "from_seq": first, "to_seq": last}
            self.send_command(node, "replay", args)
        for gap, ready in given_up:
            self.gaps.append(gap)
            log.warning(
                "gap %s %s %d..%d not recovered",
                gap.node,
                gap.channel,
                gap.from_seq,
                gap.to_seq,
            )
            if self.on_gap:
                try:
                    self.on_gap(gap)
                except Exception:
                    log.exception("on_gap callback failed")
            for m in ready:
                self._deliver(m)

    def _acked(self, node: str, chan: str) -> int:
        state = self.nodes.get(node)
        return int(state.body.get("acked", {}).get(chan, 0)) if state else 0
