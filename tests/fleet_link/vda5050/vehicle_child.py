"""A VDA 5050 vehicle session in its own process, so a test can kill -9 it (the last will).

Its handler is minimal but real in what it sends: the state reflects the last order taken and
the last refusal, and every message goes through the real client. Closing stdin stops it in
order (OFFLINE).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Mapping
from typing import Any

from fleet_link.config import MqttConfig
from fleet_link.vda5050.client import VehicleClient
from fleet_link.vda5050.models import InstantActions, Order
from fleet_link.vda5050.topics import VehicleTopics


class Handler:
    def __init__(self) -> None:
        self.order_id = ""
        self.update = 0
        self.errors: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.client: VehicleClient | None = None

    def on_order(self, order: Order) -> None:
        self.order_id, self.update, self.errors = order.order_id, order.order_update_id, []
        assert self.client is not None
        self.client.publish_state()

    def on_instant_actions(self, message: InstantActions) -> None:
        for a in message.actions:
            self.actions.append(
                {"actionId": a.action_id, "actionType": a.action_type, "actionStatus": "FINISHED"}
            )
        assert self.client is not None
        if any(a.action_type == "factsheetRequest" for a in message.actions):
            self.client.publish_factsheet()
        self.client.publish_state()

    def on_refused(self, topic: str, reason: str, message: str, header_id: int | None) -> None:
        self.errors = [
            {
                "errorType": "validationError",
                "errorLevel": "WARNING",
                "errorDescription": f"{reason}: {message}"[:200],
                "errorReferences": [{"referenceKey": "topic", "referenceValue": topic}],
            }
        ]
        assert self.client is not None
        self.client.publish_state()

    def on_connection(self, connected: bool) -> None:
        print("CONNECTED" if connected else "DISCONNECTED", flush=True)

    def state_body(self) -> Mapping[str, Any]:
        return {
            "orderId": self.order_id,
            "orderUpdateId": self.update,
            "lastNodeId": "",
            "lastNodeSequenceId": 0,
            "nodeStates": [],
            "edgeStates": [],
            "driving": False,
            "actionStates": list(self.actions),
            "batteryState": {"batteryCharge": 80.0, "charging": False},
            "operatingMode": "AUTOMATIC",
            "errors": list(self.errors),
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }

    def visualization_body(self) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        pos = {"x": 1.0, "y": 2.0, "theta": 0.0, "mapId": "hall-1", "positionInitialized": True}
        return pos, {"vx": 0.0, "vy": 0.0, "omega": 0.0}

    def factsheet_body(self) -> Mapping[str, Any]:
        return {
            "typeSpecification": {
                "seriesName": "test", "agvKinematic": "DIFF", "agvClass": "CARRIER",
                "maxLoadMass": 50.0, "localizationTypes": ["DMC"],
                "navigationTypes": ["VIRTUAL_LINE_GUIDED"],
            },
            "physicalParameters": {
                "speedMin": 0.0, "speedMax": 1.5, "accelerationMax": 0.5,
                "decelerationMax": 1.0, "heightMax": 0.4, "width": 0.7, "length": 1.0,
            },
            "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {}, "timing": {
                "minOrderInterval": 0.1, "minStateInterval": 0.1}},
            "protocolFeatures": {"optionalParameters": [], "agvActions": []},
            "agvGeometry": {},
            "loadSpecification": {},
        }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--keepalive", type=int, default=5)
    ap.add_argument("--state-interval", type=float, default=30.0)
    ap.add_argument("--visualization-interval", type=float, default=None)
    ap.add_argument("--min-state-interval", type=float, default=0.0)
    args = ap.parse_args()
    cfg = MqttConfig.model_validate(
        {
            "broker": args.broker,
            "keepalive_s": args.keepalive,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        }
    )
    handler = Handler()
    client = VehicleClient(
        cfg,
        VehicleTopics("uagv", "wolfpack", "amr-01"),
        handler,
        state_interval_s=args.state_interval,
        visualization_interval_s=args.visualization_interval,
        min_state_interval_s=args.min_state_interval,
    )
    handler.client = client
    client.start()
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    done.wait()
    client.stop()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
