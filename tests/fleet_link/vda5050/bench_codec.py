"""Cost of the VDA 5050 hot paths (not a test): decoding an order (schema included) and
building a state message. Run: OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 19 .venv/bin/python
tests/fleet_link/vda5050/bench_codec.py"""

from __future__ import annotations

import json
import time

from fleet_link.vda5050.codec import decode_order
from fleet_link.vda5050.messages import Stamper
from tests.edge.amr.test_order_scenario import Vehicle
from tests.fleet_link.vda5050.helpers import action, dumps, edge, node, order


def main(nodes: int = 20, rounds: int = 300) -> None:
    ns = [
        node(f"n{i}", 2 * i, float(i), released=i < nodes // 2,
             actions=[action(f"a{i}", "detectObject")])
        for i in range(nodes)
    ]  # fmt: skip
    es = [
        edge(f"e{i}", 2 * i + 1, f"n{i}", f"n{i + 1}", released=i < nodes // 2 - 1)
        for i in range(nodes - 1)
    ]
    payload = dumps(order("o", 0, ns, es))
    t = time.perf_counter()
    for _ in range(rounds):
        decode_order(payload)
    ms = (time.perf_counter() - t) / rounds * 1e3
    print(f"decode_order ({nodes} nodes, {len(payload)} bytes, schema included): {ms:.2f} ms")
    v = Vehicle()
    v.at(0.0)
    v.order(order("o", 0, ns, es))
    stamper = Stamper("wolfpack", "amr-01")
    t = time.perf_counter()
    for _ in range(rounds):
        json.dumps(stamper.stamp("state", v.core.state_body()))
    ms = (time.perf_counter() - t) / rounds * 1e3
    print(f"state message ({nodes - 1} nodeStates held): state_body + header + JSON {ms:.3f} ms")


if __name__ == "__main__":
    main()
