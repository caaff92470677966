"""The sorting arm end to end: `wolfpack sim --machine arm` with the real node in its own
process (`wolfpack run` on a `machine: arm` config), the simulated arm cell (MuJoCo world,
the arm MCU on a pty, the belt camera's frame stream), the embedded broker and the reference
brain. Asserted against the world's truth (where each parcel ended), joined with the node's
pick records received over MQTT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.cli.sim_arm import REPORT_KEYS

REPO = Path(__file__).resolve().parents[2]


def test_wolfpack_sim_machine_arm_reports_every_parcel_from_the_truth(tmp_path: Path) -> None:
    """The issue's command, short, as a user runs it: every parcel that entered the belt is
    accounted for by the world, the node published a pick record with its story for it, and
    nothing ended in a wrong destination."""
    report_file = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.cli.main",
            "sim",
            "--machine",
            "arm",
            "--rate",
            "1800",
            "--duration",
            "12",
            "--report",
            str(report_file),
            "--quiet",
            "--workdir",
            str(tmp_path / "run"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "placed right" in proc.stdout and "picks/h" in proc.stdout
    r = json.loads(report_file.read_text())
    assert set(REPORT_KEYS) <= set(r)
    for key in ("p50", "p99"):
        assert key in r["cycle_ms"] and key in r["tracking_error_mm"]
    assert set(r["node"]) >= {"cpu_percent", "rss_mb"}
    assert 0 < r["node"]["rss_mb"] < 600
    why = {k: r.get(k) for k in ("skipped", "lost_detail", "node_outcomes", "world", "camera")}
    assert r["parcels_in"] >= 2, why  # ~6 expected at 1,800/h over 12 s
    assert r["still_in_cell"] == 0, why  # the run drained the belt
    assert r["misplaced"] == 0, _not_placed_right(tmp_path / "run", why)
    # every parcel is accounted for: placed, passed on (with the node's reason), dropped
    ends = r["placed_right"] + r["misplaced"] + r["passed_to_belt_end"] + r["dropped"]
    assert ends >= r["parcels_in"] - r["world"].get("floor", 0), _not_placed_right(
        tmp_path / "run", why
    )
    # the node published one record per parcel it saw, with its story
    records = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == r["node_records"] >= r["parcels_in"] - r["lost_detail"]["no_node_record"]
    assert all(rec["story"] and rec["outcome"] for rec in records)
    # a parcel the camera split or missed
    assert r["lost_detail"]["no_node_record"] <= 1, _not_placed_right(tmp_path / "run", r)
    # the world's truth beside the records, for a person to check
    truth = [json.loads(x) for x in (tmp_path / "run" / "world.jsonl").read_text().splitlines()]
    assert len(truth) == r["parcels_in"] + r["still_in_cell"]


def _not_placed_right(workdir: Path, why: dict[str, Any]) -> str:
    """What a failure must show to be traced (a mis-placed parcel was seen once under load
    8-11 in session 9, and nothing of it was kept): the node's record and story of every
    parcel not placed, the world's truth of every parcel that did not end where it was meant
    to, the node's health counters and its last warnings. The work directory itself is
    pytest's tmp_path, soon rotated away by other runs on a shared machine."""
    out = [repr(why), f"work directory: {workdir}"]
    for line in (workdir / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["outcome"] != "placed":
            story = "; ".join(f"{s['t']:.3f} {s['stage']}: {s['detail']}" for s in rec["story"])
            out.append(f"record {rec['parcel_id']} {rec['outcome']} ({rec['reason']}): {story}")
    for line in (workdir / "world.jsonl").read_text().splitlines():
        t = json.loads(line)
        if t.get("intended") and t.get("end") != f"dest:{t['intended']}":
            out.append(f"truth {t}")
    health = workdir / "health.json"
    if health.exists():
        out.append(health.read_text()[:3000])
    log = workdir / "node.log"
    if log.exists():  # the node's warnings and errors, the last 30
        lines = [x for x in log.read_text().splitlines() if "WARNING" in x or "ERROR" in x]
        out += lines[-30:]
    return "\n".join(out)
