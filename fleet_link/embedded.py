"""The embedded broker: the demo and a laptop need no mosquitto install.

It is iotcore's build of rumqttd (Rust, MIT; wheels for x86-64, aarch64 and armv7) run in a
child process. Measured here (DESIGN.md, bench/mqtt.py) it moves QoS 1 at mosquitto's rate,
loses nothing to a slow subscriber, and keeps retained messages and last wills; amqtt, the
in-process Python alternative, managed about a quarter of that. Its default listener speaks
MQTT 3.1.1, so a node using it sets ``protocol: "3.1.1"``. Production sites use mosquitto
(configs/mosquitto/) for TLS, per-node credentials and the ACL.
"""

from __future__ import annotations

from iotcore import Broker


class EmbeddedBroker:
    """``with EmbeddedBroker(port=1883) as broker: ...`` -- stopped and its port freed after."""

    def __init__(self, port: int = 1883, host: str = "127.0.0.1") -> None:
        self.host = host
        self._broker = Broker(port=port, listen=host)

    @property
    def port(self) -> int:
        return self._broker.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker.is_running

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Start and wait until it accepts connections; OSError if the port is taken."""
        self._broker.start(timeout)
        return self

    def stop(self) -> None:
        self._broker.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
