"""Topic names and the QoS/retain of each, as VDA 5050 2.1 section 6.2, 6.14, 6.15 say.

QoS 0 for order, instantActions, state, visualization, factsheet ("to reduce the
communication overhead"); QoS 1 for connection. connection and factsheet are retained ("all
messages on this topic shall be sent with a retained flag"); state and visualization are not
(the standard asks no retain; a retained state would show a master control that starts later
a stale order progress as if it were current, and the vehicle answers a stateRequest anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

MAJOR = "v2"
VERSION = "2.1.0"


@dataclass(frozen=True)
class Delivery:
    qos: int
    retain: bool


DELIVERY: dict[str, Delivery] = {
    "order": Delivery(0, False),
    "instantActions": Delivery(0, False),
    "state": Delivery(0, False),
    "visualization": Delivery(0, False),
    "connection": Delivery(1, True),
    "factsheet": Delivery(0, True),
}


@dataclass(frozen=True)
class VehicleTopics:
    """``<interfaceName>/v2/<manufacturer>/<serialNumber>/<topic>`` of one vehicle."""

    interface_name: str
    manufacturer: str
    serial_number: str

    def __post_init__(self) -> None:
        for name in ("interface_name", "manufacturer", "serial_number"):
            value = getattr(self, name)
            if not value or any(c in value for c in "/+#$") or value != value.strip():
                raise ValueError(
                    f"{name} {value!r} cannot be an MQTT topic level (empty, or has / + # $)"
                )

    @property
    def prefix(self) -> str:
        return f"{self.interface_name}/{MAJOR}/{self.manufacturer}/{self.serial_number}"

    def topic(self, name: str) -> str:
        if name not in DELIVERY:
            raise ValueError(f"{name!r} is not a VDA 5050 topic ({', '.join(DELIVERY)})")
        return f"{self.prefix}/{name}"

    def name_of(self, topic: str) -> str | None:
        """The VDA 5050 topic name of a full topic of this vehicle, or None."""
        head, _, tail = topic.rpartition("/")
        return tail if head == self.prefix and tail in DELIVERY else None
