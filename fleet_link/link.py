"""The node's side of the fleet link: one MQTT session fed by the durable outbox.

One thread owns the paho client: it connects (TLS, credentials, last will), reconnects with
exponential backoff and jitter, sends outbox rows in order with at most ``max_inflight``
unacknowledged, at most ``replay_rate`` per second, and marks rows acknowledged on PUBACK.
A fresh paho client is made for every connection, so nothing paho kept in memory from a dead
connection is sent again behind the outbox's back: after a reconnect the outbox itself is
the only source, replayed from its oldest unacknowledged row.

With several broker endpoints (``mqtt.broker`` and ``mqtt.brokers``: members of one cluster)
a lost connection moves the node to the next member at once; only when a whole round of
members refused does the backoff grow. Nothing else changes on a move: the same outbox (so
the same sequence numbers, resent from the oldest unacknowledged row), the next session
number, the same subscriptions made again on the new member.

Commands are admitted on the network thread (rate limit per name, see
:class:`fleet_link.commands.CommandInbox`) and run by two more threads, one per lane, so a slow
handler never stalls the network loop and a flood of commands never delays a ``route``.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import secrets
import select
import socket
import ssl
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from fleet_link import safe_json, topics
from fleet_link.commands import (
    BULK,
    PRIORITY,
    CommandError,
    CommandInbox,
    CommandRegistry,
    Inbound,
    Prepared,
)
from fleet_link.config import MqttConfig, parse_broker_url
from fleet_link.envelope import ENVELOPE_KEYS, encode, utc_stamp
from fleet_link.outbox import PRIORITY_EVENT, PRIORITY_TELEMETRY, Outbox, Row
from fleet_link.telemetry import Deadband

log = logging.getLogger("fleet_link.link")

_FETCH_MAX = 1000
_BATCH = 32  # rows per turn below which the sender pauses to let more gather
_GATHER_S = 0.001
# An idle sender waits this long on the socket: appends, retained publishes and commands wake
# it at once, so this only paces housekeeping (a fleet of virtual nodes in one process: 50
# wake-ups a second each cost ~0.5 % of a core per node at 20 ms)
_IDLE_WAIT_S = 0.1
_ACK_WAIT_S = 0.02  # nothing sent, PUBACKs awaited (they, or an append, wake the wait at once)
_CHANNELS_REMEMBERED = 4096  # (kind, name) -> (channel, topic), checked once each
DEAD_LETTER_FAULT = "outbox_dead_letter"
WILL_REASON = "connection lost"  # the reason of the last will (and of nothing else)
_DEAD_LETTER_FAULT_S = 300.0  # the fault clears this long after the last dead letter
_DROPS_TO_DEAD_LETTER = 3  # sessions in a row lost with the same row first in flight
_PACKET_OVERHEAD = 16  # PUBLISH bytes beside topic and payload (header, lengths, id, props)
_KEEP_MEMBER = 256  # a placeholder keeps members up to this many JSON bytes...
_KEEP_TOTAL = 2048  # ...and this many in all
_HEAD_BYTES = 128  # first bytes of a dead letter shown in its fault event
_SMALL_ROW = 4096  # a broker refusing a row this small does so for another reason than size
_NAMES = ("kind", "group", "command", "request_id", "ok")  # kept by the smallest placeholder


def jittered(delay: float) -> float:
    """A pause between half and all of ``delay``, so a fleet that lost its broker together
    does not reconnect in step (the delay itself doubles per failure up to the cap)."""
    return delay * random.uniform(0.5, 1.0)


def apply_credentials(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Username/password and TLS of ``cfg`` on a paho client (every client of a node)."""
    if cfg.username:
        password = None
        if cfg.password_file:
            password = Path(cfg.password_file).read_text(encoding="utf-8").strip()
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=cfg.tls.ca_file,
            certfile=cfg.tls.cert_file,
            keyfile=cfg.tls.key_file,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(cfg.tls.insecure_skip_hostname_check)


def _turn(client: mqtt.Client, timeout: float, wake: socket.socket | None = None) -> MQTTErrorCode:
    """One turn of the network loop: wait up to ``timeout`` for the socket, read what came,
    write what is queued, keepalive. paho's external-loop calls (``loop_read``,
    ``loop_write``, ``loop_misc``) rather than ``loop()``: no wake-up socket pair, so a publish
    from this thread costs no extra system call to wake a loop that is already running."""
    sock = client.socket()
    if sock is None:
        return MQTTErrorCode.MQTT_ERR_NO_CONN
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted, do not wait
    if pending is not None and pending() > 0:
        readable = True
    else:
        try:
            wlist = [sock] if client.want_write() else []
            rlist = [sock] if wake is None else [sock, wake]
            ready = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError, TypeError):  # closed under us
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if wake is not None and wake in ready[0]:
            try:
                wake.recv(4096)  # an append woke the idle sender: drain the nudges
            except OSError:
                pass
        readable = sock in ready[0]
    if readable:
        rc = client.loop_read()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return rc
    if client.want_write():
        rc = client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return rc
    return client.loop_misc()


_TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux


def _cork(client: mqtt.Client, on: bool) -> bool:
    """Hold (or release) small TCP segments while a batch of publishes is written, so the
    batch leaves as few full segments instead of one per message (the broker then reads and
    acknowledges it in bulk). Released right after the batch: no latency is added."""
    sock = client.socket()
    if _TCP_CORK is None or sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1 if on else 0)
    except (OSError, ValueError, AttributeError):
        return False
    return True


class _RateLimit:
    """Token bucket; rate 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 0.05)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def allowance(self) -> int:
        if self.rate <= 0:
            return _FETCH_MAX
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        if self.rate > 0:
            self.tokens -= n


class EdgeLink:
    """Publish events and telemetry durably, keep a retained state, answer commands."""

    def __init__(
        self,
        cfg: MqttConfig,
        site: str,
        node: str,
        *,
        firmware_version: str = "",
        config_version: str = "",
        registry: CommandRegistry | None = None,
    ) -> None:
        self.cfg = cfg
        self.site = topics.check_level(site, "site")
        self.node = topics.check_level(node, "node")
        self.prefix = topics.node_prefix(site, node)
        self.firmware_version = firmware_version
        self.config_version = config_version
        self.outbox = Outbox(cfg.outbox)
        self.commands = registry or CommandRegistry(
            cfg.commands.limits,
            cfg.commands.max_payload_bytes,
            cfg.commands.max_depth,
            cfg.commands.max_age_s,
        )
        self._register_builtins()
        self._deadband = Deadband(cfg.telemetry)
        self._faults: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.inbox = CommandInbox(self.commands, cfg.commands)
        self._threads: list[threading.Thread] = []
        self._started = utc_stamp()
        self._started_mono = time.monotonic()
        self.session = self.outbox.counter("session")
        self._acked_seq: dict[str, int] = {}
        self._channels: dict[tuple[str, str] | str, tuple[str, str]] = {}
        self._progress_due = 0.0
        self._closed = False
        # A nudge for the sender when it waits idle on the socket: a new message then leaves
        # at once rather than at the end of the wait (the brain's round trip is latency).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._idle = False
        self._state_due = 0.0
        # retained publishes of plain JSON outside the outbox (a node's config/status), sent
        # by the network thread on this connection: (topic, payload, done, result)
        self._retained: queue.SimpleQueue[tuple[str, bytes, threading.Event, list[bool]]] = (
            queue.SimpleQueue()
        )
        self._retained_mids: dict[int, tuple[threading.Event, list[bool]]] = {}
        self.rejected = 0
        self.connects = 0
        self.loop_errors = 0  # exceptions the network thread survived (logged)
        self._server_max = 0  # MQTT 5 CONNACK Maximum Packet Size (0: not announced)
        self._suspect = (0, 0)  # (row alone in flight when sessions were lost, how many)
        self._probe_until = 0  # after a lost session: rows up to this id go one at a time
        self._replaced: set[int] = set()  # rows already replaced by a placeholder
        self._dead_letter_at = 0.0  # monotonic time of the last dead letter (0: none active)
        self.endpoints = cfg.endpoints
        self._endpoint = 0  # index in endpoints of the member tried next / connected to
        self.failovers = 0  # moves to another member after an established connection was lost

    @property
    def broker_url(self) -> str:
        """The broker member this link is connected to (or tries next)."""
        return self.endpoints[self._endpoint]

    # public API -----------------------------------------------------------------------------
    def start(self) -> EdgeLink:
        for name, target, args in (
            ("fleet-link", self._run, ()),
            ("fleet-commands", self._run_commands, (BULK,)),
            ("fleet-commands-priority", self._run_commands, (PRIORITY,)),
        ):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained 'offline', reason 'shutdown'), disconnect, close the outbox."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self.outbox.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> EdgeLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish_event(self, kind: str, data: dict[str, Any]) -> int:
        """Store an event durably for sending; returns its sequence number on its channel.

        A full or failing disk does not raise (``outbox.on_store_error: spill``): the event
        keeps its number, waits in memory, is sent from there and stored when the disk takes
        writes again (``outbox.storage``, ``store_errors``, ``spilled`` in the state). A body
        over ``max_message_bytes`` goes out as a placeholder marked ``truncated`` under its
        number (see docs/mqtt.md, "When storage or the network refuses a message")."""
        return self._append(("events", kind), PRIORITY_EVENT, {"kind": kind, "data": data})

    def recent_events(self, kind: str, limit: int = 256) -> list[dict[str, Any]]:
        """The data of the last ``limit`` events of ``kind`` this node committed to its
        outbox, newest first, this run's and earlier runs' alike (the outbox outlives the
        process). Unreadable rows are skipped."""
        out: list[dict[str, Any]] = []
        for payload in self.outbox.recent(topics.channel("events", kind), limit):
            try:
                body = json.loads(payload)
            except ValueError:  # a truncation placeholder is JSON too; anything else: skip
                continue
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, dict):
                out.append(data)
        return out

    def publish_telemetry(self, group: str, values: dict[str, Any], reason: str = "forced") -> int:
        """Store a telemetry message regardless of deadbands."""
        body = {"group": group, "reason": reason, "values": values}
        return self._append(("telemetry", group), PRIORITY_TELEMETRY, body)

    def report_telemetry(
        self, group: str, values: dict[str, Any], now: float | None = None
    ) -> int | None:
        """Report-by-exception: store only when the deadband or the period says so."""
        reason = self._deadband.decide(group, values, time.monotonic() if now is None else now)
        if reason is None:
            return None
        return self.publish_telemetry(group, values, reason)

    def set_fault(self, code: str, active: bool, **info: Any) -> int:
        """Raise or clear a fault: an events/fault message, and the list in the state."""
        with self._lock:
            if active:
                self._faults[code] = info
            else:
                self._faults.pop(code, None)
        self._state_due = 0.0
        return self.publish_event("fault", {"code": code, "active": active, **info})

    def wait_drained(self, timeout: float) -> bool:
        """True once the broker acknowledged everything stored (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.stats().depth == 0:
                return True
            time.sleep(0.02)
        return self.outbox.stats().depth == 0

    def state(self, status: str = "online", reason: str = "") -> dict[str, Any]:
        """The body of the retained state message."""
        with self._lock:
            acked = dict(self._acked_seq)
            faults = sorted(self._faults)
        body: dict[str, Any] = {
            "status": status,
            "firmware_version": self.firmware_version,
            "config_version": self.config_version,
            "started": self._started,
            "outbox": asdict(self.outbox.stats()),
            "acked": acked,
            "faults": faults,
        }
        if reason:
            body["reason"] = reason
        return body

    # internals: storing ---------------------------------------------------------------------
    def _append(self, where: tuple[str, str] | str, priority: int, body: dict[str, Any]) -> int:
        """Commit a message on channel ``where``, (kind, name) or a channel already checked;
        returns its sequence number."""
        try:
            chan, topic = self._channels[where]
        except KeyError:
            # checked once per channel, then remembered
            chan = where if isinstance(where, str) else topics.channel(*where)
            topic = f"{self.prefix}/{chan}"
            if len(self._channels) < _CHANNELS_REMEMBERED:
                self._channels[where] = (chan, topic)
        node, session, limit = self.node, self.session, self.cfg.max_message_bytes
        room = limit - len(topic)
        oversize: list[bytes] = []

        def make(seq: int) -> bytes:
            payload = encode(node, session, seq, body)
            if len(payload) > room:  # replaced under the same seq: no gap, no wedge
                oversize.append(payload)
                payload = _placeholder(node, session, seq, None, body, len(payload), limit)
            return payload

        seq = self.outbox.append(chan, topic, priority, make)
        if oversize:
            row = Row(0, topic, oversize[0], chan, seq, priority)
            self._dead_lettered(row, oversize[0], f"over mqtt.max_message_bytes {limit}")
        if self._idle:
            try:
                self._wake_w.send(b"\0")
            except OSError:  # full (already nudged) or closed: the sender wakes anyway
                pass
        return seq

    # internals: the network thread ----------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        cfg = self.cfg
        client_id = cfg.client_id or f"wolfpack-{self.site}-{self.node}"
        if cfg.unique_client_id:
            client_id = f"{client_id}-{secrets.token_hex(4)}"
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        # The sender keeps at most max_inflight outbox rows in flight itself (_pump); a limit in
        # paho too would only add its scan of every message in flight on each PUBACK.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        apply_credentials(client, cfg)
        client.will_set(f"{self.prefix}/state", self.will_payload(), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _run(self) -> None:
        """The network thread: connect, serve, reconnect with backoff. It survives every
        exception (a full disk, a paho or callback error): logged, counted in
        ``loop_errors``, the connection dropped and made again after the backoff.

        With several endpoints a lost or refused connection moves to the next one after
        the first (short) delay; the delay doubles only once every endpoint has failed in a
        row, so a fleet whose member died spreads over the others within reconnect_min_s."""
        delay = self.cfg.reconnect_min_s
        failed_in_row = 0
        while not self._stop.is_set():
            established = False
            try:
                established = self._connect_and_serve()
            except Exception:
                self.loop_errors += 1
                self.connected.clear()
                log.exception("fleet link network thread: error (recovering)")
            if self._stop.is_set():
                break
            if established:
                delay = self.cfg.reconnect_min_s
                failed_in_row = 0
            else:
                failed_in_row += 1
            if len(self.endpoints) > 1:
                self._endpoint = (self._endpoint + 1) % len(self.endpoints)
                if established:
                    self.failovers += 1
                log.info("moving to broker %s", self.broker_url)
            pause = jittered(delay)
            log.info("reconnecting in %.1f s", pause)
            self._stop.wait(pause)
            if failed_in_row and failed_in_row % len(self.endpoints) == 0:
                delay = min(delay * 2, self.cfg.reconnect_max_s)

    def _connect_and_serve(self) -> bool:
        """One connection, from connect to drop; True if it was established."""
        client = self._new_client()
        try:
            kwargs: dict[str, Any] = {"keepalive": self.cfg.keepalive_s}
            if self.cfg.protocol == "5":
                kwargs["clean_start"] = True
            host, port, _tls = parse_broker_url(self.broker_url)
            client.connect(host, port, **kwargs)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot reach broker %s: %s", self.broker_url, exc)
            _close_socket(client)
            return False
        try:
            return self._serve(client)
        finally:
            _close_socket(client)

    def _serve(self, client: mqtt.Client) -> bool:
        """Run one connection until it drops or we stop; True if it was established."""
        self._server_max = 0
        self._inflight: dict[int, Row] = {}
        self._acks: list[int] = []
        self._cursor = 0
        self.outbox.resync_pending()  # everything above the watermark goes out again
        for done, result in self._retained_mids.values():  # their PUBACKs died with the old
            result[0] = False  # connection; a message id of the new one must not match them
            done.set()
        self._retained_mids.clear()
        self._refused = ""
        limiter = _RateLimit(self.cfg.outbox.replay_rate)
        connack_deadline = time.monotonic() + self.cfg.keepalive_s
        established = False
        busy = False
        waiting = False
        while not self._stop.is_set():
            # An append nudges a sender that sent nothing last turn; one waiting only for
            # PUBACKs sleeps on the socket (a PUBACK wakes it) instead of turning every 2 ms:
            # that spin cost a fleet of virtual nodes most of its CPU on a slow broker.
            self._idle = not busy
            wait = 0.002 if busy else (_ACK_WAIT_S if waiting else _IDLE_WAIT_S)
            rc = _turn(client, wait, self._wake_r)
            self._idle = False
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.warning("connection to %s lost: %s", self.broker_url, mqtt.error_string(rc))
                break
            if self._refused:
                log.error("broker refused the connection: %s", self._refused)
                break
            if not self.connected.is_set():
                if time.monotonic() > connack_deadline:
                    log.warning("no CONNACK within %d s", self.cfg.keepalive_s)
                    break
                continue
            established = True
            self._send_retained(client)
            self._settle_acks()
            sent = self._pump(client, limiter)
            busy = sent > 0
            waiting = bool(self._inflight)
            self._housekeeping(client)
            if busy and sent < _BATCH:
                # Few rows were ready: let messages and PUBACKs gather for a moment, so each
                # turn of the loop (and each system call) serves many. Costs at most this
                # pause of latency; an idle link waits on the socket and the append nudge.
                time.sleep(_GATHER_S)
        if self._stop.is_set() and self.connected.is_set():
            self._goodbye(client)
        elif established:
            self._note_drop()
        self.connected.clear()
        if self._stop.is_set():
            client.disconnect()
        self.outbox.save_progress()
        return established

    def _on_connect(
        self, client: mqtt.Client, _ud: object, _flags: object, reason: Any, _props: object
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        self.session = self.outbox.bump("session")
        self.connects += 1
        self._server_max = int(getattr(_props, "MaximumPacketSize", 0) or 0)
        client.subscribe(f"{self.prefix}/cmd/+", qos=self.cfg.command_qos)
        self._publish_state(client, "online")
        self.connected.set()
        log.info("connected to %s, session %d", self.broker_url, self.session)

    def _on_publish(
        self, _c: mqtt.Client, _ud: object, mid: int, reason: Any, _props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.rejected += 1
            log.error("broker refused message %d: %s", mid, reason)
        waiter = self._retained_mids.pop(mid, None)
        if waiter is not None:
            waiter[1][0] = not getattr(reason, "is_failure", False)
            waiter[0].set()
            return
        self._acks.append(mid)

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = topics.parse(msg.topic)
        except topics.TopicError:
            log.warning("ignored message on %r: not a topic of the namespace", msg.topic)
            return
        if (parsed.site, parsed.node, parsed.kind) != (self.site, self.node, "cmd"):
            log.warning("ignored message on %r: not this node's command topic", msg.topic)
            return
        try:
            self.inbox.offer(parsed.name, bytes(msg.payload), retained=bool(msg.retain))
        except Exception:  # nothing may escape a paho callback: it would end the connection
            log.exception("command on %r could not be admitted", msg.topic)

    def _settle_acks(self) -> None:
        if not self._acks:
            return
        acks, self._acks = self._acks, []
        rows = [self._inflight.pop(mid) for mid in acks if mid in self._inflight]
        # Everything sent below the oldest row still in flight has been acknowledged.
        # (a dict keeps insertion order and rows are sent in id order: the first is the oldest)
        mark = next(iter(self._inflight.values())).id - 1 if self._inflight else self._cursor
        self.outbox.acknowledged(len(rows), mark)
        with self._lock:
            for r in rows:
                if r.seq > self._acked_seq.get(r.channel, 0):
                    self._acked_seq[r.channel] = r.seq

    def _pump(self, client: mqtt.Client, limiter: _RateLimit) -> int:
        """Send the next rows (as many as the window and the rate allow); how many."""
        room = self.cfg.outbox.max_inflight - len(self._inflight)
        if self._probe_until:  # one at a time, so a row the broker drops us over is known
            if self._cursor >= self._probe_until and not self._inflight:
                self._probe_until = 0
            elif self._cursor < self._probe_until:
                room = min(room, 1 - len(self._inflight))
        allowance = limiter.allowance()
        want = min(room, allowance, _FETCH_MAX)
        if want <= 0:
            return 0
        rows = self.outbox.fetch(self._cursor, want)
        if not rows:
            return 0
        inflight = self._inflight
        publish = client.publish
        corked = len(rows) > 1 and _cork(client, True)
        limit = self._send_limit()
        try:
            for row in rows:
                if len(row.payload) + len(row.topic) > limit:
                    row = self._replace_row(row, f"over the send limit {limit}")
                info = publish(row.topic, row.payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                inflight[info.mid] = row
                self._cursor = row.id
        finally:
            if corked:
                _cork(client, False)
        limiter.spend(len(rows))
        return len(rows)

    def _housekeeping(self, client: mqtt.Client) -> None:
        now = time.monotonic()
        if now >= self._progress_due:
            self._progress_due = now + 0.2
            self.outbox.retry()  # what the disk refused, stored once it takes writes again
            self.outbox.save_progress()
            if self._dead_letter_at and now - self._dead_letter_at > _DEAD_LETTER_FAULT_S:
                self._dead_letter_at = 0.0
                self.set_fault(DEAD_LETTER_FAULT, False)
        if now >= self._state_due:
            self._state_due = now + self.cfg.state_interval_s
            self._publish_state(client, "online")
            self.outbox.prune_kept()

    # internals: messages the network will not take ----------------------------------------
    def _send_limit(self) -> int:
        """Largest topic + payload sent: the config's, and the broker's (MQTT 5 CONNACK)."""
        limit = self.cfg.max_message_bytes
        if self._server_max:
            limit = min(limit, self._server_max - _PACKET_OVERHEAD)
        return limit

    def _note_drop(self) -> None:
        """An established session was lost with rows in flight. Which row the broker may have
        refused is unknown while several were in flight, so the rows that were in flight
        are sent again one at a time (the probe). A row alone in flight when
        _DROPS_TO_DEAD_LETTER sessions in a row were lost is refused by the broker (too large
        for a limit it did not announce, say): it is replaced so the rest can flow."""
        if not self._inflight:
            return
        rows = list(self._inflight.values())
        self._probe_until = max(self._probe_until, rows[-1].id)
        if len(rows) > 1:
            return
        row = rows[0]
        count = self._suspect[1] + 1 if self._suspect[0] == row.id else 1
        self._suspect = (row.id, count)
        if count >= _DROPS_TO_DEAD_LETTER and len(row.payload) <= _SMALL_ROW:
            # not a size limit (a denied topic, say): replacing would not help, and throwing
            # rows away would turn a misconfiguration into data loss; it stays first, loudly
            log.error(
                "%s #%d (%d bytes) was alone in flight when %d sessions in a row were lost: "
                "the broker refuses it (ACL?); it is kept and sent again",
                row.channel,
                row.seq,
                len(row.payload),
                count,
            )
        elif count >= _DROPS_TO_DEAD_LETTER:
            self._suspect = (0, 0)
            log.error(
                "%s #%d was alone in flight when %d sessions in a row were lost: replacing it",
                row.channel,
                row.seq,
                count,
            )
            self._replace_row(row, f"{count} sessions lost with it alone in flight")

    def _replace_row(self, row: Row, reason: str) -> Row:
        """Replace a stored row by its placeholder (same channel and seq), keep the original
        as a dead letter and raise the fault. A row already replaced gets the smallest
        placeholder: an empty body marked truncated."""
        minimal = row.id in self._replaced
        self._replaced.add(row.id)
        if len(self._replaced) > 1024:
            self._replaced = {row.id}
        payload = _placeholder_from(row.payload, len(row.payload), self._send_limit(), minimal)
        new = self.outbox.replace_row(row, payload)
        self._dead_lettered(row, row.payload, reason)
        return new

    def _dead_lettered(self, row: Row, original: bytes, reason: str) -> None:
        """Keep the original and raise the fault (its event names channel, seq, size and the
        first bytes). Never raises: this runs on the publisher's and the network's paths."""
        try:
            self.outbox.dead_letter(row, original, reason)
            self._dead_letter_at = time.monotonic()
            log.error(
                "dead letter: %s #%d, %d bytes (%s); a placeholder marked truncated went in "
                "its place",
                row.channel,
                row.seq,
                len(original),
                reason,
            )
            self.set_fault(
                DEAD_LETTER_FAULT,
                True,
                severity="warning",
                message=f"{row.channel} #{row.seq} ({len(original)} bytes) replaced by a "
                f"placeholder: {reason}",
                channel=row.channel,
                seq=row.seq,
                bytes=len(original),
                limit=self._send_limit(),
                head=original[:_HEAD_BYTES].decode("utf-8", "replace"),
            )
        except Exception:
            log.exception("dead letter %s #%d could not be reported", row.channel, row.seq)

    def _publish_state(self, client: mqtt.Client, status: str, reason: str = "") -> Any:
        seq = self.outbox.bump("seq:state")
        payload = encode(self.node, self.session, seq, self.state(status, reason))
        return client.publish(f"{self.prefix}/state", payload, qos=1, retain=True)

    def will_payload(self) -> bytes:
        """The last will, registered at connect and published by the broker when the
        connection dies: only what is true then. Status offline, reason 'connection lost', the
        session that died (the next connect's number); no snapshot of the node at connect (its
        state, devices, outbox and faults were true at connect, not at death). ``seq`` 0: no
        numbered state (a consumer takes a will as the newest state when it arrives, whatever
        its seq); ``ts`` is when the will was registered (the connect), not the death: the
        time of death is its arrival (docs/mqtt.md, "state")."""
        body = {"status": "offline", "reason": WILL_REASON}
        return encode(self.node, self.session + 1, 0, body)

    def _goodbye(self, client: mqtt.Client) -> None:
        info = self._publish_state(client, "offline", "shutdown")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not info.is_published():
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self._settle_acks()

    def request_state(self) -> None:
        """Publish the state at the next turn of the loop (after a fault, a config change)."""
        self._state_due = 0.0

    def publish_retained(self, subtopic: str, body: dict[str, Any], timeout: float = 10.0) -> bool:
        """Publish ``body`` (plain JSON) retained at ``<prefix>/<subtopic>`` on this link's
        own connection; True once the broker acknowledged it within ``timeout``. For the
        node's config/status: a second connection with the node's credential would replace
        this one where the broker binds the client id to the user (configs/mosquitto)."""
        done, result = threading.Event(), [False]
        payload = json.dumps(body).encode()
        self._retained.put((f"{self.prefix}/{subtopic}", payload, done, result))
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        done.wait(timeout)
        return result[0]

    def _send_retained(self, client: mqtt.Client) -> None:
        while True:
            try:
                topic, payload, done, result = self._retained.get_nowait()
            except queue.Empty:
                return
            if done.is_set():
                continue  # its caller gave up waiting
            info = client.publish(topic, payload, qos=1, retain=True)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                done.set()
                continue
            self._retained_mids[info.mid] = (done, result)

    # internals: commands --------------------------------------------------------------------
    def _register_builtins(self) -> None:
        from fleet_link import schemas

        self.commands.register(
            "ping",
            lambda _args: {
                "uptime_s": round(time.monotonic() - self._started_mono, 3),
                "session": self.session,
                "outbox": asdict(self.outbox.stats()),
            },
            schemas.load("cmd-ping.json"),
            "answers with uptime, session and outbox stats",
        )
        self.commands.register(
            "replay",
            self._replay,
            schemas.load("cmd-replay.json"),
            "send kept messages of a channel again (a consumer saw a gap)",
        )

    def _replay(self, args: dict[str, Any]) -> dict[str, Any]:
        chan, first, last = args["channel"], args["from_seq"], args["to_seq"]
        if first > last:
            raise CommandError("out_of_range", f"from_seq {first} > to_seq {last}", "args")
        count = self.outbox.requeue(chan, first, last)
        stored = self.outbox.available(chan, first, last)
        return {"requeued": count, "stored": stored, "missing": last - first + 1 - stored}

    def _run_commands(self, lane: str) -> None:
        """One lane's thread: answer its commands in order; no command can stop it."""
        while not self._stop.is_set():
            item = self.inbox.take(lane, 0.2)
            if item is None:
                continue
            try:
                self._handle_command(item)
            except Exception:  # a command must never take the node down
                log.exception("command %s could not be answered", item.name)

    def _handle_command(self, item: Inbound) -> None:
        """Answer one command: a refusal from admission, the stored first result of the same
        (command, request id), or a new run. Request ids are scoped by command name: an id
        reused for another command runs that command."""
        name = item.name
        if item.refusal is not None:
            outcome = item.refusal
        else:
            prepared: Prepared = self.commands.prepare(name, item.payload)
            rid = prepared.request_id
            stored = self._stored_result(name, rid) if rid is not None else None
            if stored is not None:
                self._append(("cmd_result", name), PRIORITY_EVENT, {**stored, "replayed": True})
                return
            outcome = self.commands.run(name, prepared)
        body = {"request_id": outcome.request_id, **outcome.body}
        if outcome.remember and outcome.request_id is not None:
            self.outbox.store_result(
                _result_key(name, outcome.request_id),
                name,
                json.dumps(body),
                time.time(),
                self.cfg.commands.remember_results,
            )
        self._append(("cmd_result", name), PRIORITY_EVENT, body)

    def _stored_result(self, name: str, rid: str) -> dict[str, Any] | None:
        """The remembered result of (command, request id); also finds one stored under the
        bare id before ids were scoped by name, if it answered the same command."""
        for key in (_result_key(name, rid), rid):
            text = self.outbox.stored_result(key)
            if text is None:
                continue
            try:
                body = safe_json.loads_object(text)
            except safe_json.DecodeError:
                continue
            if body.get("command") == name and body.get("request_id") == rid:
                return body
        return None


def _result_key(name: str, rid: str) -> str:
    return f"{name}/{rid}"


def _close_socket(client: mqtt.Client) -> None:
    sock = client.socket()
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


_PLACEHOLDER_MAX = 4096


def _json_len(value: Any) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":")))
    except (TypeError, ValueError):
        return 1 << 30


def _placeholder_body(body: dict[str, Any], size: int, limit: int) -> dict[str, Any]:
    """What a message too large to send becomes: its small members (and the small members of
    its objects: a parcel record keeps its id and outcome, loses its story), ``truncated``
    and what was left out. A few KB at most, whatever the body."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    budget = _KEEP_TOTAL

    def keep(key: str, value: Any, into: dict[str, Any], name: str) -> None:
        nonlocal budget
        cost = _json_len(value) + _json_len(key) + 2  # as encoded: escapes count
        if cost <= _KEEP_MEMBER and cost <= budget:
            into[key] = value
            budget -= cost
        else:
            dropped.append(name)

    for key, value in body.items():
        if key in ENVELOPE_KEYS or key in ("truncated", "original_bytes", "dropped"):
            continue
        if isinstance(value, dict) and _json_len(key) <= 66:
            budget -= _json_len(key) + 4  # the member's name and braces
            inner: dict[str, Any] = {}
            for k2, v2 in value.items():
                keep(str(k2), v2, inner, f"{key}.{k2}")
            out[key] = inner
        else:
            keep(key, value, out, key)
    out["truncated"] = True
    out["original_bytes"] = size
    out["limit"] = limit
    out["dropped"] = [d[:64] for d in dropped[:16]] + (
        [f"... {len(dropped) - 16} more"] if len(dropped) > 16 else []
    )
    return out


def _placeholder(
    node: str,
    session: int,
    seq: int,
    ts: str | None,
    body: dict[str, Any],
    size: int,
    limit: int,
    minimal: bool = False,
) -> bytes:
    if minimal:  # the names that say what it was, and the marker
        out = {k: body[k] for k in _NAMES if k in body and _json_len(body[k]) <= 80}
        out.update(truncated=True, original_bytes=size, limit=limit)
    else:
        out = _placeholder_body(body, size, limit)
    encoded = encode(node, session, seq, out, ts)
    if len(encoded) > _PLACEHOLDER_MAX and not minimal:  # escapes made it bigger than planned
        return _placeholder(node, session, seq, ts, body, size, limit, minimal=True)
    return encoded


def _placeholder_from(payload: bytes, size: int, limit: int, minimal: bool) -> bytes:
    """The placeholder of a stored message: same node, session, seq and ts, from its JSON."""
    try:
        obj = json.loads(payload)
        node, session, seq, ts = obj["node"], obj["session"], obj["seq"], obj["ts"]
        body = {k: v for k, v in obj.items() if k not in ENVELOPE_KEYS}
        return _placeholder(node, session, seq, ts, body, size, limit, minimal)
    except (ValueError, KeyError, TypeError, RecursionError):
        return json.dumps({"truncated": True, "original_bytes": size}).encode()
