"""The fleet at scale: the largest number of virtual nodes this machine holds at a sorting
cell's message rate with 0 lost and p99 below a bound, on the 3-member RabbitMQ cluster (the
brain's worker pool over AMQP) and on one mosquitto (the single brain SDK over MQTT), in the
same run; per-node CPU and RSS of the virtual nodes, and the broker's CPU.

    .venv/bin/python bench/fleet.py                       # sizes 25,50,100,150,200,300
    .venv/bin/python bench/fleet.py --sizes 50,100 --duration 20 --rate 12000 --p99-ms 1000

A size passes when the virtual nodes published at least 90 % of a cell's rate (else this
machine, not the broker, is the limit), nothing is lost, duplicated or out of order, the brain
applied at least 95 % of what was published during the run, and the end-to-end p99
(outbox append to the brain's commit) is under --p99-ms. Sizes go up until one fails; the
table shows every run. The model of a site's cluster in docs/fleet-scale.md is built from
these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.cli.sim_fleet import register, run_fleet
from fleet_link.brain_pool_cluster import RabbitCluster
from tests.fleet_link.mosquitto import Mosquitto

COLUMNS = (
    "broker", "nodes", "in/s", "out/s", "p50 ms", "p99 ms", "lost", "dup", "ooo",
    "node CPU %", "node RSS MB", "broker CPU %", "brain CPU %", "pass",
)  # fmt: skip


def _fleet(base: list[str], nodes: int, workdir: Path) -> dict:
    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args([*base, "--nodes", str(nodes), "--quiet", "--workdir", str(workdir)])
    return run_fleet(args)


def _row(name: str, r: dict, ok: bool) -> list[str]:
    cpu = r["broker_cpu_percent"]
    return [
        name,
        str(r["nodes"]),
        f"{r['messages_per_s_in']:.0f}",
        f"{r['messages_per_s_out']:.0f}",
        f"{r['latency_ms']['p50']:.0f}",
        f"{r['latency_ms']['p99']:.0f}",
        str(r["lost"]),
        str(r["duplicated"]),
        str(r["out_of_order"]),
        f"{r['per_node']['cpu_percent']:.2f}",
        f"{r['per_node']['rss_mb']:.1f}",
        "-" if cpu is None else f"{cpu:.0f}",
        f"{r['brain_cpu_percent']:.0f}",
        "yes" if ok else "no",
    ]


def offered_per_node(rate_pph: float) -> float:
    """Messages/s a node offers at ``rate_pph``: 3 per parcel (route_request, its answer, the
    record) and the six telemetry groups (five every 5 s, one every 10 s)."""
    return 3 * rate_pph / 3600 + 5 / 5 + 1 / 10


def _passes(r: dict, p99_ms: float) -> bool:
    offered = r["nodes"] * offered_per_node(r["rate_pph"])
    return (
        r["messages_per_s_in"] >= 0.9 * offered  # the node hosts kept the cell's rate
        and r["lost"] == 0
        and r["duplicated"] == 0
        and r["out_of_order"] == 0
        and r["messages_per_s_out"] >= 0.95 * r["messages_per_s_in"]
        and r["latency_ms"]["p99"] < p99_ms
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25,50,100,150,200,300")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=12000.0, help="parcels/hour per node")
    ap.add_argument("--p99-ms", type=float, default=1000.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--targets", default="cluster,mosquitto")
    ap.add_argument("--json", metavar="FILE", help="also write every run's report")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    common = ["--duration", str(args.duration), "--rate", str(args.rate),
              "--workers", str(args.workers), "--drain-timeout", "60"]  # fmt: skip
    rows: list[list[str]] = []
    best: dict[str, int] = {}
    runs: list[dict] = []
    print(f"cores: {os.cpu_count()}, load before: {os.getloadavg()[0]:.1f}; rate {args.rate:.0f} "
          f"parcels/h per node; pass: 0 lost/dup/ooo, out >= 95 % of in, p99 < {args.p99_ms:.0f} "
          "ms", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wolfpack-bench-fleet-") as tmp:
        work = Path(tmp)
        for target in args.targets.split(","):
            if target == "cluster":
                t = time.monotonic()
                broker = RabbitCluster(work / "rabbitmq").start()
                print(f"cluster up in {time.monotonic() - t:.0f} s", flush=True)
                base = ["--broker", ",".join(broker.mqtt_urls), "--amqp",
                        ",".join(broker.amqp_urls), "--broker-pids",
                        ",".join(str(p) for p in broker.pids())]  # fmt: skip
                name = "rabbitmq x3"
            else:
                broker = Mosquitto(work).start()
                assert broker.proc is not None
                base = ["--broker", broker.url, "--broker-pids", str(broker.proc.pid)]
                name = "mosquitto"
            try:
                for n in sizes:
                    r = _fleet([*base, *common], n, work / f"{target}-{n}")
                    ok = _passes(r, args.p99_ms)
                    rows.append(_row(name, r, ok))
                    runs.append({"target": target, **r})
                    print("  " + "  ".join(rows[-1]), flush=True)
                    if not ok:
                        break
                    best[name] = n
            finally:
                broker.stop()
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print()
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print()
    for name in ("rabbitmq x3", "mosquitto"):
        print(f"largest passing fleet on {name}: {best.get(name, 0)} nodes")
    if best.get("mosquitto"):
        print(f"ratio cluster / mosquitto: {best.get('rabbitmq x3', 0) / best['mosquitto']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
