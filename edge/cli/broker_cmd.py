"""`wolfpack broker`: the embedded MQTT broker, for the demo and a laptop (no install)."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "broker",
        help="run the embedded MQTT broker (no mosquitto needed; for demos and laptops)",
        description="Run the embedded broker (rumqttd via iotcore, MQTT 3.1.1) until Ctrl-C. "
        "Nodes using it set 'protocol: \"3.1.1\"' in their mqtt section. Production sites "
        "use mosquitto with the templates in configs/mosquitto/ (TLS, credentials, ACL).",
    )
    parser.add_argument("--port", type=int, default=1883, help="TCP port (default: 1883)")
    parser.add_argument(
        "--listen", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.set_defaults(handler=_broker)


def _broker(args: argparse.Namespace) -> int:
    from fleet_link.embedded import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, host=args.listen)
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        print(f"wolfpack broker: cannot listen on {args.listen}:{args.port}: {exc}")
        return 1
    print(f"embedded broker listening on {broker.url} (Ctrl-C stops it)", flush=True)
    try:
        end = time.monotonic() + args.duration if args.duration else None
        while (end is None or time.monotonic() < end) and broker.running:
            time.sleep(0.2)
    finally:
        broker.stop()
    return 0
