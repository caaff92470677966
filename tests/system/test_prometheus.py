"""A real Prometheus server (the Debian package) scrapes the /metrics of the node that
`wolfpack sim` runs against the simulated cell, and answers over its HTTP API how many parcels
the cell sorts per minute; the answer is held against the node's own parcel records. Every
expression of the shipped Grafana dashboard is evaluated by the same server."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_board_config
from edge.sim.run import DEFAULT_CONFIG as SIM_CONFIG
from edge.sim.run import CellSimulation, SimOptions

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "configs" / "grafana" / "wolfpack-cell.json"
SCRAPE_S = 1
WINDOW = "15s"  # the run is short: [1m] would see a third of a minute of samples
RATE_PPH = 12_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` as a child process on a free loopback port, with its own storage."""

    def __init__(self, workdir: Path, target: str) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus is not installed: run scripts/system-deps.sh (Debian package)")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML: the scrape config of docs/metrics.md, at 1 s
                {
                    "global": {"scrape_interval": f"{SCRAPE_S}s",
                               "evaluation_interval": f"{SCRAPE_S}s"},
                    "scrape_configs": [{
                        "job_name": "wolfpack",
                        "static_configs": [{"targets": [target]}],
                    }],
                },
                indent=1,
            )
        )  # fmt: skip
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready in {timeout} s: {self.log.read_text()[-2000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (an error from the server fails the test)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr}: {exc.read().decode()}") from exc
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # by pid: only the server this test started
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _sorted_records(sim: CellSimulation) -> int:
    with sim.got.lock:
        return sum(1 for r in sim.got.records if r.get("outcome") == "sorted")


@contextlib.contextmanager
def _sampling(sim: CellSimulation) -> Iterator[list[tuple[float, int]]]:
    """(monotonic time, sorted records the brain side has received), every 0.25 s."""
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.25):
            samples.append((time.monotonic(), _sorted_records(sim)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(2)


def _count_at(samples: list[tuple[float, int]], t: float) -> int:
    return max((n for at, n in samples if at <= t), default=0)


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard, Grafana's variables given values."""
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append(
                target["expr"]
                .replace("$__rate_interval", WINDOW)
                .replace("$__interval", "1s")
                .replace("$__range", "1m")
                .replace("$instance", ".*")
            )
    return out


def patient_config(tmp_path: Path) -> Path:
    """configs/sim-cell.yaml with patient PLC timings: this test is about the metrics, and a
    CI machine busy with other tests must not stall the PLC link into a fault (a stop would
    make the cell's real rate 0, which Prometheus would report just as faithfully)."""
    data = load_board_config(SIM_CONFIG).model_dump(mode="json", exclude_none=True)
    data["cell"]["plc"]["lost_after_ms"] = 3000
    for dev in data["modbus"]["devices"]:
        dev["timeout_ms"] = 300
    path = tmp_path / "sim-cell.yaml"
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML
    return path


def test_a_real_prometheus_answers_sorted_parcels_per_minute(tmp_path: Path) -> None:
    sim = CellSimulation(
        SimOptions(rate_pph=RATE_PPH, duration_s=120, workdir=tmp_path / "run", seed=3,
                   config=patient_config(tmp_path), plc_watchdog_ms=2000)
    )  # fmt: skip
    prom: Prometheus | None = None
    try:
        sim.start()  # the node is running, the belt moving, parcels arriving
        sim._watch(sim._operator, "sim-operator")  # restarts the cell if it stops all the same
        assert sim.metrics_url.startswith("http://127.0.0.1:")
        target = sim.metrics_url.removeprefix("http://").removesuffix("/metrics")
        prom = Prometheus(tmp_path / "prometheus", target)
        prom.wait_ready()
        with _sampling(sim) as samples:
            deadline = time.monotonic() + 20
            while prom.value('up{job="wolfpack"}') != 1:
                assert time.monotonic() < deadline, "prometheus never scraped the node"
                time.sleep(0.5)
            time.sleep(22)  # ~22 scrapes; parcels reach their chutes ~5 s after induction
            before = _sorted_records(sim)
            t_query = time.monotonic()
            per_min = prom.value(
                f'sum(rate(wolfpack_parcels_total{{outcome="sorted"}}[{WINDOW}])) * 60'
            )
            total = prom.value('wolfpack_parcels_total{job="wolfpack",outcome="sorted"}')
            after = _sorted_records(sim)
            one_min = prom.value('sum(rate(wolfpack_parcels_total{outcome="sorted"}[1m])) * 60')
            p99 = prom.value(
                "histogram_quantile(0.99, sum by (le) (rate(wolfpack_stage_latency_seconds_bucket"
                f'{{stage="label_to_decision"}}[{WINDOW}])))'
            )
            decided = prom.value('wolfpack_stage_latency_seconds_count{stage="label_to_decision"}')
            with sim.got.lock:
                with_stage = sum("label_to_decision" in r.get("latency_ms", {})
                                 for r in sim.got.records)  # fmt: skip
            running = prom.value('wolfpack_safety_state{state="running"}')
            mcu_up = prom.value('wolfpack_device_up{device="mcu"}')
            node_label = prom.query("wolfpack_node_info")[0]["metric"]
            for expr in dashboard_exprs():
                prom.query(expr)  # the server parses and evaluates each one
        # the node's own count, as its parcel records reached the brain side
        node_per_min = (_count_at(samples, t_query) - _count_at(samples, t_query - 15)) * 4
        with sim.got.lock:
            outcomes = Counter(r.get("outcome") for r in sim.got.records)
            safety = [(s["from"], s["to"], s.get("cause")) for s in sim.got.safety]
        why = (f"sorted/min: prometheus {per_min} ([1m]: {one_min}), node records "
               f"{node_per_min}; total prometheus {total}, records {before}..{after}; "
               f"label_to_decision p99 {p99}, count {decided} (records {with_stage}); "
               f"records {dict(outcomes)}; safety {safety}; "
               f"health {sim._node_health()}")  # fmt: skip
        print(why)
        assert per_min is not None and total is not None
        # the counter Prometheus holds is the node's, at most a scrape (and a delivery) old
        assert before - 12 <= total <= after + 2, why
        # sorted parcels per minute: what the node's records say over the same 15 s, and what
        # 12,000 parcels/h (2 % unreadable, rejected) make
        assert per_min == pytest.approx(node_per_min, rel=0.3, abs=12), why
        assert 0.5 * RATE_PPH / 60 < per_min < 1.6 * RATE_PPH / 60, why
        assert one_min is not None and one_min > 0, why
        # one observation per record with the stage; the p99 within the bucket that holds
        # the brain's 400 ms deadline (the routing table decides then), or the next one
        assert decided is not None and with_stage - 12 <= decided <= with_stage + 2, why
        assert p99 is not None and 0 < p99 <= 1.0, why
        assert running == 1 and mcu_up == 1, why
        assert node_label["site"] == "sim" and node_label["node"] == "sim-cell"
    finally:
        if prom is not None:
            prom.stop()
        sim.close()
