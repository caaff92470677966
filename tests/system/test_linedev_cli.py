"""`wolfpack sim scanner` and `wolfpack linedev listen` as subprocesses, over a pty and TCP."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def _wolfpack() -> list[str]:
    exe = Path(sys.executable).with_name("wolfpack")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge.cli.main"]


@pytest.fixture
def start_sim(tmp_path):
    """Start `wolfpack sim scanner ARGS`; returns (pty path, tcp port) once it is listening."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[Path, int]:
        link = tmp_path / f"scanner{len(procs)}"
        proc = subprocess.Popen(
            [*_wolfpack(), "sim", "scanner", "--link", str(link), "--tcp-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        m = re.search(r"tcp 127\.0\.0\.1:(\d+)", line)
        assert m and link.is_symlink(), f"sim did not start: {line!r} {proc.poll()}"
        return link, int(m.group(1))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _listen(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_wolfpack(), "linedev", "listen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("where", ["pty", "tcp"])
def test_listen_prints_each_reading_and_a_summary(start_sim, where):
    link, port = start_sim("--every", "0.05", "--no-read-rate", "0.2", "--seed", "4")
    target = ["--port", str(link)] if where == "pty" else ["--tcp", f"127.0.0.1:{port}"]
    out = _listen(*target, "--count", "30", "--json", "--duration", "20")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["event"] == "state" and events[0]["state"] == "connected"
    readings = [e for e in events if e["event"] in ("read", "no-read")]
    assert len(readings) == 30
    assert all(re.fullmatch(r"WP\d{6}", e["text"]) for e in readings if e["event"] == "read")
    numbers = [int(e["text"][2:]) for e in readings if e["event"] == "read"]
    assert numbers == sorted(numbers)
    assert all(e["cause"] == "token" for e in readings if e["event"] == "no-read")
    summary = events[-1]
    assert summary["event"] == "summary" and summary["reads"] + summary["no_reads"] == 30
    assert summary["errors"] == 0


def test_listen_in_trigger_mode_gets_a_reading_per_trigger(start_sim):
    link, _ = start_sim("--trigger", r"\x16T\r", "--every", "0.02")
    out = _listen(
        "--port", str(link), "--trigger", r"\x16T\r", "--trigger-every", "0.05", "--count", "5"
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if " read " in ln]
    assert len(lines) == 5 and all("'WP" in ln for ln in lines)
    assert "5 reads" in out.stdout.splitlines()[-1]


def test_listen_with_no_device_says_so_and_fails(tmp_path):
    out = _listen("--port", str(tmp_path / "nothing"), "--duration", "1")
    assert out.returncode == 1
    assert "disconnected" in out.stdout and "no such serial port" in out.stdout
    assert "no reading from" in out.stderr


def test_listen_takes_the_device_from_a_board_config(start_sim, tmp_path):
    _, port = start_sim("--every", "0.05")
    cfg = tmp_path / "board.yaml"
    cfg.write_text(
        "node: {id: cell-1, site: s}\n"
        "line_devices:\n"
        f"  - {{name: scanner-9, tcp: {{host: 127.0.0.1, port: {port}}}}}\n",
        encoding="utf-8",
    )
    out = _listen("--config", str(cfg), "--device", "scanner-9", "--count", "3", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert {e["device"] for e in events} == {"scanner-9"}
    assert events[-1]["reads"] == 3


def test_bad_arguments_are_refused_with_a_reason():
    out = _listen("--tcp", "nohostport")
    assert out.returncode != 0 and "expected HOST:PORT" in out.stderr
    out = subprocess.run(
        [*_wolfpack(), "sim", "scanner", "--tcp-port", "0", "--no-read-rate", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--no-read-rate" in out.stderr


def test_sim_scanner_bad_trigger_escape_is_one_line_not_a_traceback():
    out = subprocess.run(
        [*_wolfpack(), "sim", "scanner", "--tcp-port", "0", "--trigger", "abc\\"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "lone backslash" in out.stderr
