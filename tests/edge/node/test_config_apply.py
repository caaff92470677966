"""`config flash` onto a running node: reload, health check, automatic rollback.

Real processes throughout: the simulated MCU (`wolfpack sim mcu`), the node
(`wolfpack run --config-dir`) and the `wolfpack config flash` command.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from edge.config.store import ConfigStore
from tests.edge.node.test_config_procs import (
    cell_config,
    health,
    history,
    start_node,
    start_sim_mcu,
    stop,
    wait_health,
    wolfpack,
)


@pytest.fixture
def mcu(tmp_path: Path):
    link = tmp_path / "mcu"
    proc = start_sim_mcu(link)
    yield link
    stop(proc)


def test_flash_without_a_running_node_keeps_the_config_for_the_next_start(tmp_path, mcu):
    good = tmp_path / "good.yaml"
    good.write_text(cell_config(mcu))
    board = tmp_path / "board"
    done = wolfpack("config", "flash", str(good), "--to", str(board))
    assert done.returncode == 0, done.stderr
    assert "no running node" in done.stdout
    assert ConfigStore(board).active().stamp.version == 1
    assert [h["event"] for h in history(board)] == ["flash"]


def test_good_config_is_applied_and_a_bad_one_rolled_back_with_the_reason(tmp_path, mcu):
    board = tmp_path / "board"
    first, good, bad = (tmp_path / n for n in ("first.yaml", "good.yaml", "bad.yaml"))
    first.write_text(cell_config(mcu))
    good.write_text(cell_config(mcu, description="second"))
    bad.write_text(cell_config(tmp_path / "no-such-port", description="broken"))
    assert wolfpack("config", "flash", str(first), "--to", str(board)).returncode == 0
    node = start_node(board, tmp_path / "node.log")
    try:
        wait_health(board, "1")
        pid = node.pid
        assert int((board / "node.pid").read_text()) == pid

        applied = wolfpack("config", "flash", str(good), "--to", str(board))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "the node is healthy on version 2" in applied.stdout
        assert health(board)["config_version"] == "2"

        t0 = time.monotonic()
        refused = wolfpack(
            "config", "flash", str(bad), "--to", str(board), "--health-deadline", "4"
        )
        took = time.monotonic() - t0
        assert refused.returncode == 1
        assert "ROLLED BACK: version 3" in refused.stderr
        assert "state boot, devices missing: mcu" in refused.stderr
        assert "healthy again on version 2" in refused.stderr
        assert re.search(r"\d\.\d/4 s: version 3: state boot", refused.stdout)  # progress
        assert took < 4 + 10
        assert ConfigStore(board).active().stamp.version == 2
        assert wait_health(board, "2")["pid"] == pid  # same process, re-executed
        last = history(board)[-1]
        assert last["event"] == "health_check" and last["outcome"] == "rolled_back"
        assert "devices missing: mcu" in last["why"]
    finally:
        stop(node)
    assert not (board / "node.pid").exists()


def test_a_node_that_cannot_start_is_reported_and_rolled_back(tmp_path, mcu):
    board = tmp_path / "board"
    first, nocell = tmp_path / "first.yaml", tmp_path / "nocell.yaml"
    first.write_text(cell_config(mcu))
    nocell.write_text("node: {id: n1, site: s1}\n")  # valid, but 'wolfpack run' needs a cell
    assert wolfpack("config", "flash", str(first), "--to", str(board)).returncode == 0
    node = start_node(board, tmp_path / "node.log")
    try:
        wait_health(board, "1")
        done = wolfpack(
            "config", "flash", str(nocell), "--to", str(board), "--health-deadline", "10"
        )
        assert done.returncode == 1
        assert f"the node did not start: process {node.pid} exited" in done.stderr
        assert "loads the last good version at its next start" in done.stderr
        assert ConfigStore(board).active().stamp.version == 1
        node.wait(5)
    finally:
        stop(node)
