"""An edge node as its own process, for the kill -9 test: stores COUNT parcel events through
the outbox, says so on stdout, then keeps running (sending when it can) until killed or, with
--exit-when-drained, until the broker acknowledged everything."""

from __future__ import annotations

import argparse
import sys
import time

from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--exit-when-drained", action="store_true")
    args = ap.parse_args()
    cfg = MqttConfig.model_validate(
        {
            "broker": args.broker,
            "keepalive_s": 5,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "state_interval_s": 1.0,
            "outbox": {"path": args.db},
        }
    )
    link = EdgeLink(cfg, "site", "edge-1").start()
    for i in range(args.count):
        link.publish_event("parcel", {"parcel_id": f"P{i}", "outcome": "sorted"})
    print(f"stored {args.count} depth {link.outbox.stats().depth}", flush=True)
    while True:
        if args.exit_when_drained and link.wait_drained(0.2):
            time.sleep(1.5)  # let a state with the final 'acked' map go out
            print("drained", flush=True)
            link.stop()
            return 0
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
