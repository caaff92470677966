"""The faults of issue 13 in the whole simulated cell with the real node: the outbox's disk
full, kill -9 of the node (restarted as systemd does, started by the operator), garbage on
the scanner's line and a flood of commands. The world's truth judges: nothing lost or
mis-sorted, no stroke while the node was not running, the belt at rest within the e-stop's
stop time after every e-stop and node death."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.sim.faults import parse_faults
from edge.sim.run import CellSimulation, SimOptions

REPO = Path(__file__).resolve().parents[2]


def _why(r: dict[str, Any]) -> dict[str, Any]:
    """What a failure prints: the figures and where the run's evidence is."""
    keys = ("lost_detail", "mis_sorted", "rejected", "strokes_while_not_running", "safety",
            "fault_counters", "operator", "faults", "node_counters", "task_crashes",
            "world_late_inputs")  # fmt: skip
    return {k: r.get(k) for k in keys}


def assert_safe(r: dict[str, Any], stop_limit_ms: float = 800) -> None:
    why = _why(r)
    assert r["mis_sorted"] == 0 and r["lost"] == 0, why
    # off the belt's end only as a recorded run-out: reject-bound parcels that a halt's
    # stopping distance carried past the reject diverter (docs/cell.md "Run-out")
    assert r["ran_off_belt"] == r["run_out"], why
    assert r["still_on_belt"] == 0, why
    # every parcel one record, and a true one: none twice, none "lost" that landed in a chute
    assert r["records_unmatched"]["count"] == 0, r["records_unmatched"]
    # A parcel whose stroke fired while no node ran, or just as the new one started, can end
    # "lost: the chute sensor never saw it" though it landed (the sensor's edge and the
    # restore cross): its record is wrong, the parcel is not (lost and mis_sorted above
    # are the world's truth). Known limit (docs/sim-cell.md); at most 2 per kill here.
    kills = max(1, r.get("fault_counters", {}).get("node_kills", 0))
    assert r["records_lost_but_delivered"]["count"] <= 2 * kills, r["records_lost_but_delivered"]
    assert r["node_records"] == r["parcels_in"], why
    assert r["strokes_while_not_running"] == 0, why
    stops = r["safety"]["belt_stops"]
    assert stops["over_limit"] == 0 and stops["limit_ms"] == stop_limit_ms, why
    assert r["belt_stop_ms"] is not None and r["belt_stop_ms"] <= stop_limit_ms, why


def test_outbox_full_estop_node_kill_noise_and_flood_in_one_run(tmp_path: Path) -> None:
    faults = parse_faults(
        "outbox-full@3+8,estop@5+2,node-kill@14,scanner-noise=0.05,command-flood=1000@21+1"
    )
    sim = CellSimulation(
        SimOptions(rate_pph=12_000, duration_s=26, faults=faults, workdir=tmp_path / "run")
    )
    r = sim.run()
    (tmp_path / "report.json").write_text(json.dumps(r, indent=1))  # evidence beside node.log
    assert_safe(r)
    fc = r["fault_counters"]
    # the outbox refused to grow for the window, and the flag is gone after it
    assert fc["outbox_full_windows"] == 1 and fc["outbox_full_s"] == pytest.approx(8, abs=0.5)
    assert not (tmp_path / "run" / "outbox-full").exists()
    # killed once, restarted once without --start, and started by the operator
    assert fc["node_kills"] == 1 and fc["node_restarts"] == 1
    states = [s for _t, s in r["safety"]["node_states"]]
    dead = states.index("dead")
    assert states[dead + 1] == "boot" and "running" in states[dead + 1 :]
    assert "running" not in states[dead + 1 : states.index("ready", dead)]
    assert any("start: ok" in line for line in r["operator"])
    causes = {s["cause"] for s in r["safety"]["belt_stops"]["stops"]}
    assert {"estop", "node-kill"} <= causes
    # the scanner sent garbage, the node refused it and made no parcel of it
    assert r["scanner"]["noise_lines"] > 0
    # each flood command was answered or refused (rate limited), none left without an answer
    flood = fc["command_flood"]
    assert flood["sent"] >= 900 and flood["no_answer"] == 0, flood
    assert flood["answered"] + flood["refused"] == flood["sent"]
    # node RSS sampled over the run, from both processes
    assert len({s["pid"] for s in r["node_rss"]["samples"]}) == 2


@pytest.mark.soak
def test_issue_13_done_when_command(tmp_path: Path) -> None:
    """The issue's command, as a user runs it (60 s of arrivals: ~90 s with the drain)."""
    report_file = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "sim", "--rate", "12000", "--duration", "60",
         "--faults", "outbox-full@10+20,estop@15+3,node-kill@35,scanner-noise=0.05",
         "--report", str(report_file), "--quiet", "--workdir", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "strokes while not running 0" in proc.stdout
    r = json.loads(report_file.read_text())
    assert_safe(r)
    assert r["parcels_in"] >= 150
