"""`wolfpack sim fleet`: N virtual nodes on a broker cluster and a pool of brain workers.

Each virtual node is a real :class:`fleet_link.link.EdgeLink` (its own MQTT session, SQLite
outbox and sequence numbers, failing over along the broker list) fed with the message mix of a
sorting cell at ``--rate`` parcels per hour: per parcel a ``route_request`` event, the
``cmd_result/route`` answer 50 ms later and the parcel record 3 s later; the six telemetry
groups every 5 s (system every 10 s); the retained state every 10 s. Many nodes share a
process (``--procs`` node hosts), so hundreds fit on two cores.

The brain side is the worker pool of :mod:`fleet_link.brain_pool` (``--workers`` processes, a
shared ledger, each applied message journaled); on a plain MQTT broker (``--broker`` without
``--amqp``, e.g. one mosquitto) it is the single-process brain SDK :class:`fleet_link.brain.Brain`.
Without ``--broker`` a 3-member RabbitMQ cluster is started under the work directory and
stopped at the end. The report counts, per (node, channel): messages published, applied,
lost (published, never applied), duplicated (applied twice) and out of order (applied after a
later one), with end-to-end latency (outbox append to the brain's commit).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SITE = "fleet"
_TELEMETRY = (("belt", 5.0), ("plc", 5.0), ("mcu", 5.0), ("chutes", 5.0), ("vision", 5.0),
              ("system", 10.0))  # fmt: skip
_ANSWER_S = 0.05  # route_request -> cmd_result/route
_TRAVEL_S = 3.0  # route_request -> the parcel's record


def register(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``wolfpack sim fleet`` on ``parser``."""
    parser.add_argument("--nodes", type=int, default=20, metavar="N", help="virtual nodes")
    parser.add_argument(
        "--duration", type=float, default=30.0, metavar="S", help="seconds of traffic"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=12_000.0,
        metavar="PPH",
        help="parcels per hour per node (default 12000: ~11 messages/s per node)",
    )
    parser.add_argument(
        "--broker",
        metavar="URL[,URL...]",
        help="MQTT broker members (default: start a 3-member RabbitMQ cluster)",
    )
    parser.add_argument(
        "--amqp",
        metavar="URL[,URL...]",
        help="AMQP URLs of the same cluster for the worker pool (without it, with --broker: "
        "the single-process brain over MQTT)",
    )
    parser.add_argument(
        "--broker-pids",
        metavar="PID[,PID...]",
        help="with --broker: the broker's processes, whose CPU the report gives",
    )
    parser.add_argument("--workers", type=int, default=2, help="brain worker processes")
    parser.add_argument("--partitions", type=int, default=8, help="brain queue partitions")
    parser.add_argument(
        "--procs", type=int, default=0, help="node host processes (default: 1 per 100 nodes)"
    )
    parser.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--workdir", metavar="DIR", help="keep outboxes and logs here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kill-member",
        type=float,
        metavar="S",
        help="SIGKILL cluster member 0 at S seconds (a cluster started here)",
    )
    parser.add_argument(
        "--restart-member", type=float, metavar="S", help="start that member again at S seconds"
    )
    parser.add_argument(
        "--kill-worker", type=float, metavar="S", help="SIGKILL brain worker 0 at S seconds"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="after the traffic: how long to wait for every message to be applied",
    )
    parser.add_argument("--quiet", action="store_true", help="no live view")


# ---------------------------------------------------------------------------------------------
# the node host: many virtual nodes in one process


def _bodies(rng: random.Random, parcel: int) -> dict[str, dict[str, Any]]:
    label = f"WP{parcel:09d}"
    size = [rng.randint(100, 600), rng.randint(100, 400), rng.randint(20, 300)]
    chute = rng.randint(1, 12)
    return {
        "route_request": {
            "parcel": parcel,
            "label": label,
            "deadline_ms": 400,
            "class": "box",
            "size_mm": size,
        },
        "result": {
            "request_id": f"r{parcel}",
            "command": "route",
            "ok": True,
            "result": {"accepted": True},
        },
        "parcel": {
            "parcel_id": parcel,
            "outcome": "sorted",
            "chute": chute,
            "actual_chute": chute,
            "confirmed": True,
            "reason": "",
            "decision_source": "brain",
            "label": label,
            "label_source": "scanner",
            "class": "box",
            "size_mm": size,
            "lead_count": 1000 + parcel,
            "scheduled_count": 5000 + parcel,
            "fired_count": 5000 + parcel,
            "divert_error_mm": round(rng.uniform(-3, 3), 2),
            "latency_ms": {"vision": 14.0, "brain": 22.0, "schedule": 1.0},
            "story": ["seen", "labelled", "routed", "scheduled", "fired", "confirmed"],
        },
    }


def _telemetry(rng: random.Random, group: str) -> dict[str, Any]:
    values: dict[str, dict[str, Any]] = {
        "belt": {"speed_mm_s": round(rng.uniform(1990, 2010), 1), "running": True},
        "plc": {"conveyor.speed": round(rng.uniform(0.99, 1.01), 3)},
        "mcu": {"rtt_ms": round(rng.uniform(1, 3), 2)},
        "chutes": {"full_count": 0, "blocked": False},
        "vision": {"fps": 30.0, "process_ms": round(rng.uniform(10, 20), 1)},
        "system": {"cpu_percent": round(rng.uniform(20, 40), 1), "rss_mb": 180.0},
    }
    return values[group]


def _host_main(spec_path: str) -> int:
    """A node host: the nodes of ``spec`` publish their mix until its end, then drain."""
    from fleet_link.commands import CommandRegistry  # noqa: F401  (import cost before timing)
    from fleet_link.config import MqttConfig
    from fleet_link.link import EdgeLink
    from fleet_link.outbox import PRIORITY_EVENT

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    rng = random.Random(spec["seed"])
    links: list[EdgeLink] = []
    for name, urls in spec["nodes"]:
        cfg = MqttConfig.model_validate(
            {
                "broker": urls[0],
                "brokers": urls[1:],
                "protocol": "3.1.1",
                "command_qos": spec["command_qos"],
                "unique_client_id": spec["command_qos"] == 0,  # RabbitMQ: see its description
                # a CONNACK is awaited keepalive_s: RabbitMQ 3.10 registers each client id in
                # a Raft round, slow on a loaded host; a node that gave up early and moved on
                # was later kicked off its new member as a "duplicate id" (a storm, seen here)
                "keepalive_s": 30,
                "reconnect_min_s": 0.3,
                "reconnect_max_s": 5.0,
                "outbox": {"path": str(Path(spec["outbox_dir"]) / f"{name}.sqlite3")},
            }
        )
        links.append(EdgeLink(cfg, SITE, name).start())
    status_path = Path(spec["status"])
    down: list[float | None] = [None] * len(links)  # when each went down (monotonic)
    max_down = [0.0] * len(links)
    published = [0]
    done = threading.Event()

    def watch() -> None:
        last_status = 0.0
        while not done.is_set():
            now = time.monotonic()
            for i, link in enumerate(links):
                if link.connected.is_set():
                    if down[i] is not None:
                        max_down[i] = max(max_down[i], now - down[i])  # type: ignore[operator]
                        down[i] = None
                elif down[i] is None and link.connects:
                    down[i] = now
            if now - last_status >= 1.0:
                last_status = now
                body = {
                    "published": published[0],
                    "connected": sum(1 for x in links if x.connected.is_set()),
                    "depth": sum(x.outbox.stats().depth for x in links),
                }
                tmp = status_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(body), encoding="utf-8")
                tmp.replace(status_path)
            done.wait(0.05)

    watcher = threading.Thread(target=watch, name="fleet-watch", daemon=True)
    watcher.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(x.connected.is_set() for x in links):
        time.sleep(0.05)
    start_at = spec["start_at"]
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    end = t0 + spec["duration"]
    per_s = spec["rate"] / 3600.0
    heap: list[tuple[float, int, int, str, int]] = []  # (due, tie, node, what, parcel)
    tie = 0
    parcels = [0] * len(links)
    for i in range(len(links)):
        if per_s > 0:
            heapq.heappush(heap, (t0 + rng.expovariate(per_s), tie, i, "arrive", 0))
            tie += 1
        for group, period in _TELEMETRY:
            heapq.heappush(heap, (t0 + rng.uniform(0, period), tie, i, f"t:{group}", 0))
            tie += 1
    bodies: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    while heap:
        due, _t, i, what, parcel = heapq.heappop(heap)
        if due >= end and (what == "arrive" or what.startswith("t:")):
            continue  # no new parcel, no new period; answers and records still go out
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        link = links[i]
        if what == "arrive":
            parcels[i] += 1
            parcel = parcels[i]
            bodies[(i, parcel)] = _bodies(rng, parcel)
            link.publish_event("route_request", bodies[(i, parcel)]["route_request"])
            heapq.heappush(heap, (due + _ANSWER_S, tie, i, "answer", parcel))
            heapq.heappush(heap, (due + _TRAVEL_S, tie + 1, i, "record", parcel))
            heapq.heappush(heap, (due + rng.expovariate(per_s), tie + 2, i, "arrive", 0))
            tie += 3
        elif what == "answer":
            body = bodies[(i, parcel)]["result"]
            link._append(("cmd_result", "route"), PRIORITY_EVENT, body)
        elif what == "record":
            link.publish_event("parcel", bodies.pop((i, parcel))["parcel"])
        else:
            group = what[2:]
            link.publish_telemetry(group, _telemetry(rng, group), "periodic")
            period = dict(_TELEMETRY)[group]
            heapq.heappush(heap, (due + period, tie, i, what, 0))
            tie += 1
        published[0] += 1
    traffic_s = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    drain_end = time.monotonic() + max(1.0, spec["drain_timeout"])
    drained = all(x.wait_drained(max(0.0, drain_end - time.monotonic())) for x in links)
    done.set()
    watcher.join(2)
    now = time.monotonic()
    for i, since in enumerate(down):  # still without a member: down until now
        if since is not None:
            max_down[i] = max(max_down[i], now - since)
    channels: dict[str, dict[str, int]] = {}
    for link in links:
        chans = ["events/route_request", "events/parcel", "cmd_result/route"]
        chans += [f"telemetry/{g}" for g, _p in _TELEMETRY]
        channels[link.node] = {c: link.outbox.last_seq(c) for c in chans}
    result = {
        "published": published[0],
        "channels": channels,
        "drained": drained,
        "traffic_s": traffic_s,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "max_rss_mb": cpu1.ru_maxrss / 1024.0,
        "max_down_s": max(max_down) if max_down else 0.0,
        "down_s": max_down,
        "failovers": sum(x.failovers for x in links),
        "connects": sum(x.connects for x in links),
    }
    for link in links:
        link.stop(timeout=2.0)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class _Brain:
    """Where applied messages are counted: the pool's journal, or an in-process Brain."""

    ledger: Path | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    rows: list[tuple[str, str, int, float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sdk: Any = None

    def applied(self) -> int:
        if self.ledger is None:
            with self.lock:
                return len(self.rows)
        try:
            db = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=5)
            try:
                return int(db.execute("SELECT count(*) FROM applied").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return 0

    def all_rows(self) -> list[tuple[str, str, int, float, str]]:
        """(node, channel, seq, latency_ms, worker) in the order applied."""
        if self.ledger is None:
            with self.lock:
                return list(self.rows)
        db = sqlite3.connect(str(self.ledger), timeout=30)
        try:
            return [
                (r[0], r[1], int(r[2]), float(r[3]), str(r[4]))
                for r in db.execute(
                    "SELECT node, channel, seq, latency_ms, worker FROM applied ORDER BY id"
                )
            ]
        finally:
            db.close()


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _self_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def analyse(
    published: dict[str, dict[str, int]], rows: list[tuple[str, str, int, float, str]]
) -> dict[str, Any]:
    """Lost, duplicated and out of order per (node, channel), from what each node published
    (its last seq per channel; a fresh fleet starts at 1) and what the brain applied, in order."""
    seen: dict[tuple[str, str], set[int]] = {}
    last: dict[tuple[str, str], int] = {}
    duplicated = out_of_order = 0
    by_worker: dict[str, int] = {}
    for node, chan, seq, _lat, worker in rows:
        key = (node, chan)
        got = seen.setdefault(key, set())
        if seq in got:
            duplicated += 1
            continue
        got.add(seq)
        if seq < last.get(key, 0):  # applied after a later one of its channel
            out_of_order += 1
        last[key] = max(seq, last.get(key, 0))
        by_worker[worker] = by_worker.get(worker, 0) + 1
    messages = lost = 0
    lost_nodes: set[str] = set()
    for node, chans in published.items():
        for chan, top in chans.items():
            messages += top
            got = seen.get((node, chan), set())
            missing = sum(1 for s in range(1, top + 1) if s not in got)
            lost += missing
            if missing:
                lost_nodes.add(node)
    lat = [r[3] for r in rows if r[3] >= 0]
    return {
        "messages": messages,
        "applied": len(rows),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "nodes_with_loss": sorted(lost_nodes)[:20],
        "latency_ms": {
            "p50": round(_pct(lat, 0.50), 1),
            "p99": round(_pct(lat, 0.99), 1),
            "max": round(max(lat), 1) if lat else 0.0,
        },
        "applied_by_worker": by_worker,
    }


def run(args: argparse.Namespace) -> int:
    """Run the fleet; print the live view and the report; 0 when nothing was lost,
    duplicated or out of order, 1 otherwise, 2 when it could not run."""
    try:
        report = run_fleet(args)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"wolfpack sim fleet: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the cluster, workers and node hosts were stopped on the way out
        print("wolfpack sim fleet: interrupted", file=sys.stderr)
        return 130
    ok = report["lost"] == 0 and report["duplicated"] == 0 and report["out_of_order"] == 0
    return 0 if ok else 1


def run_fleet(args: argparse.Namespace) -> dict[str, Any]:
    """The fleet run behind ``run``: returns the report (also written to ``--report``)."""
    from fleet_link.brain_pool_cluster import RabbitCluster

    if args.nodes < 1:
        raise ValueError("--nodes must be at least 1")
    keep = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wolfpack-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    outbox_dir = workdir / "outbox"
    shutil.rmtree(outbox_dir, ignore_errors=True)
    outbox_dir.mkdir()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    cluster: RabbitCluster | None = None
    brain = _Brain()
    hosts: list[subprocess.Popen[bytes]] = []
    broker_pids: list[int] = []
    try:
        if args.broker:
            mqtt_urls = [u.strip() for u in args.broker.split(",") if u.strip()]
            amqp_urls = [u.strip() for u in (args.amqp or "").split(",") if u.strip()]
            kind = "external"
            broker_pids = [int(p) for p in (args.broker_pids or "").split(",") if p.strip()]
        else:
            say("starting a 3-member RabbitMQ cluster (about 30 s) ...")
            cluster = RabbitCluster(workdir / "rabbitmq").start()
            mqtt_urls, amqp_urls = cluster.mqtt_urls, cluster.amqp_urls
            broker_pids = cluster.pids()
            kind = "rabbitmq-cluster"
        if amqp_urls:
            _start_pool(args, amqp_urls, workdir, brain)
            brain_kind = f"pool of {args.workers} workers, {args.partitions} quorum queues"
        else:
            _start_sdk(mqtt_urls[0], brain)
            brain_kind = "single brain SDK over MQTT"
        say(f"brokers: {', '.join(mqtt_urls)}; brain: {brain_kind}")
        procs = args.procs or max(1, math.ceil(args.nodes / 100))
        names = [f"v{i:04d}" for i in range(args.nodes)]
        start_at = time.time() + 3.0 + args.nodes * 0.01
        specs = []
        for h in range(procs):
            mine = names[h::procs]
            nodes = []
            for name in mine:
                i = int(name[1:])
                k = i % len(mqtt_urls)
                nodes.append([name, mqtt_urls[k:] + mqtt_urls[:k]])  # spread over members
            spec = {
                "nodes": nodes,
                "outbox_dir": str(outbox_dir),
                "rate": args.rate,
                "duration": args.duration,
                "seed": args.seed * 1000 + h,
                "start_at": start_at,
                "drain_timeout": args.drain_timeout,
                "command_qos": 0 if amqp_urls else 1,  # RabbitMQ: see mqtt.command_qos
                "status": str(workdir / f"host{h}.status.json"),
                "result": str(workdir / f"host{h}.result.json"),
            }
            path = workdir / f"host{h}.spec.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            Path(spec["result"]).unlink(missing_ok=True)
            specs.append(spec)
            log = (workdir / f"host{h}.log").open("ab")
            hosts.append(
                subprocess.Popen(
                    [sys.executable, "-m", "edge.cli.sim_fleet", "--node-host", str(path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
            )
            log.close()
        broker_cpu: dict[int, float] = {p: _proc_cpu_s(p) for p in broker_pids}
        broker_cpu0 = sum(broker_cpu.values())
        brain_cpu: dict[int, float] = {w.pid: _proc_cpu_s(w.pid) for w in brain.workers}
        brain_cpu0 = sum(brain_cpu.values())
        self_cpu0 = _self_cpu_s()
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.monotonic()
        say(f"{args.nodes} nodes in {procs} processes, {args.rate:.0f} parcels/h each, "
            f"{args.duration:.0f} s")  # fmt: skip
        faults = []
        if args.kill_member is not None:
            faults.append((args.kill_member, "kill-member"))
        if args.restart_member is not None:
            faults.append((args.restart_member, "restart-member"))
        if args.kill_worker is not None:
            faults.append((args.kill_worker, "kill-worker"))
        faults.sort()
        events: list[dict[str, Any]] = []
        last_view = (t0, 0, 0)
        while True:
            now = time.monotonic()
            while faults and now - t0 >= faults[0][0]:
                _at, what = faults.pop(0)
                events.append({"at_s": round(now - t0, 2), "fault": what})
                say(f"  t={now - t0:5.1f}s  fault: {what}")
                if what == "kill-member" and cluster is not None:
                    cluster.kill(0)
                elif what == "restart-member" and cluster is not None:
                    threading.Thread(
                        target=_restart_member, args=(cluster, events, say), daemon=True
                    ).start()
                elif what == "kill-worker" and brain.workers:
                    os.kill(brain.workers[0].pid, signal.SIGKILL)
            if all(h.poll() is not None for h in hosts):
                break
            for pid in cluster.pids() if cluster is not None else broker_pids:
                broker_cpu[pid] = _proc_cpu_s(pid) or broker_cpu.get(pid, 0.0)  # as workers
            for w in brain.workers:  # the last figure of a killed worker stays counted
                if w.poll() is None:
                    brain_cpu[w.pid] = _proc_cpu_s(w.pid) or brain_cpu.get(w.pid, 0.0)
            if now - last_view[0] >= 2.0:
                status = _host_status(workdir, procs)
                applied = brain.applied()
                dt = now - last_view[0]
                say(
                    f"  t={now - t0:5.1f}s  published {status['published']:7d} "
                    f"({(status['published'] - last_view[1]) / dt:6.0f}/s)  applied "
                    f"{applied:7d} ({(applied - last_view[2]) / dt:6.0f}/s)  connected "
                    f"{status['connected']:4d}/{args.nodes}  outbox {status['depth']:6d}"
                )
                last_view = (now, status["published"], applied)
            time.sleep(0.1)
        traffic_wall = time.monotonic() - t0
        for pid in cluster.pids() if cluster is not None else broker_pids:
            broker_cpu[pid] = _proc_cpu_s(pid) or broker_cpu.get(pid, 0.0)
        broker_used = sum(broker_cpu.values()) - broker_cpu0  # a restarted member's boot too
        if brain.workers:
            brain_used = sum(brain_cpu.values()) - brain_cpu0
        else:  # the brain SDK runs in this process (beside a light loop)
            brain_used = _self_cpu_s() - self_cpu0
        results = []
        for h, spec in enumerate(specs):
            path = Path(spec["result"])
            if not path.exists():
                tail = (workdir / f"host{h}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"node host {h} ended without a result: {tail}")
            results.append(json.loads(path.read_text(encoding="utf-8")))
        published: dict[str, dict[str, int]] = {}
        for res in results:
            published.update(res["channels"])
        expected = sum(sum(c.values()) for c in published.values())
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and brain.applied() < expected:
            time.sleep(0.25)
        time.sleep(0.5)  # a duplicate still on its way would show now
        _stop_brain(brain)
        rows = brain.all_rows()
        report = analyse(published, rows)
        traffic_s = max(r["traffic_s"] for r in results)
        node_cpu = sum(r["cpu_s"] for r in results)
        report.update(
            {
                "nodes": args.nodes,
                "duration_s": args.duration,
                "rate_pph": args.rate,
                "broker": kind,
                "brokers": mqtt_urls,
                "brain": brain_kind,
                "node_processes": procs,
                "messages_per_s_in": round(report["messages"] / traffic_s, 1),
                "messages_per_s_out": round(report["applied"] / max(traffic_s, 1e-9), 1),
                "per_node": {
                    "cpu_percent": round(100 * node_cpu / traffic_s / args.nodes, 3),
                    "rss_mb": round(sum(r["max_rss_mb"] for r in results) / args.nodes, 2),
                },
                "node_processes_cpu_percent": round(100 * node_cpu / traffic_s, 1),
                "broker_cpu_percent": round(100 * broker_used / traffic_wall, 1)
                if broker_pids
                else None,
                "brain_cpu_percent": round(100 * brain_used / traffic_wall, 1),
                "reconnect_max_s": round(max(r["max_down_s"] for r in results), 2),
                "failovers": sum(r["failovers"] for r in results),
                "drained": all(r["drained"] for r in results),
                "faults": events,
            }
        )
        _print_report(report, say)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return report
    finally:
        for h in hosts:
            if h.poll() is None:
                h.terminate()
                try:
                    h.wait(10)
                except subprocess.TimeoutExpired:
                    h.kill()
                    h.wait(5)
        _stop_brain(brain)
        if cluster is not None:
            cluster.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _restart_member(cluster: Any, events: list[dict[str, Any]], say: Any) -> None:
    """Start member 0 again (a thread: it boots for tens of seconds); a failure is reported."""
    try:
        cluster.restart(0)
    except Exception as exc:
        events.append({"fault": "restart-member-failed", "error": str(exc)[:300]})
        say(f"  member 0 did not come back: {exc}")


def _host_status(workdir: Path, procs: int) -> dict[str, int]:
    total = {"published": 0, "connected": 0, "depth": 0}
    for h in range(procs):
        with contextlib.suppress(OSError, ValueError):
            body = json.loads((workdir / f"host{h}.status.json").read_text(encoding="utf-8"))
            for k in total:
                total[k] += int(body.get(k, 0))
    return total


def _start_pool(
    args: argparse.Namespace, amqp_urls: list[str], workdir: Path, brain: _Brain
) -> None:
    try:
        import pika

        from fleet_link.brain_pool import JOURNAL_SQL, declare, queue_name
    except ImportError as exc:
        raise RuntimeError(f"brain pool needs pika ({exc}): pip install -e '.[brain]'") from None

    conn = pika.BlockingConnection(pika.URLParameters(amqp_urls[0]))
    try:
        ch = conn.channel()
        for k in range(args.partitions):  # a fresh run: what an earlier run left goes
            ch.queue_delete(queue_name(SITE, k))
        declare(ch, SITE, args.partitions)
    finally:
        conn.close()
    brain.ledger = workdir / "brain-ledger.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{brain.ledger}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(str(brain.ledger))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(JOURNAL_SQL)
    db.close()
    for i in range(args.workers):
        log = (workdir / f"worker{i}.log").open("ab")
        brain.workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fleet_link.brain_pool",
                    "--amqp",
                    ",".join(amqp_urls),
                    "--site",
                    SITE,
                    "--ledger",
                    str(brain.ledger),
                    "--partitions",
                    str(args.partitions),
                    "--index",
                    str(i),
                    "--workers",
                    str(args.workers),
                    "--from-start",
                    "--journal",
                    "--name",
                    f"w{i}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    deadline = time.monotonic() + 60
    conn = pika.BlockingConnection(pika.URLParameters(amqp_urls[0]))
    try:
        ch = conn.channel()
        while True:  # each partition has its active consumer (RabbitMQ counts only that one)
            counts = [
                ch.queue_declare(queue_name(SITE, k), passive=True).method.consumer_count
                for k in range(args.partitions)
            ]
            if min(counts) >= 1:
                time.sleep(1.0)  # the standbys follow within a check (0.5 s)
                break
            dead = [w.args for w in brain.workers if w.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"brain workers not all subscribed within 60 s (consumers per partition "
                    f"{counts}; see {workdir}/worker*.log)"
                )
            time.sleep(0.5)
    finally:
        conn.close()


def _start_sdk(url: str, brain: _Brain) -> None:
    from fleet_link.brain import Brain, Message
    from fleet_link.envelope import parse_stamp

    def take(m: Message) -> None:
        try:
            lat = (time.time() - parse_stamp(m.ts)) * 1000.0
        except ValueError:
            lat = -1.0
        with brain.lock:
            brain.rows.append((m.node, m.channel, m.seq, lat, "sdk"))

    brain.sdk = Brain(url, SITE, on_message=take, from_start=True, request_replays=False).start()


def _stop_brain(brain: _Brain) -> None:
    for w in brain.workers:
        if w.poll() is None:
            w.terminate()
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
    if brain.sdk is not None:
        brain.sdk.stop()
        brain.sdk = None


def _print_report(r: dict[str, Any], say: Any) -> None:
    lat = r["latency_ms"]
    say("")
    say(f"fleet: {r['nodes']} nodes on {r['broker']} ({r['brain']})")
    say(f"  messages {r['messages']}  applied {r['applied']}  lost {r['lost']}  "
        f"duplicated {r['duplicated']}  out of order {r['out_of_order']}")  # fmt: skip
    say(f"  in {r['messages_per_s_in']}/s  out {r['messages_per_s_out']}/s  latency p50 "
        f"{lat['p50']} ms  p99 {lat['p99']} ms  max {lat['max']} ms")  # fmt: skip
    broker = "-" if r["broker_cpu_percent"] is None else f"{r['broker_cpu_percent']} %"
    broker += f";  brain CPU {r['brain_cpu_percent']} %"
    say(f"  per node: CPU {r['per_node']['cpu_percent']} % of a core, RSS "
        f"{r['per_node']['rss_mb']} MB;  broker CPU {broker};  reconnect max "
        f"{r['reconnect_max_s']} s, failovers {r['failovers']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--node-host"]:
        return _host_main(argv[1])
    parser = argparse.ArgumentParser(prog="wolfpack sim fleet", description=__doc__.splitlines()[0])
    register(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
