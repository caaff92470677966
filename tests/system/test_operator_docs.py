"""docs/operators.md runs as written (issue 17, "Done when"): every ```sh block, against a
mosquitto set up from the shipped templates (TLS, passwords, the ACL for site dc-berlin), with
a node cell-07 answering start/stop/reset/status. Only the host, port, CA file and the
password files' folder are replaced by the test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_link.commands import CommandError
from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink
from tests.fleet_link.test_acl import _secured_broker

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operators.md"
SITE = "dc-berlin"
PASSWORDS = {"cell-07": "pw-cell", "monitor": "pw-monitor", "operator-alice": "pw-alice"}


def blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    yield from (
        (port, ca, tmp_path)
        for port, ca in _secured_broker(tmp_path, False, site=SITE, passwords=PASSWORDS)
    )


def run_block(block: str, port: int, ca: Path, home: Path) -> subprocess.CompletedProcess[str]:
    script = (
        block.replace("mqtt.dc-berlin.example:8883", f"127.0.0.1:{port}")
        .replace("-h mqtt.dc-berlin.example -p 8883", f"-h 127.0.0.1 -p {port}")
        .replace(" ca.crt", f" {ca}")
        .replace("~/.wolfpack/", f"{home}/")
    )
    assert "dc-berlin.example" not in script and "~" not in script, script
    return subprocess.run(
        ["bash", "-e", "-c", script],
        capture_output=True,
        text=True,
        cwd=home,
        timeout=60,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
        },
    )


def test_the_operator_docs_run_as_written(site):
    port, ca, tmp = site
    home = tmp / "home"
    home.mkdir()
    for user in ("monitor", "operator-alice"):
        (home / user).write_text(PASSWORDS[user] + "\n")
    (tmp / "cell-07.password").write_text(PASSWORDS["cell-07"])
    cfg = MqttConfig.model_validate(
        {
            "broker": f"mqtts://127.0.0.1:{port}",
            "username": "cell-07",
            "password_file": str(tmp / "cell-07.password"),
            "tls": {"ca_file": str(ca)},
            "outbox": {"path": str(tmp / "cell-07.sqlite3")},
        }
    )
    node = EdgeLink(cfg, SITE, "cell-07")
    ran: list[str] = []
    state = {"state": "running"}

    def act(name: str, after: str) -> None:
        def handle(_args: dict) -> dict:
            ran.append(name)
            state["state"] = after
            return dict(state)

        node.commands.register(name, handle)

    act("stop", "ready")
    act("start", "running")

    def reset(_args: dict) -> dict:
        raise CommandError("refused", "e-stop still pressed")

    node.commands.register("reset", reset)
    node.commands.register("status", lambda _a: {**state, "devices_up": ["mcu", "plc"]})
    node.start()
    try:
        assert node.connected.wait(10)
        monitor, command, by_hand, reading = blocks()
        done = run_block(monitor, port, ca, home)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("site dc-berlin: 1/1 nodes online"), done.stdout
        assert done.stdout.splitlines()[2].split()[:2] == ["cell-07", "online"]

        done = run_block(command, port, ca, home)
        assert done.returncode == 0, done.stderr
        out = done.stdout.splitlines()
        assert out[0] == "cell-07: status done, state running"
        assert out[-1] == "cell-07: stop done, state ready" and ran == ["stop"]

        done = run_block(by_hand, port, ca, home)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["command"] == "stop" and result["ok"] is True, result
        assert result["request_id"].startswith("alice-") and ran == ["stop", "stop"]

        done = run_block(reading, port, ca, home)
        assert done.returncode == 0, done.stderr
        topic, payload = done.stdout.splitlines()[0].split(" ", 1)
        assert topic == "wolfpack/v1/dc-berlin/cell-07/state"
        assert json.loads(payload)["status"] == "online"
    finally:
        node.stop()
