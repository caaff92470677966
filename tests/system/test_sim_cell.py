"""The sorting cell end to end: `wolfpack sim` with the real node in its own process, the
simulated cell (world, PLC over Modbus TCP, MCU on a pty, scanner over TCP), the embedded
broker and the reference brain. Each test asserts against the world's ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge.sim.faults import parse_faults
from edge.sim.report import REPORT_KEYS
from edge.sim.run import CellSimulation, SimOptions

REPO = Path(__file__).resolve().parents[2]


def test_wolfpack_sim_12000_pph_sorts_legible_parcels_and_loses_none(tmp_path: Path) -> None:
    """The issue's command, as a user runs it (the camera beside the scanner: the default)."""
    report_file = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "sim", "--rate", "12000", "--duration", "60",
         "--report", str(report_file), "--quiet", "--workdir", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sorted right" in proc.stdout
    r = json.loads(report_file.read_text())
    assert set(REPORT_KEYS) <= set(r)
    assert r["parcels_in"] >= 150  # ~200 expected at 12,000 pph over 60 s
    why = {k: r.get(k) for k in ("rejected", "lost_detail", "scanner", "node_counters",
                                 "latency_ms", "node", "task_crashes")}  # fmt: skip
    assert r["sorted_correct"] / r["legible"] >= 0.995, why
    # the rest of the legible ones and every unreadable one went to reject
    assert r["sorted_correct"] + r["rejected"]["legible_label"] == r["legible"]
    assert r["rejected"]["unreadable_label"] == r["unreadable_parcels"]
    assert r["mis_sorted"] == 0 and r["lost"] == 0 and r["still_on_belt"] == 0
    assert r["node_records"] == r["parcels_in"] and r["records_unmatched"]["count"] == 0
    assert r["ran_off_belt"] == 0
    # the safety figures: every stroke while running, nothing stopped the belt
    assert r["strokes_while_not_running"] == 0
    assert r["safety"]["strokes"]["strokes"] >= r["parcels_in"]  # one stroke per parcel
    assert r["belt_stop_ms"] is None and r["safety"]["belt_stops"]["stops"] == []
    assert "strokes while not running 0" in proc.stdout
    assert len(r["node_rss"]["samples"]) >= 25  # every 2 s over 60 s
    assert r["decisions"].get("brain", 0) >= 0.99 * r["legible"]
    for stage in ("label_to_decision", "scheduled_to_mcu_ack", "scheduled_to_fired"):
        assert r["latency_ms"][stage]["p99"] is not None
    assert r["divert_error_mm"]["p99"] < 30  # inside the diverter's capture window
    assert 0 < r["node"]["rss_mb"] < 500 and r["node"]["cpu_percent"] > 0
    # the camera runs beside the scanner by default (the config has a vision: section)
    cam = r["camera"]
    assert cam["labels"] > 0 and cam["labels_wrong"] == 0, cam
    assert r["label_source"].get("camera", 0) == cam["labels"], r["label_source"]
    assert "frames/s processed by the node" in proc.stdout


def test_faults_keep_the_cell_sorting_and_every_event_reaches_the_brain(tmp_path: Path) -> None:
    faults = parse_faults(
        "brain-absent@4+10,plc-timeouts=0.1@16+5,serial-noise=0.001,broker-restart@23+4"
    )
    sim = CellSimulation(
        SimOptions(rate_pph=12_000, duration_s=32, faults=faults, workdir=tmp_path / "run")
    )
    r = sim.run()
    assert r["lost"] == 0 and r["mis_sorted"] == 0 and r["still_on_belt"] == 0, r
    # the brain's absence and the broker's restart were bridged by the routing table
    assert r["decisions"].get("routing_table", 0) >= 10
    assert r["decisions"].get("brain", 0) >= 10
    # every parcel's event reached the brain side, once, after the broker came back
    assert r["node_records"] == r["parcels_in"]
    assert r["delivery"]["gaps"] == []
    # parcels the table could not route went to reject, each with the reason
    assert r["rejected"]["by_reason"].get("routing table (brain late or away)", 0) >= 1
    assert r["sorted_correct"] >= 0.5 * r["legible"]


def _world_now(sim: CellSimulation) -> float:
    return float(sim.cell.get("world.t"))


def _wait_state(sim: CellSimulation, state: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sim._node_health().get("state") == state:
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"node not {state!r} within {timeout} s: {sim._node_health()}")


def _strokes_between(sim: CellSimulation, t0: float, t1: float) -> list[Any]:
    return [e for e in sim.cell.get("world.events") if e.kind == "stroke" and t0 <= e.t <= t1]


def test_estop_stops_the_belt_no_stroke_fires_and_only_a_reset_restarts(tmp_path: Path) -> None:
    sim = CellSimulation(SimOptions(rate_pph=12_000, duration_s=60, workdir=tmp_path / "run"))
    try:
        sim.start()
        time.sleep(4.0)  # parcels on the belt, strokes scheduled
        assert sim.consumer is not None
        pressed = _world_now(sim)
        sim.cell.call("world.set_estop", True)
        seen = _wait_state(sim, "estop", 1.0)
        assert seen - pressed < 0.3  # the node saw it through the PLC within a few polls
        stop_ms = sim.board.cell.safety.estop_stop_ms  # type: ignore[union-attr]
        time.sleep(stop_ms / 1000 + 0.2)
        stopped_at = pressed + stop_ms / 1000
        assert sim.cell.call("world.belt.speed_at", _world_now(sim)) == 0.0
        assert sim.cell.call("world.belt.speed_at", stopped_at) == 0.0
        # a reset is refused while the e-stop is still pressed
        refused = sim.consumer.command(sim.node_id, "reset", timeout=5)
        assert not refused.ok and "still pressed" in refused.error["message"]  # type: ignore[index]
        sim.cell.call("world.set_estop", False)
        time.sleep(2.0)  # released: the belt must not start by itself
        now = _world_now(sim)
        assert sim.cell.call("world.belt.speed_at", now) == 0.0
        assert sim._node_health()["state"] == "estop"
        assert _strokes_between(sim, stopped_at, now) == []  # nothing fired while stopped
        for name in ("reset", "start"):
            result = sim.consumer.command(sim.node_id, name, timeout=5)
            assert result.ok, result.error
        _wait_state(sim, "running", 2.0)
        time.sleep(1.5)
        assert sim.cell.call("world.belt.speed_at", _world_now(sim)) > 0
        with sim.got.lock:
            transitions = [(s["from"], s["to"]) for s in sim.got.safety]
        assert ("running", "estop") in transitions and ("estop", "ready") in transitions
    finally:
        sim.close()


@pytest.mark.parametrize("bad", ["--faults=brain-gone@1", "--rate=0"])
def test_sim_refuses_bad_options_with_a_clear_message(bad: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "sim", bad, "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "wolfpack sim:" in proc.stderr and (
        "unknown fault" in proc.stderr or "> 0" in proc.stderr
    )
