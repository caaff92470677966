"""The technician's commands, run as subprocesses against `wolfpack sim mcu` on a real pty, and
against the C firmware's host build (firmware/build/host/wolfpack-mcu-host, same options)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _wolfpack() -> list[str]:
    exe = Path(sys.executable).with_name("wolfpack")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge.cli.main"]


def _simulated_mcu(kind: str, link: Path, *options: str) -> list[str]:
    """The command line of a simulated MCU of ``kind`` (the two take the same options)."""
    if kind == "c":
        from sim_hardware.mcu.c_firmware import host_binary

        return [str(host_binary()), "--link", str(link), *options]
    return [*_wolfpack(), "sim", "mcu", "--link", str(link), *options]


@pytest.fixture
def sim_link(tmp_path, mcu_kind):
    """`wolfpack sim mcu --link PATH --noise 0.001` (or the C firmware) in the background."""
    link = tmp_path / "wp-mcu"
    proc = subprocess.Popen(
        _simulated_mcu(mcu_kind, link, "--noise", "0.001", "--seed", "5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):
            if link.is_symlink() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert link.is_symlink(), f"sim did not start: {proc.stderr.read() if proc.poll() else ''}"
        yield link, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_ping_2000_on_a_noisy_line_loses_nothing_and_shows_the_noise(sim_link):
    link, _ = sim_link
    out = subprocess.run(
        [*_wolfpack(), "mcu", "ping", "--port", str(link), "--count", "2000", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["requested"] == 2000 and report["completed"] == 2000 and report["lost"] == 0
    host, mcu = report["host"], report["mcu"]
    # noise was met (bad frames in both directions) and recovered from (NAKs, retransmits)
    assert host["bad_frames_received"] > 0 and mcu["rx_bad"] > 0
    assert host["retransmits"] > 0 and mcu["retransmits"] > 0
    assert host["naks_sent"] + mcu["naks_sent"] > 0
    assert 0 < report["rtt_ms"]["p50"] <= report["rtt_ms"]["p99"]


def test_sim_stops_on_sigterm_and_removes_its_link(sim_link):
    link, proc = sim_link
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "simulated MCU on" in proc.stdout.read()
    assert not os.path.lexists(link)


def test_info_prints_what_the_firmware_identified_as(sim_link, mcu_kind):
    link, _ = sim_link
    firmware = {"python": "wolfpack-sim-mcu", "c": "wolfpack-mcu"}[mcu_kind]
    out = subprocess.run(
        [*_wolfpack(), "mcu", "info", "--port", str(link)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{firmware} 1.0.0 (protocol 2)" in out.stdout
    assert "rx window  8 frames" in out.stdout and "schedule_at_count" in out.stdout
    js = subprocess.run(
        [*_wolfpack(), "mcu", "info", "--port", str(link), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    info = json.loads(js.stdout)
    assert info["firmware"] == firmware and info["clock_freq"] == 1_000_000


def test_info_on_a_missing_port_names_the_port_and_cause(tmp_path):
    port = tmp_path / "nothing-here"
    out = subprocess.run(
        [*_wolfpack(), "mcu", "info", "--port", str(port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert f"{port}: no such serial port" in out.stderr


def test_info_on_a_silent_port_names_the_port_and_cause(tmp_path):
    master, slave = os.openpty()  # a pty with nothing answering on the other side
    try:
        port = tmp_path / "silent"
        port.symlink_to(os.ttyname(slave))
        out = subprocess.run(
            [*_wolfpack(), "mcu", "info", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 1
        assert f"{port}: no identify answer within" in out.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_ports_come_from_the_board_config(sim_link, tmp_path):
    link, _ = sim_link
    cfg = tmp_path / "board.yaml"
    cfg.write_text(
        "node: {id: cell-1, site: test}\n"
        f"mcus:\n  - {{name: main, port: '{link}', baud: 250000, watchdog_ms: 200}}\n"
    )
    out = subprocess.run(
        [*_wolfpack(), "mcu", "ping", "--config", str(cfg), "--mcu", "main", "--count", "50"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "50/50 completed, 0 lost" in out.stdout
    assert "50/50 pings" in out.stderr  # visible progress


def test_cli_fault_flags_unplug_and_the_ping_rides_through(tmp_path, mcu_kind):
    link = tmp_path / "flaky"
    sim = subprocess.Popen(
        _simulated_mcu(mcu_kind, link, "--baud", "115200", "--unplug-every", "1.5",
                       "--unplug-for", "0.2", "--stall-every", "0.35", "--stall-for", "0.05"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(200):
            if link.is_symlink():
                break
            time.sleep(0.05)
        out = subprocess.run(
            [*_wolfpack(), "mcu", "ping", "--port", str(link), "--baud", "115200",
             "--count", "600", "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
    report = json.loads(out.stdout)
    assert report["completed"] == 600 and report["lost"] == 0, out.stderr
    assert report["host"]["reconnects"] >= 1
