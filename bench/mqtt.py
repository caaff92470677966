"""Fleet link throughput against one local mosquitto: the durable outbox vs raw paho QoS 1.

    .venv/bin/python bench/mqtt.py [--messages 20000] [--replay 100000] [--backlog 1000000]

Prints a table: messages/s through the outbox (append -> broker PUBACK) and for a raw paho
QoS 1 publish loop without it (publish -> all PUBACKs), their ratio. Both send the same bytes
on the same topic: the raw loop publishes the very envelopes the outbox sends, encoded before
its clock starts, so the outbox alone pays for JSON encoding and the SQLite commit. Then the
append rate with concurrent writers (group commit: messages per transaction); the replay rate of a
100,000-message backlog (stored while offline, then sent unthrottled); the RSS growth of the
process holding a 1,000,000-message backlog and replaying from it. Goals (issue 4): ratio >=
0.7, replay >= 5,000 msg/s, RSS growth <= 20 MB. The same outbox run against the embedded
broker (iotcore/rumqttd) is shown for the choice in docs/mqtt.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from fleet_link.config import MqttConfig  # noqa: E402
from fleet_link.envelope import encode  # noqa: E402
from fleet_link.link import EdgeLink  # noqa: E402
from tests.fleet_link.mosquitto import Mosquitto, free_port  # noqa: E402

PARCEL = {
    "parcel_id": "P-000000000",
    "label": "JJD0001234567890",
    "class": "box",
    "destination": "chute-12",
    "decided_by": "brain",
    "outcome": "sorted",
    "latency_ms": {"decide": 3.2, "total": 41.0},
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def config(url: str, path: Path, protocol: str = "5", **outbox: object) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "broker": url,
            "protocol": protocol,
            "state_interval_s": 5.0,
            "outbox": {"path": str(path), "replay_rate": 0, "max_bytes": 2**31, **outbox},
        }
    )


TOPIC = "wolfpack/v1/bench/edge/events/parcel"  # what through_outbox publishes on


def parcel(i: int) -> dict[str, object]:
    return {**PARCEL, "parcel_id": f"P-{i:09d}"}


def envelopes(n: int) -> list[bytes]:
    """The payloads through_outbox sends (node 'edge', its first session, seq 1..n)."""
    return [encode("edge", 1, i + 1, {"kind": "parcel", "data": parcel(i)}) for i in range(n)]


def raw_paho(url_port: int, payloads: list[bytes]) -> float:
    n = len(payloads)
    done = threading.Event()
    acked = 0

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1
        if acked == n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", url_port)
    c.loop_start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    for payload in payloads:
        c.publish(TOPIC, payload, qos=1)
    done.wait(120)
    rate = n / (time.perf_counter() - t0)
    c.disconnect()
    c.loop_stop()
    return rate


def through_outbox(url: str, path: Path, n: int, protocol: str = "5") -> float:
    link = EdgeLink(config(url, path, protocol), "bench", "edge").start()
    link.connected.wait(10)
    t0 = time.perf_counter()
    for i in range(n):
        link.publish_event("parcel", parcel(i))
    if not link.wait_drained(120):
        raise RuntimeError("outbox did not drain")
    rate = n / (time.perf_counter() - t0)
    link.stop()
    return rate


def fill(link: EdgeLink, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        link.publish_event("parcel", parcel(i))
    return n / (time.perf_counter() - t0)


def concurrent_appends(url: str, path: Path, n: int, writers: int) -> tuple[float, float]:
    """Offline appends from ``writers`` threads at once: msg/s and messages per commit."""
    link = EdgeLink(config(url, path), "bench", "writers")  # not started: offline
    each = n // writers
    start = threading.Barrier(writers + 1)

    def write(w: int) -> None:
        start.wait()
        for i in range(each):
            link.publish_event("parcel", parcel(w * each + i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    rate = each * writers / (time.perf_counter() - t0)
    per_commit = each * writers / max(1, link.outbox.commits)
    link.stop()
    return rate, per_commit


def replay(url: str, path: Path, n: int) -> tuple[float, float]:
    link = EdgeLink(config(url, path), "bench", "replay")  # not started: offline
    append_rate = fill(link, n)
    t0 = time.perf_counter()
    link.start()
    if not link.wait_drained(300):
        raise RuntimeError("backlog did not drain")
    rate = n / (time.perf_counter() - t0)
    link.stop()
    return append_rate, rate


def throttled(url: str, path: Path, n: int, cap: float) -> float:
    link = EdgeLink(config(url, path, replay_rate=cap), "bench", "throttled")
    fill(link, n)
    t0 = time.perf_counter()
    link.start()
    link.wait_drained(120)
    rate = n / (time.perf_counter() - t0)
    link.stop()
    return rate


def big_backlog(url: str, path: Path, n: int, replay_s: float) -> tuple[float, float, float]:
    base = rss_mb()
    link = EdgeLink(config(url, path, keep_sent=0), "bench", "big")
    fill(link, n)
    after_fill = rss_mb()
    peak = after_fill
    link.start()
    t_end = time.monotonic() + replay_s
    while time.monotonic() < t_end:
        peak = max(peak, rss_mb())
        time.sleep(0.1)
    sent = n - link.outbox.stats().depth
    link.stop()
    return after_fill - base, peak - base, sent / replay_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3, help="interleaved raw/outbox runs")
    ap.add_argument("--replay", type=int, default=100000)
    ap.add_argument("--backlog", type=int, default=1000000)
    ap.add_argument("--backlog-replay-s", type=float, default=10.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wolfpack-bench-"))
    broker = Mosquitto(work).start()
    rows: list[tuple[str, str, str]] = []
    try:
        n = args.messages
        payloads = envelopes(n)
        raw: list[float] = []
        box: list[float] = []
        cpu_raw: list[float] = []
        cpu_box: list[float] = []
        for i in range(args.runs):  # interleaved, so a busy neighbour disturbs both alike
            c0 = time.process_time()
            raw.append(raw_paho(broker.port, payloads))
            c1 = time.process_time()
            box.append(through_outbox(broker.url, work / f"tp{i}.sqlite3", n))
            c2 = time.process_time()
            cpu_raw.append((c1 - c0) * 1e6 / n)
            cpu_box.append((c2 - c1) * 1e6 / n)
        raw_med, box_med = statistics.median(raw), statistics.median(box)
        for label, runs in (("raw paho QoS 1 publish loop", raw), ("through the outbox", box)):
            rows.append(
                (
                    f"{label}, {n} msgs (median)",
                    f"{statistics.median(runs):,.0f} msg/s",
                    "runs: " + ", ".join(f"{r:,.0f}" for r in runs),
                )
            )
        ratios = ", ".join(f"{b / r:.2f}" for r, b in zip(raw, box, strict=True))
        rows.append(
            (
                "outbox / raw paho (medians)",
                f"{box_med / raw_med:.2f}x",
                f"goal >= 0.70x; per run: {ratios}",
            )
        )
        rows.append(
            (
                "CPU per message (this process), medians",
                f"{statistics.median(cpu_raw):.0f} / {statistics.median(cpu_box):.0f} us",
                "raw paho / through the outbox (incl. its SQLite commit)",
            )
        )
        append_rate, rep = replay(broker.url, work / "replay.sqlite3", args.replay)
        rows.append(
            (
                f"append only (offline), {args.replay} msgs",
                f"{append_rate:,.0f} msg/s",
                "one writer: a durable commit per message",
            )
        )
        rate4, per_commit = concurrent_appends(broker.url, work / "writers.sqlite3", 20000, 4)
        rows.append(
            (
                "append only (offline), 4 writers, 20000 msgs",
                f"{rate4:,.0f} msg/s",
                f"group commit: {per_commit:.1f} messages per transaction",
            )
        )
        rows.append(
            (f"replay of {args.replay:,} backlog", f"{rep:,.0f} msg/s", "goal >= 5,000 msg/s")
        )
        cap = 2000.0
        thr = throttled(broker.url, work / "thr.sqlite3", 6000, cap)
        rows.append((f"replay with replay_rate={cap:.0f}", f"{thr:,.0f} msg/s", "the cap holds"))
        grow_fill, grow_peak, big_rate = big_backlog(
            broker.url, work / "big.sqlite3", args.backlog, args.backlog_replay_s
        )
        rows.append(
            (f"RSS growth, {args.backlog:,} backlog stored", f"{grow_fill:.1f} MB", "goal <= 20 MB")
        )
        rows.append(
            (
                f"RSS growth, replaying it {args.backlog_replay_s:.0f} s",
                f"{grow_peak:.1f} MB",
                f"sent {big_rate:,.0f} msg/s from it",
            )
        )
    finally:
        broker.stop()
    try:
        from iotcore import Broker

        port = free_port()
        with Broker(port=port, listen="127.0.0.1"):
            emb = through_outbox(
                f"mqtt://127.0.0.1:{port}", work / "emb.sqlite3", args.messages, "3.1.1"
            )
        rows.append(
            (
                f"through outbox, embedded iotcore, {args.messages}",
                f"{emb:,.0f} msg/s",
                "MQTT 3.1.1 (its default listener)",
            )
        )
    except Exception as exc:  # the embedded row is informative only
        rows.append(("embedded iotcore", "n/a", str(exc)[:60]))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  note")
    print("-" * (width + 40))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
