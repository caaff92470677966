"""The vehicle's MQTT session for VDA 5050: subscriptions, last will, periodic messages.

QoS and retain come from :data:`fleet_link.vda5050.topics.DELIVERY` (the standard's rules).
On every (re)connection: ``connection`` ONLINE (retained, QoS 1), the factsheet (retained),
the subscriptions to ``order`` and ``instantActions`` (QoS 0), and a full state. The last
will is ``connection`` CONNECTIONBROKEN, retained, QoS 1. ``stop()`` publishes OFFLINE before
an orderly disconnect, so the broker sends no will.

These messages bypass the product's durable outbox on purpose: the standard makes them QoS 0
and a state is only worth its latest value; an outbox would replay stale positions.

The handler's callbacks run on paho's network thread; they must be quick (hand the fact to
the core and return). ``publish_state()`` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link import safe_json
from fleet_link.config import MqttConfig
from fleet_link.link import apply_credentials
from fleet_link.safe_json import DecodeError, Rejections
from fleet_link.vda5050 import codec
from fleet_link.vda5050.messages import Stamper
from fleet_link.vda5050.models import InstantActions, Order
from fleet_link.vda5050.topics import DELIVERY, VehicleTopics

log = logging.getLogger("fleet_link.vda5050")


class VehicleHandler(Protocol):
    """What the vehicle provides to its session (implemented by the vehicle node)."""

    def on_order(self, order: Order) -> None: ...

    def on_instant_actions(self, message: InstantActions) -> None: ...

    def on_refused(self, topic: str, reason: str, message: str, header_id: int | None) -> None:
        """A message on ``order``/``instantActions`` that was refused before use."""

    def on_connection(self, connected: bool) -> None: ...

    def state_body(self) -> Mapping[str, Any]:
        """The state message without its header (built by the core)."""

    def visualization_body(self) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        """(agvPosition, velocity) now; either may be None."""

    def factsheet_body(self) -> Mapping[str, Any]: ...


def _dumps(msg: Mapping[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode("utf-8")


class VehicleClient:
    """One vehicle's VDA 5050 session on one broker."""

    def __init__(
        self,
        mqtt_cfg: MqttConfig,
        topics: VehicleTopics,
        handler: VehicleHandler,
        *,
        state_interval_s: float = 30.0,
        visualization_interval_s: float | None = 1.0,
        min_state_interval_s: float = 0.0,
        limits: codec.ProtocolLimits = codec.DEFAULT_LIMITS,
        client_id: str | None = None,
    ) -> None:
        if not 0 < state_interval_s <= 30.0:
            raise ValueError(f"state_interval_s {state_interval_s} must be in (0, 30] s")
        self.cfg = mqtt_cfg
        self.topics = topics
        self.handler = handler
        self.state_interval_s = state_interval_s
        self.visualization_interval_s = visualization_interval_s
        self.min_state_interval_s = min_state_interval_s
        self.limits = limits
        self.client_id = client_id or f"vda5050-{topics.manufacturer}-{topics.serial_number}"
        self.stamper = Stamper(topics.manufacturer, topics.serial_number)
        self.rejections = Rejections(log, "VDA 5050 message")
        self.published: dict[str, int] = dict.fromkeys(DELIVERY, 0)
        self.not_sent: dict[str, int] = dict.fromkeys(DELIVERY, 0)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._last_state = 0.0
        self._last_vis = 0.0
        self._state_pending = False  # a change within min_state_interval_s of the last state
        self._timer: threading.Thread | None = None
        self._client = self._make_client()

    # -- life ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        v5 = self.cfg.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        apply_credentials(client, self.cfg)
        will = self.stamper.connection("CONNECTIONBROKEN")
        client.will_set(self.topics.topic("connection"), _dumps(will), qos=1, retain=True)
        client.reconnect_delay_set(
            max(1, round(self.cfg.reconnect_min_s)), max(1, round(self.cfg.reconnect_max_s))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background (and keep reconnecting) and start the periodic timer."""
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self._client.loop_start()
        self._timer = threading.Thread(target=self._periodic, name="vda5050-timer", daemon=True)
        self._timer.start()

    def stop(self, timeout: float = 2.0) -> None:
        """OFFLINE (retained), then an orderly disconnect: the broker sends no will."""
        self._stop.set()
        self._wake.set()
        if self._connected.is_set():
            info = self._publish("connection", self.stamper.connection("OFFLINE"))
            if info is not None:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError):
                    pass
        self._client.disconnect()
        self._client.loop_stop()
        if self._timer is not None:
            self._timer.join(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- outbound -----------------------------------------------------------------------

    def _publish(self, topic: str, msg: Mapping[str, Any]) -> mqtt.MQTTMessageInfo | None:
        rule = DELIVERY[topic]
        info = self._client.publish(
            self.topics.topic(topic), _dumps(msg), qos=rule.qos, retain=rule.retain
        )
        with self._lock:
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.published[topic] += 1
            else:
                self.not_sent[topic] += 1
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def publish_state(self) -> dict[str, Any] | None:
        """Stamp and publish the core's state now (any thread); returns the message. Within
        ``min_state_interval_s`` of the last one it is sent when that interval ends instead
        (changes close together become one message, as the standard recommends); None then."""
        if self.min_state_interval_s > 0:
            wait = self._last_state + self.min_state_interval_s - time.monotonic()
            if wait > 0:
                self._state_pending = True
                self._wake.set()
                return None
        self._state_pending = False
        msg = self.stamper.stamp("state", self.handler.state_body())
        self._last_state = time.monotonic()
        self._publish("state", msg)
        return msg

    def publish_factsheet(self) -> dict[str, Any]:
        msg = self.stamper.stamp("factsheet", self.handler.factsheet_body())
        self._publish("factsheet", msg)
        return msg

    def publish_visualization(self) -> dict[str, Any]:
        position, velocity = self.handler.visualization_body()
        msg = self.stamper.visualization(position, velocity)
        self._last_vis = time.monotonic()
        self._publish("visualization", msg)
        return msg

    def _periodic(self) -> None:
        """State at least every state_interval_s; visualization every interval."""
        while not self._stop.is_set():
            if not self._connected.is_set():
                self._wake.wait(1.0)  # on_connect wakes it; no timer runs while offline
                self._wake.clear()
                continue
            now = time.monotonic()
            due = self._last_state + self.state_interval_s
            if self._state_pending:
                due = min(due, self._last_state + self.min_state_interval_s)
            if self.visualization_interval_s is not None:
                due = min(due, self._last_vis + self.visualization_interval_s)
            self._wake.wait(max(0.0, due - now))
            self._wake.clear()
            if self._stop.is_set() or not self._connected.is_set():
                continue
            now = time.monotonic()
            try:
                since = now - self._last_state
                if since >= self.state_interval_s or (
                    self._state_pending and since >= self.min_state_interval_s
                ):
                    self.publish_state()
                vis = self.visualization_interval_s
                if vis is not None and now - self._last_vis >= vis:
                    self.publish_visualization()
            except Exception:  # a broken provider must not end the timer
                log.exception("VDA 5050 periodic publish failed")
                self._stop.wait(1.0)

    # -- network callbacks (paho's thread) -------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("VDA 5050 broker refused the connection: %s", reason)
            return
        self._publish("connection", self.stamper.connection("ONLINE"))
        client.subscribe(
            [
                (self.topics.topic("order"), DELIVERY["order"].qos),
                (self.topics.topic("instantActions"), DELIVERY["instantActions"].qos),
            ]
        )
        self._connected.set()
        try:
            self.handler.on_connection(True)
            self.publish_factsheet()
            self.publish_state()
        except Exception:
            log.exception("VDA 5050 handler failed after connecting")
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            log.warning("VDA 5050 broker connection lost: %s", reason)
            try:
                self.handler.on_connection(False)
            except Exception:
                log.exception("VDA 5050 handler failed after disconnecting")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        name = self.topics.name_of(message.topic)
        if name not in ("order", "instantActions"):
            return
        payload = bytes(message.payload)
        try:
            if name == "order":
                order = codec.decode_order(
                    payload, self.topics.manufacturer, self.topics.serial_number, self.limits
                )
            else:
                actions = codec.decode_instant_actions(
                    payload, self.topics.manufacturer, self.topics.serial_number, self.limits
                )
        except DecodeError as exc:
            self.rejections.count(exc.reason, message.topic, exc.message)
            try:
                self.handler.on_refused(
                    name, exc.reason, exc.message, codec.recover_header_id(payload)
                )
            except Exception:
                log.exception("VDA 5050 handler failed on a refused message")
            return
        try:
            if name == "order":
                self.handler.on_order(order)
            else:
                self.handler.on_instant_actions(actions)
        except Exception:
            log.exception("VDA 5050 handler failed on %s", name)


def decode_inbound(topic: str, payload: bytes) -> Order | InstantActions:
    """Decode an inbound payload by topic name (a convenience for tools and tests)."""
    if topic == "order":
        return codec.decode_order(payload)
    if topic == "instantActions":
        return codec.decode_instant_actions(payload)
    raise DecodeError(safe_json.INVALID_SCHEMA, f"{topic!r} is not an inbound topic")


__all__ = ["VehicleClient", "VehicleHandler", "decode_inbound"]
