"""`wolfpack sim --mcu-firmware c`: the whole simulated cell with the C reference firmware's
host build as its MCU (the world drives its encoder and eyes, its strokes drive the
diverters), sorting as well as with the Python firmware: nothing mis-sorted, nothing lost.
The scanner alone (--no-camera): the firmware is what this test is about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_cell_sorts_with_the_c_firmware(tmp_path: Path) -> None:
    report_file = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "sim", "--mcu-firmware", "c", "--rate", "12000",
         "--duration", "10", "--no-camera", "--report", str(report_file),
         "--workdir", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(c firmware)" in proc.stderr  # the progress names the MCU's firmware
    r = json.loads(report_file.read_text())
    why = {k: r.get(k) for k in ("rejected", "lost_detail", "node_counters", "task_crashes")}
    assert r["parcels_in"] >= 20, why  # ~33 expected at 12,000 pph over 10 s
    assert r["mis_sorted"] == 0 and r["lost"] == 0 and r["still_on_belt"] == 0, why
    assert r["sorted_correct"] + r["rejected"]["legible_label"] == r["legible"]
    assert r["sorted_correct"] / r["legible"] >= 0.99, why
    assert r["safety"]["strokes"]["strokes"] >= r["parcels_in"]  # the C firmware's strokes
    assert r["divert_error_mm"]["p99"] < 30  # inside the diverter's capture window
    assert "camera" not in r and set(r["label_source"]) <= {"scanner", "none"}  # --no-camera
