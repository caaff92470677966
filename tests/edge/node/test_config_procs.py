"""Helpers (no tests here): real processes for the config-apply tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def cell_config(mcu_port: Path, description: str = "test cell", mqtt: str = "") -> str:
    """A cell with one MCU and nothing else: healthy ('ready') as soon as the MCU answers."""
    return (
        f"node: {{id: n1, site: s1, description: {description}}}\n"
        f"mcus: [{{name: main, port: {mcu_port}}}]\n"
        f"{mqtt}"
        "cell:\n"
        "  belt: {counts_per_mm: 1, length_mm: 3000, nominal_speed_mm_s: 1000, mcu: main}\n"
        "  photo_eyes: [{id: in, position_mm: 100, mcu_input: 0}]\n"
        "  induction_eye: in\n"
        "  decision_point_mm: 800\n"
        "  chutes: [{id: a, diverter_mm: 1000, output: 1}]\n"
    )


def mqtt_section(broker: str, outbox: Path) -> str:
    return f'mqtt:\n  broker: {broker}\n  protocol: "3.1.1"\n  outbox: {{path: {outbox}}}\n'


def wolfpack(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_sim_mcu(link: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "sim", "mcu", "--link", str(link)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not link.exists():
        assert proc.poll() is None, "the simulated MCU exited"
        assert time.monotonic() < deadline, "the simulated MCU did not create its pty"
        time.sleep(0.05)
    return proc


def start_node(board: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "run", "--config-dir", str(board)],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def health(board: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((board / "health.json").read_text()))
    return {}


def wait_health(board: Path, version: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = health(board)
        if h.get("config_version") == version and h.get("healthy"):
            return h
        time.sleep(0.05)
    raise AssertionError(f"not healthy on version {version} in {timeout} s: {health(board)}")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def history(board: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (board / "history.jsonl").read_text().splitlines()]
