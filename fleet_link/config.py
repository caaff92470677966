"""The `mqtt:` section of a board config, usable by fleet_link alone (tests, the brain SDK)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    """TLS to the broker: the CA that signed it and, for mutual TLS, this node's certificate."""

    ca_file: str = Field(description="PEM file of the CA that signed the broker's certificate")
    cert_file: str | None = Field(None, description="PEM client certificate (mutual TLS)")
    key_file: str | None = Field(None, description="PEM private key of cert_file")
    insecure_skip_hostname_check: bool = Field(
        False, description="accept a broker certificate whose name does not match (lab only)"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (mutual TLS)")
        return self


class OutboxConfig(_Strict):
    """The durable store every event and telemetry message passes through before the network."""

    path: str = Field(
        "/var/lib/wolfpack/outbox.sqlite3",
        description="SQLite file (WAL mode); on persistent storage, not tmpfs",
    )
    max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        description="size bound of stored messages; beyond it telemetry is dropped oldest-first, "
        "then events oldest-first; every drop is counted in the retained state message",
    )
    keep_sent: int = Field(
        20000,
        ge=0,
        description="acknowledged messages kept so a brain that saw a sequence gap can ask for "
        "them again (command 'replay'); they are the first to go when the store is full",
    )
    replay_rate: float = Field(
        10000.0,
        ge=0,
        description="most messages per second sent from the outbox (0: unlimited), so a node "
        "returning with a backlog does not flood the broker",
    )
    max_inflight: int = Field(
        200, ge=1, le=65535, description="QoS 1 messages sent but not yet acknowledged"
    )
    on_store_error: Literal["spill", "raise"] = Field(
        "spill",
        description="when the disk refuses a write (full, I/O error): 'spill' keeps the message "
        "in memory (spill_max_bytes), counts the error, reports it in the state and stores it "
        "once the disk takes writes again; 'raise' raises OutboxUnavailable to the publisher",
    )
    spill_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="memory held by messages the disk refused; beyond it unsent telemetry is "
        "dropped oldest-first, then unsent events oldest-first (counted like max_bytes drops)",
    )
    durability: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite synchronous mode. 'normal': survives kill -9 with nothing lost and "
        "power loss without corruption (the last moments may be rolled back); 'full': an fsync "
        "per message, nothing written is lost on power loss, much slower on SD cards",
    )


class TelemetryGroupConfig(_Strict):
    """One telemetry group: sent periodically and, between periods, when a value moves enough."""

    enabled: bool = Field(True, description="false: this group is not published")
    interval_s: float = Field(
        10.0, gt=0, description="publish at least this often, changed or not (a heartbeat)"
    )
    min_interval_s: float = Field(
        0.0, ge=0, description="publish at most this often, however much values change"
    )
    deadbands: dict[str, float] = Field(
        default_factory=dict,
        description="per numeric field: publish early when it moved more than this since the "
        "last publish; fields without a deadband publish on any change",
    )

    @field_validator("deadbands")
    @classmethod
    def _non_negative(cls, bands: dict[str, float]) -> dict[str, float]:
        for name, band in bands.items():
            if band < 0:
                raise ValueError(f"deadband of {name!r} is {band}; expected >= 0")
        return bands


class LimitConfig(_Strict):
    """Accepted range of one numeric command argument."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> LimitConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class RateLimitConfig(_Strict):
    """A token bucket: ``burst`` commands at once, refilled at ``per_s`` a second."""

    per_s: float = Field(gt=0, description="sustained commands per second")
    burst: int = Field(ge=1, description="commands accepted at once before the rate applies")


class CommandsConfig(_Strict):
    """Inbound commands from the brain."""

    limits: dict[str, dict[str, LimitConfig]] = Field(
        default_factory=dict,
        description="command name -> argument name -> {min, max}; a value outside is refused "
        "with an 'out_of_range' result",
    )
    remember_results: int = Field(
        10000, ge=1, description="request ids whose first result is kept for idempotent replays"
    )
    max_payload_bytes: int = Field(65536, ge=256, description="larger commands are refused")
    max_depth: int = Field(32, ge=2, le=512, description="deeper nested commands are refused")
    rate_limits: dict[str, RateLimitConfig] = Field(
        default_factory=lambda: {
            "route": RateLimitConfig(per_s=500, burst=1000),
            "replay": RateLimitConfig(per_s=50, burst=100),
            "config_push": RateLimitConfig(per_s=1, burst=3),
        },
        description="command name -> token bucket; a command over it is answered with a "
        "'rate_limited' error (not remembered: send it again later)",
    )
    default_rate_limit: RateLimitConfig = Field(
        default_factory=lambda: RateLimitConfig(per_s=20, burst=50),
        description="the bucket of each command not named in rate_limits",
    )
    priority: list[str] = Field(
        default_factory=lambda: ["route"],
        description="commands answered on their own lane, never queued behind the others "
        "(the brain's latency-critical answers)",
    )
    max_queued: int = Field(
        10000,
        ge=10,
        description="commands waiting per lane; beyond, a command is refused 'rate_limited'",
    )
    max_age_s: float = Field(
        30.0,
        ge=0,
        description="a command whose 'ts' is older than this (or this far in the future) when "
        "its turn comes is refused 'stale', not run: a 'start' a client queued while offline "
        "must not start a belt minutes later. Needs the clocks in sync (NTP); a command "
        "without 'ts' is not checked; 0: no check",
    )


class MqttConfig(_Strict):
    """How this node reaches the broker, and how it stores and paces what it sends."""

    broker: str = Field(
        "mqtt://127.0.0.1:1883",
        description="mqtt://host:port or mqtts://host:port (TLS; needs 'tls')",
    )
    brokers: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="more members of the same broker cluster (same scheme as 'broker'), tried "
        "in turn after it: on a lost connection the node moves to the next member at once, "
        "with its outbox, session counter and sequence numbers, and resends what was not "
        "acknowledged (docs/fleet-scale.md). RabbitMQ 3.10's MQTT plugin needs protocol '3.1.1'",
    )
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    command_qos: Literal[0, 1] = Field(
        1,
        description="QoS of the node's subscription to its commands. 0 on RabbitMQ 3.10: its "
        "QoS 1 subscription queue is a durable queue on the member the node first subscribed "
        "on, and while that member is down the node cannot subscribe on another one (the "
        "connection is closed: 'home node ... is down'). Commands are idempotent by request "
        "id and the brain sends one again when no result comes (docs/fleet-scale.md)",
    )
    client_id: str | None = Field(None, description="default: wolfpack-<site>-<node>")
    unique_client_id: bool = Field(
        False,
        description="add a fresh suffix to the client id at every connect, so a reconnect never "
        "races the broker's teardown of its previous connection. For RabbitMQ 3.10 clusters, "
        "whose takeover of a client id closed the new connection while the old one's queue "
        "was being deleted (docs/fleet-scale.md). The broker then no longer closes a second "
        "process running under the same node id: keep client-id-bound ACLs (configs/mosquitto) "
        "off with it",
    )
    username: str | None = Field(None, description="per-node credential (see configs/mosquitto)")
    password_file: str | None = Field(
        None, description="file holding the password (kept out of the config)"
    )
    tls: TlsConfig | None = None
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keepalive")
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(30.0, gt=0, description="reconnect delay cap (with jitter)")
    state_interval_s: float = Field(
        10.0, gt=0, description="how often the retained state is refreshed"
    )
    max_message_bytes: int = Field(
        16 * 1024,
        ge=4096,
        le=256 * 1024 * 1024,
        description="largest message sent (topic + payload bytes); a larger one is replaced, "
        "under its own seq, by a placeholder marked truncated, its original kept as a dead "
        "letter and a fault raised. Below the broker's limit: the embedded broker refuses "
        "packets over 20,480 bytes (topic + payload over 20,476), mosquitto's "
        "message_size_limit / max_packet_size as configured",
    )
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    telemetry: dict[str, TelemetryGroupConfig] = Field(
        default_factory=dict, description="telemetry groups by name"
    )
    commands: CommandsConfig = Field(default_factory=CommandsConfig)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://host:port or mqtts://host:port")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in broker URL: {exc}") from None
        return url

    @field_validator("brokers")
    @classmethod
    def _broker_urls(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            try:
                parse_broker_url(url)
            except ValueError as exc:
                raise ValueError(f"brokers[{i}]: {exc}") from None
        return urls

    @model_validator(mode="after")
    def _tls_matches_scheme(self) -> MqttConfig:
        if urlsplit(self.broker).scheme == "mqtts" and self.tls is None:
            raise ValueError("an mqtts:// broker needs a 'tls' section with at least ca_file")
        scheme = urlsplit(self.broker).scheme
        for i, url in enumerate(self.brokers):
            if urlsplit(url).scheme != scheme:
                raise ValueError(
                    f"brokers[{i}] is {urlsplit(url).scheme}:// but broker is {scheme}://: "
                    "every member of the list is reached the same way (one 'tls' section)"
                )
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s is greater than reconnect_max_s")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def endpoints(self) -> list[str]:
        """Every broker URL in the order tried: ``broker``, then ``brokers`` (repeats once)."""
        seen: list[str] = []
        for url in (self.broker, *self.brokers):
            if url not in seen:
                seen.append(url)
        return seen


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of an mqtt:// or mqtts:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {url!r}")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls
