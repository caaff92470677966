"""`wolfpack monitor` as an operator sees it: the live table (rich) in a real terminal (tmux),
against a real mosquitto and nodes publishing through the real fleet link (issue 17, item 6).
A cell in e-stop shows ESTOP, a faulted one FAULT with its fault and missing device, one
running without a scanner RUNNING DEGRADED with its rates and brain share, and a node killed
with kill -9 shows DEAD at once (its will), its rates zero."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.node.fleet import NodeLink
from fleet_link.link import EdgeLink
from tests.fleet_link.conftest import link_config
from tests.fleet_link.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[2]
SITE = "site"  # tests.fleet_link.edge_process publishes as site/edge-1
TMUX = shutil.which("tmux")

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux not installed (scripts/system-deps.sh)")


def cell_link(tmp_path: Path, url: str, node: str, cell: dict[str, Any]) -> NodeLink:
    """A node whose retained state carries the cell's status as edge/node/cell_node.py's."""
    link = NodeLink(link_config(tmp_path / node, url), SITE, node, config_version="v7")
    base = {"healthy": False, "config_version": "v7", "devices_missing": [], "degraded": []}
    link.extra_state = lambda: {"cell": {**base, **cell}}
    return link.start()


class Screen:
    """A terminal of 230 x 40 on a tmux server of its own (its socket name is ours)."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"wolfpack-test-{uuid.uuid4().hex[:8]}"
        self.tmux = [TMUX or "tmux", "-L", self.socket, "-f", "/dev/null"]
        line = " ".join(command)
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", "mon", "-x", "230", "-y", "40", line],
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"},
        )

    def text(self) -> str:
        done = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", "mon"], capture_output=True, text=True
        )
        return done.stdout

    def row(self, node: str) -> str:
        for line in self.text().splitlines():
            if line.split()[:1] == [node]:
                return line
        return ""

    def wait(self, what: str, ok: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.1)
        raise AssertionError(f"the screen never showed {what}:\n{self.text()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    try:
        yield b
    finally:
        b.stop()


def parcel(outcome: str, source: str | None) -> dict[str, Any]:
    return {"parcel_id": 1, "outcome": outcome, "decision_source": source, "chute": "c1"}


def test_the_live_table_shows_estop_fault_degraded_and_dead(tmp_path: Path, broker: Mosquitto):
    links: list[EdgeLink] = [
        cell_link(tmp_path, broker.url, "cell-estop", {"state": "estop"}),
        cell_link(
            tmp_path, broker.url, "cell-fault", {"state": "fault", "devices_missing": ["plc"]}
        ),
        cell_link(
            tmp_path,
            broker.url,
            "cell-degraded",
            {
                "state": "running",
                "healthy": True,
                "devices_missing": ["scanner-2"],
                "degraded": ["scanner-2"],
            },
        ),
    ]
    screen = Screen(
        [sys.executable, "-m", "edge.cli.main", "monitor", "--broker", broker.url,
         "--site", SITE, "--interval", "0.3"]
    )  # fmt: skip
    dying = None
    try:
        for link in links:
            assert link.connected.wait(10)
        screen.wait("three nodes", lambda: all(screen.row(n.node) for n in links))
        dying = subprocess.Popen(
            [sys.executable, "-m", "tests.fleet_link.edge_process", "--broker", broker.url,
             "--db", str(tmp_path / "dying.sqlite3"), "--count", "12"],
            stdout=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        estop, fault, degraded = links
        estop.publish_event("safety", {"from": "running", "to": "estop", "cause": "e-stop"})
        fault.set_fault("plc_lost", True, severity="error", message="PLC silent 400 ms")
        for outcome, source, n in (
            ("sorted", "brain", 15),
            ("sorted", "routing_table", 5),
            ("rejected", "unreadable", 4),
            ("lost", "brain", 2),
        ):  # the brain decided 17 of the 22 that brain or table decided: 77%
            for _ in range(n):
                degraded.publish_event("parcel", parcel(outcome, source))

        def cols(node: str) -> list[str]:
            return screen.row(node).split()

        screen.wait("edge-1 sorting", lambda: cols("edge-1")[5:6] not in ([], ["0"]))
        screen.wait("ESTOP", lambda: cols("cell-estop")[1:3] == ["online", "ESTOP"])
        screen.wait(
            "FAULT", lambda: "FAULT" in cols("cell-fault") and "plc_lost" in cols("cell-fault")
        )
        assert cols("cell-fault")[2:5] == ["FAULT", "plc_lost", "plc"]
        screen.wait("the parcels", lambda: cols("cell-degraded")[9:10] == ["77%"])
        row = cols("cell-degraded")
        # NODE LINK SAFETY.. FAULTS MISSING SORTED REJECTED LOST BRAIN CONFIG AGE OUTBOX
        assert row[1:4] == ["online", "RUNNING", "DEGRADED"]
        assert row[4:6] == ["-", "scanner-2"]
        sorted_, rejected, lost = (int(x) for x in row[6:9])
        assert sorted_ > rejected > lost > 0  # 20, 4 and 2 in the window
        assert row[9] == "77%" and row[10] == "v7"

        killed = time.monotonic()
        os.kill(dying.pid, signal.SIGKILL)
        dying.wait(5)
        screen.wait("DEAD", lambda: cols("edge-1")[1:3] == ["DEAD", "since"], timeout=10)
        took = time.monotonic() - killed
        dead = cols("edge-1")
        # NODE DEAD since HH:MM:SS SAFETY FAULTS MISSING SORTED REJECTED LOST ...
        assert dead[7:10] == ["0", "0", "0"], dead  # no throughput from a dead node
        assert took < 5.0  # the broker's will (keepalive 5 s at most), not a minute
        assert screen.text().splitlines()[1].startswith(f"site {SITE}: 3/4 nodes online, 1 DEAD")
        assert "Traceback" not in screen.text()
    finally:
        screen.close()
        if dying is not None and dying.poll() is None:
            dying.kill()
        for link in links:
            link.stop()
