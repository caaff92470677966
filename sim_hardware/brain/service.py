"""The reference brain on the fleet link: answers nodes' route requests over MQTT.

A node publishes an event ``route_request`` with ``{"parcel": id, "label": text | null}``;
the service answers, after the policy's latency, with the command ``route`` carrying
``{"parcel": id, "chute": n, "reason": ...}`` to that node. Absent, it answers nothing (the
node's deadline expires and it falls back). The event and command names are parameters, so
the cell controller's protocol decides them; this module only adapts
:class:`fleet_link.brain.Brain` to :class:`ReferenceBrain`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fleet_link.brain import Brain, Message
from sim_hardware.brain.policy import ReferenceBrain

log = logging.getLogger("wolfpack.sim.brain")


class BrainService:
    def __init__(
        self,
        broker: str,
        site: str,
        policy: ReferenceBrain | None = None,
        *,
        request_event: str = "route_request",
        answer_command: str = "route",
    ) -> None:
        self.policy = policy or ReferenceBrain()
        self.request_event = request_event
        self.answer_command = answer_command
        self.answered = 0
        self.bad_requests = 0
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self.sdk = Brain(broker, site, on_message=self._on_message)

    def start(self, wait_s: float = 10.0) -> BrainService:
        self.sdk.start(wait_s)
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        self.sdk.stop()

    def __enter__(self) -> BrainService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_message(self, msg: Message) -> None:
        if msg.kind != "events" or msg.name != self.request_event:
            return
        data = msg.data
        parcel = data.get("parcel")
        label = data.get("label")
        if parcel is None or not (label is None or isinstance(label, str)):
            self.bad_requests += 1
            log.warning("%s from %s is not {parcel, label}: %r", msg.channel, msg.node, data)
            return
        decision = self.policy.decide(label)
        if decision is None:
            return
        args: dict[str, Any] = {
            "parcel": parcel,
            "chute": decision.chute,
            "reason": decision.reason,
        }
        self._after(decision.latency_s, msg.node, args)

    def _after(self, delay_s: float, node: str, args: dict[str, Any]) -> None:
        def send() -> None:
            with self._lock:
                self._timers.discard(timer)
                if self._stopped:
                    return
            self.sdk.send_command(node, self.answer_command, args)
            self.answered += 1

        timer = threading.Timer(delay_s, send)
        timer.daemon = True
        with self._lock:
            if self._stopped:
                return
            self._timers.add(timer)
        timer.start()
