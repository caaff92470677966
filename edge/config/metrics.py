"""The ``metrics:`` section of a board config: where the node serves Prometheus' ``/metrics``.

Absent, the node serves no metrics. The address is checked when the config is loaded, so a
typo is a config error that names the key, not a socket error at start.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_LISTEN = "127.0.0.1:9108"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")  # fmt: skip


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port). HOST is an IPv4 address, a host name, or an IPv6
    address in brackets (``[::1]:9108``); PORT is 0-65535 (0: any free port). Raises
    ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9108")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError("expected [IPV6]:PORT, e.g. [::1]:9108")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9108")
        if ":" in host:
            raise ValueError("put an IPv6 address in brackets, e.g. [::1]:9108")
        if not host:
            raise ValueError("no host; 127.0.0.1 serves this board only, 0.0.0.0 "
                             "every interface")  # fmt: skip
        if not _is_ipv4(host):
            if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
                raise ValueError(f"{host!r} is neither an IPv4 address nor a host name")
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"the port {port_text!r} is not a number 0-65535")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"the port {port} is over 65535")
    return host, port


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def format_listen(host: str, port: int) -> str:
    """The inverse of ``parse_listen``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class MetricsConfig(BaseModel):
    """Prometheus exposition of the node's counters, states and latencies (docs/metrics.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(
        DEFAULT_LISTEN,
        description="HOST:PORT the /metrics endpoint listens on: 127.0.0.1 for this board "
        "only, 0.0.0.0 (or the board's address) for a Prometheus elsewhere, [::] for IPv6; "
        "port 0 takes any free port (logged)",
    )

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, listen: str) -> str:
        parse_listen(listen)
        return listen

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]
