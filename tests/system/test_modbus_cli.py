"""`wolfpack sim plc` and `wolfpack modbus read|poll|write` as a technician runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware_bridge.modbus.helpers import CONVEYOR_TAGS

WOLFPACK = [sys.executable, "-m", "edge.cli.main"]


def wolfpack(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WOLFPACK, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def sim_plc(tmp_path) -> Iterator[tuple[int, Path]]:
    """`wolfpack sim plc` on a free port and a pty; yields (port, rtu path)."""
    rtu = tmp_path / "plc-rtu"
    proc = subprocess.Popen(
        [*WOLFPACK, "sim", "plc", "--port", "0", "--rtu", str(rtu), "--baud", "115200",
         "--units", "1,2", "--no-answer-unit", "2", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        port = int(re.search(r"tcp on 127\.0\.0\.1:(\d+)", first).group(1))
        assert "rtu on" in proc.stdout.readline()
        yield port, rtu
    finally:
        proc.terminate()
        proc.wait(10)


def write_config(tmp_path: Path, port: int, rtu: Path) -> Path:
    config = {
        "node": {"id": "cli-test", "site": "sim"},
        "modbus": {
            "devices": [
                {"name": "conveyor", "tcp": {"host": "127.0.0.1", "port": port},
                 "tags": CONVEYOR_TAGS},
                {"name": "vfd", "rtu": {"port": str(rtu), "baud": 115200}, "unit_id": 1,
                 "poll_ms": 100, "tags": CONVEYOR_TAGS[8:10]},
                {"name": "dead", "rtu": {"port": str(rtu), "baud": 115200}, "unit_id": 2,
                 "timeout_ms": 100, "retries": 0, "tags": CONVEYOR_TAGS[8:10]},
                {"name": "nowhere", "tcp": {"host": "127.0.0.1", "port": 1},
                 "timeout_ms": 200, "tags": CONVEYOR_TAGS[8:10]},
            ]
        },
    }  # fmt: skip
    path = tmp_path / "board.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def test_read_prints_values_with_units_and_quality(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "conveyor")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    assert lines["model"][1:] == ["WP-CONVEYOR-SIM", "good"]
    assert lines["speed"][1:] == ["0", "m/s", "good"]


def test_read_json_over_rtu_and_named_tags(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "vfd", "speed", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["device"] == "vfd"
    assert [(v["tag"], v["value"], v["unit"], v["quality"]) for v in doc["values"]] == [
        ("speed", 0.0, "m/s", "good")
    ]


def test_read_of_a_silent_unit_says_which_and_why(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "dead", "--json")
    assert out.returncode == 1
    assert {v["quality"] for v in json.loads(out.stdout)["values"]} == {"bad"}
    assert "device dead" in out.stderr and "plc-rtu unit 2" in out.stderr
    assert "no answer within 0.100 s" in out.stderr


def test_read_of_an_unreachable_host_names_host_port_and_cause(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "nowhere")
    assert out.returncode == 1
    assert "127.0.0.1:1" in out.stderr and "cannot connect" in out.stderr


def test_unknown_device_and_tag_are_usage_errors(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "belt")
    assert out.returncode == 2 and "no Modbus device 'belt'" in out.stderr
    out = wolfpack("modbus", "read", "--config", str(cfg), "--device", "vfd", "sped")
    assert out.returncode == 2 and "has no tag sped" in out.stderr


def test_poll_shows_a_bounded_live_table(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    out = wolfpack("modbus", "poll", "--config", str(cfg), "--device", "conveyor",
                   "--device", "vfd", "--count", "2", "--interval", "0.3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refresh ") == 2
    assert re.search(r"^vfd\s+speed\s+0\s+m/s\s+good", out.stdout, re.M)


def test_write_is_range_checked_then_applied(sim_plc, tmp_path):
    cfg = write_config(tmp_path, *sim_plc)
    base = ["modbus", "write", "--config", str(cfg), "--device", "conveyor"]
    out = wolfpack(*base, "speed-setpoint", "9")
    assert out.returncode == 1 and "refused" in out.stderr and "max 2.5" in out.stderr
    out = wolfpack(*base, "speed", "1")
    assert out.returncode == 1 and "read-only" in out.stderr
    out = wolfpack(*base, "speed-setpoint", "1.5", "--verify")
    assert out.returncode == 0, out.stderr
    assert "speed-setpoint = 1.5 m/s" in out.stdout
    back = wolfpack("modbus", "read", "--config", str(cfg), "--device", "conveyor",
                    "speed-setpoint", "--json")  # fmt: skip
    assert json.loads(back.stdout)["values"][0]["value"] == 1.5
