"""The shared parts of every ``wolfpack sim`` (edge/sim/harness.py): the fault schedule, the
node's health file and log, waiting for it, its CPU and memory. Fast: real time, < 1 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.sim.harness import (
    epoch,
    free_port,
    log_tail,
    process_usage,
    read_health,
    run_schedule,
    wait_running,
)


def test_faults_begin_and_end_on_time_and_the_open_ones_end_with_the_arrivals() -> None:
    log: list[tuple[str, bool, float]] = []
    ticks: list[float] = []
    t0 = time.monotonic()

    def apply(name: str, begin: bool) -> None:
        log.append((name, begin, time.monotonic() - t0))

    windows = [(0.0, 0.1, "a"), (0.05, 5.0, "b"), (0.1, 0.2, "c"), (9.0, 10.0, "late")]
    run_schedule(windows, 0.3, t0, apply, [(0.1, ticks.append)], tick_s=0.01)
    order = [(n, b) for n, b, _ in log]
    assert order == [("a", True), ("b", True), ("a", False), ("c", True), ("c", False),
                     ("b", False), ("late", False)]  # fmt: skip
    # an end before a begin at the same instant (a ends at 0.1 as c begins)
    assert order.index(("a", False)) < order.index(("c", True))
    for name, begin, t in log:
        start, end = next((s, e) for s, e, n in windows if n == name)
        if name != "late":
            assert t >= (start if begin else min(end, 0.3)) - 1e-3
    assert len(ticks) >= 3 and ticks[0] < 0.05  # periodic from the start, on its period


def test_a_check_that_raises_ends_the_run() -> None:
    def check() -> None:
        raise RuntimeError("the node exited")

    with pytest.raises(RuntimeError, match="exited"):
        run_schedule([], 5.0, time.monotonic(), lambda f, b: None, check=check)


def test_the_node_files_and_its_usage(tmp_path: Path) -> None:
    assert read_health(tmp_path / "health.json") == {}  # missing
    (tmp_path / "health.json").write_text('{"state": "run')  # half written
    assert read_health(tmp_path / "health.json") == {}
    (tmp_path / "health.json").write_text(json.dumps({"state": "running"}))
    assert read_health(tmp_path / "health.json") == {"state": "running"}
    (tmp_path / "node.log").write_text("\n".join(f"line {i}" for i in range(30)))
    assert log_tail(tmp_path / "node.log", 2) == "node log:\nline 28\nline 29"
    assert log_tail(tmp_path / "none.log") == "(no node log)"
    first = process_usage(os.getpid())
    sum(i * i for i in range(200_000))
    u = process_usage(os.getpid(), first)
    assert u["rss_mb"] > 0 and u["cpu_percent"] >= 0
    assert process_usage(2**22 + 12345) == {"cpu_percent": 0.0, "rss_mb": 0.0, "rss_peak_mb": 0.0}
    assert 1024 <= free_port() < 65536
    assert epoch("1970-01-01T00:01:00Z") == 60.0


def test_waiting_for_a_node_that_exits_says_so_with_its_log(tmp_path: Path) -> None:
    node = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    node.wait(10)
    with pytest.raises(ValueError, match="exited with 3: tail"):
        wait_running(node, tmp_path / "health.json", ValueError, lambda: "tail", 5.0)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        (tmp_path / "health.json").write_text(json.dumps({"state": "running"}))
        wait_running(running, tmp_path / "health.json", ValueError, lambda: "", 5.0)
    finally:
        running.kill()
        running.wait()
