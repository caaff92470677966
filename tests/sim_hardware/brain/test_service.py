"""The reference brain over a real mosquitto: a node's route request gets a route command."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fleet_link.link import EdgeLink
from sim_hardware.brain import BrainConfig, ReferenceBrain, chute_for_label
from sim_hardware.brain.service import BrainService
from tests.fleet_link.conftest import link_config, mosquitto  # noqa: F401  (fixture)
from tests.fleet_link.mosquitto import Mosquitto

PLAN = [0, 1, 2, 3, 4, 5, 6]


def _node(tmp_path: Path, url: str, routes: list[dict], got: threading.Event) -> EdgeLink:
    link = EdgeLink(link_config(tmp_path, url), "site", "cell-1")

    def on_route(args: dict) -> dict:
        routes.append({**args, "at": time.monotonic()})
        got.set()
        return {"ok": True}

    link.commands.register("route", on_route)
    return link.start()


def test_route_requests_are_answered_after_the_latency_and_not_while_absent(
    tmp_path: Path,
    mosquitto: Mosquitto,  # noqa: F811
):
    policy = ReferenceBrain(BrainConfig(sort_chutes=PLAN, reject_chute=7, latency_ms=150))
    routes: list[dict] = []
    got = threading.Event()
    with BrainService(mosquitto.url, "site", policy) as service:
        node = _node(tmp_path, mosquitto.url, routes, got)
        try:
            assert node.connected.wait(10)
            time.sleep(0.3)  # the node's command subscription is in place
            sent = time.monotonic()
            node.publish_event("route_request", {"parcel": 17, "label": "123456"})
            assert got.wait(5)
            assert routes[0]["parcel"] == 17
            assert routes[0]["chute"] == chute_for_label("123456", PLAN)
            assert routes[0]["reason"] == "plan"
            assert routes[0]["at"] - sent >= 0.15  # not before the brain's latency

            got.clear()
            node.publish_event("route_request", {"parcel": 18, "label": None})
            assert got.wait(5) and routes[1]["chute"] == 7 and routes[1]["reason"] == "no label"

            got.clear()
            policy.set_absent(True)
            node.publish_event("route_request", {"parcel": 19, "label": "000001"})
            node.publish_event("route_request", {"parcel": "x", "label": 5})  # malformed
            deadline = time.monotonic() + 1.0
            while policy.unanswered < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not got.wait(0.5)  # absent: nothing comes back
            assert policy.unanswered == 1 and service.bad_requests == 1
            assert service.answered == 2
        finally:
            node.stop()
