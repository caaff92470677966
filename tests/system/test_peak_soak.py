"""The peak soak: the wolf pack's order peaks in miniature. `wolfpack sim` at 36,000 parcels/h
offered for 30 minutes with a seeded random schedule of every fault kind, beside two
processes that keep both cores busy. Not in the default run: ``pytest -m soak``.

    WOLFPACK_SOAK_S=150 .venv/bin/python -m pytest -m soak tests/system/test_peak_soak.py

(``WOLFPACK_SOAK_S``: seconds of arrivals, default 1800; ``WOLFPACK_SOAK_SEED``: the fault
schedule's seed, default 13.) 36,000/h is more than the belt takes with the simulator's mix
(about 27,000/h at 2.5 m/s with a 50 mm least gap): the induction meters the rest and they
enter the belt after the arrivals stop, so the cell runs at its limit the whole time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.sim.faults import RANDOM_RANGES
from tests.system.test_sim_faults import assert_safe

REPO = Path(__file__).resolve().parents[2]
RSS_GROWTH_BOUND_MB = 25.0  # the node's RSS, last quarter of a process's life vs first
RSS_PEAK_BOUND_MB = 250.0


@pytest.mark.soak
@pytest.mark.timeout(0)  # bounded by the run's own timeout below, not pytest's 300 s
def test_peak_soak_36000_pph_random_faults_on_a_busy_machine(tmp_path: Path) -> None:
    duration = float(os.environ.get("WOLFPACK_SOAK_S", "1800"))
    seed = int(os.environ.get("WOLFPACK_SOAK_SEED", "13"))
    report_file = tmp_path / "soak.json"
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]  # two busy processes, ended by their pids below
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edge.cli.main", "sim", "--rate", "36000",
             "--duration", f"{duration:g}", "--faults", f"random={seed}", "--no-camera",
             "--report", str(report_file), "--quiet", "--workdir", str(tmp_path / "run")],
            cwd=REPO, capture_output=True, text=True, timeout=duration * 1.6 + 600,
        )  # fmt: skip
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(report_file.read_text())
    print(proc.stdout)  # the figures, for the closing note (pytest -s)
    assert_safe(r)
    schedule = r["settings"]["fault_schedule"]
    kinds = {item.split("@")[0].split("=")[0] for item in schedule}
    if duration >= 120:  # room for one slot of each kind
        assert kinds == set(RANDOM_RANGES), sorted(set(RANDOM_RANGES) - kinds)
    # every e-stop of the schedule stopped the belt within its stop time (assert_safe: all)
    estops = [s for s in r["safety"]["belt_stops"]["stops"] if s["cause"] == "estop"]
    assert len(estops) == sum(1 for item in schedule if item.startswith("estop@"))
    # node RSS flat: sampled through the run, growth per node process bounded
    rss = r["node_rss"]
    assert len(rss["samples"]) >= duration / 2 * 0.8
    assert rss["peak_mb"] < RSS_PEAK_BOUND_MB, rss["by_pid"]
    if rss["max_growth_mb"] is not None:
        assert rss["max_growth_mb"] <= RSS_GROWTH_BOUND_MB, rss["by_pid"]
