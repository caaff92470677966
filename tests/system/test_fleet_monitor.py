"""`wolfpack monitor --once` and `wolfpack broker` against real brokers and real nodes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fleet_link.brain import Brain
from fleet_link.embedded import EmbeddedBroker
from fleet_link.link import EdgeLink
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
WOLFPACK = [sys.executable, "-m", "edge.cli.main"]


def test_monitor_once_shows_each_node(tmp_path: Path):
    broker = Mosquitto(tmp_path).start()
    busy = EdgeLink(link_config(tmp_path / "a", broker.url), "dc-1", "cell-1").start()
    gone = EdgeLink(link_config(tmp_path / "b", broker.url), "dc-1", "cell-2").start()
    try:
        assert busy.connected.wait(10) and gone.connected.wait(10)
        gone.stop()  # says goodbye: retained offline
        proc = subprocess.Popen(
            [
                *WOLFPACK,
                "monitor",
                "--broker",
                broker.url,
                "--site",
                "dc-1",
                "--once",
                "--settle",
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        busy.set_fault("jam_chute_3", True, severity="error")
        # the cell works while the monitor starts (seconds on a loaded box) and listens
        i = 0
        while proc.poll() is None and i < 2000:
            busy.publish_event("parcel", {"parcel_id": f"P{i}", "outcome": "sorted"})
            i += 1
            time.sleep(0.02)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
        assert out.startswith("site dc-1: 1/2 nodes online"), out
        # NODE LINK SAFETY FAULTS MISSING SORTED/MIN REJECTED/MIN LOST/MIN BRAIN CONFIG AGE ..
        cols = lines["cell-1"].split()
        assert cols[1] == "online" and cols[3] == "jam_chute_3"
        assert int(cols[5]) > 0 and cols[6:8] == ["0", "0"]  # sorted, none rejected or lost
        assert float(cols[10].rstrip("s")) < 3.0  # age of its newest message, by its ts
        assert lines["cell-2"].split()[1:3] == ["offline", "(shutdown)"]
    finally:
        busy.stop()
        gone.stop()
        broker.stop()


def test_monitor_says_when_the_broker_is_unreachable():
    port = free_port()
    done = subprocess.run(
        [*WOLFPACK, "monitor", "--broker", f"mqtt://127.0.0.1:{port}", "--site", "x", "--once"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 1 and f"cannot connect to mqtt://127.0.0.1:{port}" in done.stderr


def test_embedded_broker_carries_the_fleet_link_with_no_install(tmp_path: Path):
    with EmbeddedBroker(port=free_port()) as broker:
        got = []
        brain = Brain(broker.url, "sim", on_message=got.append, from_start=True).start()
        cfg = link_config(tmp_path, broker.url).model_copy(update={"protocol": "3.1.1"})
        link = EdgeLink(cfg, "sim", "sim-cell").start()
        try:
            for i in range(200):
                link.publish_event("parcel", {"parcel_id": f"P{i}", "outcome": "sorted"})
            assert link.wait_drained(10)
            assert brain.command("sim-cell", "ping", {}, timeout=5).ok
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len([m for m in got if m.kind == "events"]) < 200:
                time.sleep(0.05)
            assert [m.seq for m in got if m.channel == "events/parcel"] == list(range(1, 201))
            assert brain.nodes["sim-cell"].online
        finally:
            link.stop()
            brain.stop()


def test_wolfpack_broker_command_serves_and_stops(tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen(
        [*WOLFPACK, "broker", "--port", str(port), "--duration", "20"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert "listening on mqtt://127.0.0.1:" in proc.stdout.readline()
        assert port_open(port)
    finally:
        proc.terminate()
        proc.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and port_open(port):
        time.sleep(0.1)
    assert not port_open(port)  # its child broker went with it
